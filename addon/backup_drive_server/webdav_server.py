"""Serve the storage root over WebDAV (wsgidav on cheroot) for file managers and browsers.

Just over 400 lines because the provider, its file and folder resources and the configuration
that wires them are one seam of wsgidav; logins, limits, state and connections have their own
modules (webdav_auth, webdav_requests, webdav_state, webdav_connections).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_SERVICE_UNAVAILABLE,
    DAVError,
)
from wsgidav.dav_provider import DAVNonCollection
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.fs_dav_provider import FileResource, FilesystemProvider, FolderResource
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from backup_drive_server import __version__
from backup_drive_server.accounts import AccountBook
from backup_drive_server.login_guard import LoginGuard
from backup_drive_server.settings import DEFAULT_LABEL, SHUTDOWN_GRACE_SECONDS
from backup_drive_server.staged_upload import (
    DRIVE_FULL_MESSAGE,
    StagedUpload,
    UploadNotSavedError,
)
from backup_drive_server.storage_root import (
    OutsideStorageRootError,
    StorageRoot,
    StorageUnavailableError,
)
from backup_drive_server.web_page.webdav_view import BrowserFolderView
from backup_drive_server.webdav_auth import (
    BackupDriveDomainController,
    Environ,
    LoginGuardMiddleware,
    ReadOnlyMiddleware,
    describe_client,
)
from backup_drive_server.webdav_connections import (
    LISTEN_BACKLOG,
    DeferredHandshakeAdapter,
    GuardedServer,
)
from backup_drive_server.webdav_digest import DEFAULT_NONCE_SECONDS, BackupDriveAuthenticator
from backup_drive_server.webdav_requests import (
    PlainErrorPrinter,
    RequestLimitsMiddleware,
    refuse_bad_paths,
)
from backup_drive_server.webdav_state import LockStore, PropertyStore

_LOGGER = logging.getLogger(__name__)

BLOCK_SIZE = 1024 * 1024
QUOTA_AVAILABLE = "{DAV:}quota-available-bytes"
QUOTA_USED = "{DAV:}quota-used-bytes"
# Left out of the HTML listing only (WebDAV clients still see them): macOS and Windows litter,
# and every dot-file, which is where the integration writes an archive before renaming it.
HTML_LISTING_IGNORED = [".*", "Thumbs.db"]


def _storage_error(err: OSError) -> Exception:
    """Turn a full drive into 507 Insufficient Storage; other errors stay as they are."""
    if err.errno == errno.ENOSPC:
        full: Exception = DAVError(HTTP_INSUFFICIENT_STORAGE, DRIVE_FULL_MESSAGE)
        return full
    if err.errno == errno.ENAMETOOLONG:
        # The name fits the request check but not with the upload's temporary prefix.
        too_long: Exception = DAVError(HTTP_BAD_REQUEST, "The name is too long for the drive.")
        return too_long
    return err


class _PutBody:
    """What wsgidav's PUT writes the body into; end_write() then publishes or discards it."""

    def __init__(self, upload: StagedUpload) -> None:
        self._upload = upload

    def writelines(self, chunks: Iterable[bytes]) -> None:
        """Append every chunk of the request body to the staged upload."""
        for chunk in chunks:
            try:
                self._upload.append(chunk)
            except OSError as err:
                raise _storage_error(err) from err

    def close(self) -> None:
        """Keep the file open: end_write() flushes it before the rename, or deletes it."""


class BackupDriveFile(FileResource):  # type: ignore[misc]
    """A file whose uploads are staged and renamed into place only when complete."""

    def __init__(self, path: str, environ: Environ, file_path: str, *, exists: bool = True) -> None:
        """Represent `file_path`; `exists=False` for the target of a PUT that creates it."""
        # FileResource.__init__ stats the file, which a PUT has not created yet; it has no
        # public way to describe a file to come, so its three attributes are set here.
        DAVNonCollection.__init__(self, path, environ)
        self._file_path = file_path
        self.name = util.to_str(os.path.basename(file_path))
        self.file_stat = os.stat(file_path) if exists else os.stat_result((0,) * 10)
        self._upload: StagedUpload | None = None

    def get_content(self) -> BinaryIO:
        """Open for reading with the large block size GET streams in."""
        return open(self._file_path, "rb", BLOCK_SIZE)  # wsgidav closes it after the response

    def begin_write(self, *, content_type: str | None = None) -> _PutBody:
        """Start an upload under a temporary name next to the final one."""
        storage: StorageRoot = self.provider.storage
        try:
            self._upload = StagedUpload(
                storage, Path(self._file_path), who=describe_client(self.environ)
            )
        except OSError as err:
            raise _storage_error(err) from err
        return _PutBody(self._upload)

    def end_write(self, *, with_errors: bool) -> None:
        """Publish a complete upload; delete one that failed or came up short."""
        upload, self._upload = self._upload, None
        if upload is None:
            return
        # wsgidav calls this without close() when a write raised (a full drive): the upload
        # is closed here in every case, as an open handle would keep a deleted file's space.
        if with_errors:
            upload.discard("the request failed or was cut off")
            return
        try:
            upload.commit(expected_size=self._expected_length())
        except UploadNotSavedError as err:
            raise DAVError(HTTP_BAD_REQUEST, str(err)) from err
        except OSError as err:
            raise _storage_error(err) from err
        self.file_stat = os.stat(self._file_path)

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        """Copy to a temporary name and rename into place, so a full drive leaves nothing."""
        self._copy_staged(self.provider.local_path(dest_path, self.environ))
        self._carry_properties(dest_path, is_move=is_move)

    def move_recursive(self, dest_path: str) -> None:
        """Rename; across filesystems (another drive mounted below), copy staged and delete."""
        target = self.provider.local_path(dest_path, self.environ)
        if os.stat(os.path.dirname(target)).st_dev == self.file_stat.st_dev:
            super().move_recursive(dest_path)
            return
        self._copy_staged(target)
        os.unlink(self._file_path)
        self._carry_properties(dest_path, is_move=True)

    def _copy_staged(self, target: str) -> None:
        storage: StorageRoot = self.provider.storage
        try:
            upload = StagedUpload(storage, Path(target), who=describe_client(self.environ))
        except OSError as err:
            raise _storage_error(err) from err
        try:
            with open(self._file_path, "rb", buffering=0) as source:
                while block := source.read(BLOCK_SIZE):
                    upload.append(block)
            shutil.copystat(self._file_path, upload.staging)
            upload.commit(expected_size=self.file_stat.st_size)
        except OSError as err:
            upload.discard("the copy failed")
            raise _storage_error(err) from err

    def _carry_properties(self, dest_path: str, *, is_move: bool) -> None:
        """Give the copy the dead properties (PROPPATCH) of this file, as wsgidav does."""
        properties = self.provider.prop_manager
        if not properties:
            return
        destination = self.provider.get_resource_inst(dest_path, self.environ).get_ref_url()
        if is_move:
            properties.move_properties(
                self.get_ref_url(), destination, with_children=False, environ=self.environ
            )
        else:
            properties.copy_properties(self.get_ref_url(), destination, self.environ)

    def _expected_length(self) -> int | None:
        # macOS Finder sends chunked bodies and announces the size in X-Expected-Entity-Length.
        for key in ("CONTENT_LENGTH", "HTTP_X_EXPECTED_ENTITY_LENGTH"):
            value = self.environ.get(key)
            if value and str(value).isdigit():
                return int(value)
        return None


class BackupDriveFolder(FolderResource):  # type: ignore[misc]
    """A folder that hides unfinished uploads and reports the drive's free space."""

    def get_member_names(self) -> list[str]:
        """List members, leaving out the uploads folder and escaping non-UTF-8 names."""
        # A name written over SFTP need not be UTF-8, which WebDAV cannot carry: such a name is
        # listed as `\xff-name`, mapped back to the file here, so the rest of the folder lists.
        storage: StorageRoot = self.provider.storage
        self._disk_names: dict[str, str] = {}
        for name in super().get_member_names():
            if not storage.hides(self._file_path, name):
                self._disk_names[os.fsencode(name).decode("utf-8", "backslashreplace")] = name
        return list(self._disk_names)

    def get_member(self, name: str) -> Any:
        """Return the member listed as `name`, also one whose name on disk is not UTF-8."""
        disk_name = getattr(self, "_disk_names", {}).get(name, name)
        if disk_name == name:
            return super().get_member(name)
        path = util.join_uri(self.path, name)
        file_path = os.path.join(self._file_path, disk_name)
        member_type = BackupDriveFolder if os.path.isdir(file_path) else BackupDriveFile
        member = member_type(path, self.environ, file_path)
        member.name = name
        return member

    def create_empty_resource(self, name: str) -> Any:
        """Create a lock-null file for LOCK, but nothing on disk yet for PUT."""
        if self.environ.get("REQUEST_METHOD") != "PUT":
            return super().create_empty_resource(name)
        path = util.join_uri(self.path, name)
        file_path = self.provider.local_path(path, self.environ)
        return BackupDriveFile(path, self.environ, file_path, exists=False)

    def get_display_name(self) -> str:
        """Name the root after the drive (its label), not after the folder it is mounted on."""
        if self.path in ("", "/"):
            return str(self.provider.label)
        return super().get_display_name()  # type: ignore[no-any-return]

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        """Offer the RFC 4331 quota properties (not part of allprop, as the RFC says)."""
        names: list[str] = super().get_property_names(is_allprop=is_allprop)
        if not is_allprop:
            names += [QUOTA_AVAILABLE, QUOTA_USED]
        return names

    def get_property_value(self, name: str) -> Any:
        """Answer the quota properties from the drive's filesystem."""
        if name in (QUOTA_AVAILABLE, QUOTA_USED):
            usage = self.provider.storage.disk_usage()
            return str(usage.free if name == QUOTA_AVAILABLE else usage.used)
        return super().get_property_value(name)


class BackupDriveProvider(FilesystemProvider):  # type: ignore[misc]
    """Publish the storage root through the shared path jail."""

    def __init__(self, storage: StorageRoot, label: str) -> None:
        """Serve `storage`, calling its root `label`."""
        super().__init__(str(storage.path), readonly=False, fs_opts={"follow_symlinks": False})
        self.storage = storage
        self.label = label

    # FilesystemProvider maps every path through this private method (resources call it for
    # COPY and MOVE too) and offers no public hook, so the jail has to replace it.
    def _loc_to_file_path(self, path: str, environ: Environ | None = None) -> str:
        return self.local_path(path, environ)

    def local_path(self, path: str, environ: Environ | None = None) -> str:
        """Return the local file path for a request path, through the storage root's jail."""
        try:
            return str(self.storage.resolve(path, who=describe_client(environ or {})))
        except OutsideStorageRootError as err:
            raise DAVError(HTTP_FORBIDDEN, str(err)) from err
        except StorageUnavailableError as err:
            raise DAVError(HTTP_SERVICE_UNAVAILABLE, str(err)) from err

    def get_resource_inst(self, path: str, environ: Environ) -> Any:
        """Return the file or folder at `path`, or None."""
        file_path = self.local_path(path, environ)
        if not os.path.exists(file_path):
            return None
        if os.path.isdir(file_path):
            return BackupDriveFolder(path, environ, file_path)
        return BackupDriveFile(path, environ, file_path)


def webdav_config(
    storage: StorageRoot,
    accounts: AccountBook,
    guard: LoginGuard,
    state_dir: Path,
    *,
    nonce_seconds: float = DEFAULT_NONCE_SECONDS,
    label: str = DEFAULT_LABEL,
) -> dict[str, Any]:
    """Build wsgidav's configuration; every non-default key says why it is set."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return {
        "provider_mapping": {"/": BackupDriveProvider(storage, label)},
        "middleware_stack": [
            PlainErrorPrinter,
            LoginGuardMiddleware,  # before authentication, so it sees the 401s
            BackupDriveAuthenticator,
            ReadOnlyMiddleware,  # after authentication, so it knows the user
            RequestLimitsMiddleware,  # after authentication: only clients that logged in
            BrowserFolderView,  # browsers get the add-on page's view of a folder, behind the login
            WsgiDavDirBrowser,
            RequestResolver,  # must stay last
        ],
        "http_authenticator": {
            "domain_controller": BackupDriveDomainController,
            "accept_basic": True,
            # Windows Explorer refuses Basic over plain HTTP but does Digest.
            "accept_digest": True,
            "default_to_digest": True,
            "trusted_auth_header": None,
        },
        # Locks make Finder and Explorer mount read-write (class 2); kept across restarts.
        "lock_storage": LockStore(str(state_dir / "locks")),
        # Home Assistant's own webdav integration stores dead properties with PROPPATCH.
        "property_manager": PropertyStore(str(state_dir / "properties")),
        # Explorer writes Win32 timestamps with PROPPATCH; map them onto the file's mtime.
        "hotfixes": {"emulate_win32_lastmod": True},
        # 8 KiB blocks cap GET at about a third of what 1 MiB blocks reach.
        "block_size": BLOCK_SIZE,
        "dir_browser": {
            "enable": True,
            "ignore": HTML_LISTING_IGNORED,
            "response_trailer": f"Backup Drive {__version__}",
            "show_user": True,
            "davmount": True,
            "ms_sharepoint_support": False,
            "libre_office_support": False,
        },
        "suppress_version_info": True,
        "verbose": 2,
        "logging": {"enable": False},
        "backup_drive": {
            "accounts": accounts,
            "login_guard": guard,
            "nonce_seconds": nonce_seconds,
        },
    }


class WebDAVServer:
    """cheroot serving the wsgidav application in its own threads."""

    def __init__(
        self,
        config: dict[str, Any],
        bind: str,
        port: int,
        *,
        certfile: Path | None = None,
        keyfile: Path | None = None,
    ) -> None:
        """Bind to `bind`:`port`, with TLS when a certificate and key are given."""
        self._server = GuardedServer(
            (bind, port),
            refuse_bad_paths(WsgiDAVApp(config)),
            # Threads only ever wait on clients that sent a whole request head (see
            # webdav_connections), so a few are enough for many clients.
            numthreads=16,
            # cheroot's default backlog of 5 drops a burst of new connections for seconds.
            request_queue_size=LISTEN_BACKLOG,
            server_name="Backup Drive",
            # An idle client is dropped after this many seconds of silence.
            timeout=60,
            # Uploads still running this long after SIGTERM are cut off (and discarded).
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        )
        if certfile is not None and keyfile is not None:
            self._server.ssl_adapter = DeferredHandshakeAdapter(str(certfile), str(keyfile))
        self.scheme = "https" if certfile is not None else "http"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket (errors surface here) and serve in a background thread."""
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, name="webdav", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting; after the grace period close every connection in both directions.

        cheroot's own force-close only shuts the read side and then waits for the worker, which
        stays blocked in send() to a client that stopped reading until the 60 s socket timeout.
        """
        # cheroot empties its list of workers while stopping, so it is copied first; a worker's
        # `conn` is the connection it is serving (None when idle).
        workers = list(self._server.requests._threads)
        stopping = threading.Thread(target=self._server.stop, name="webdav-stop", daemon=True)
        stopping.start()
        stopping.join(SHUTDOWN_GRACE_SECONDS)
        for worker in workers:
            conn = worker.conn
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.socket.shutdown(socket.SHUT_RDWR)
        stopping.join(SHUTDOWN_GRACE_SECONDS)
        if self._thread is not None:
            self._thread.join(timeout=SHUTDOWN_GRACE_SECONDS)
