"""Serve the storage root over WebDAV (wsgidav on cheroot) for file managers and browsers."""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_SERVICE_UNAVAILABLE,
    DAVError,
)
from wsgidav.dav_provider import DAVNonCollection
from wsgidav.dc.base_dc import BaseDomainController
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.fs_dav_provider import FileResource, FilesystemProvider, FolderResource
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from backup_drive_server import __version__
from backup_drive_server.accounts import AccountBook, canonical_username
from backup_drive_server.login_guard import LoginGuard
from backup_drive_server.storage_root import (
    OutsideStorageRootError,
    StorageRoot,
    StorageUnavailableError,
    is_staging_name,
)
from backup_drive_server.web_page.webdav_view import BrowserFolderView
from backup_drive_server.webdav_state import LockStore, PropertyStore

_LOGGER = logging.getLogger(__name__)

REALM = "Backup Drive"
SHUTDOWN_GRACE_SECONDS = 4
BLOCK_SIZE = 1024 * 1024
WRITE_METHODS = frozenset(
    {"PUT", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK", "POST"}
)
QUOTA_AVAILABLE = "{DAV:}quota-available-bytes"
QUOTA_USED = "{DAV:}quota-used-bytes"

type Environ = dict[str, Any]
type StartResponse = Callable[..., Any]


def _client_address(environ: Environ) -> str:
    return str(environ.get("REMOTE_ADDR") or "unknown")


def _who(environ: Environ) -> str:
    user = environ.get("wsgidav.auth.user_name") or "anonymous"
    return f"{user} from {_client_address(environ)} (WebDAV)"


class _StagedUpload(io.RawIOBase):
    """The file a PUT writes into: a hidden temporary name, counted byte by byte."""

    def __init__(self, staging: Path) -> None:
        super().__init__()
        self.staging = staging
        self.written = 0
        self._file = io.FileIO(staging, "xb")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            written = self._file.write(data)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise DAVError(
                    HTTP_INSUFFICIENT_STORAGE, "The backup drive is full: free some space"
                ) from err
            raise
        self.written += written or 0
        return written or 0

    def writelines(self, lines: Iterable[Any]) -> None:
        for data in lines:
            view = memoryview(data)
            while view:
                view = view[self.write(view) :]

    def close(self) -> None:
        self._file.close()
        super().close()


class BackupDriveFile(FileResource):  # type: ignore[misc]
    """A file whose uploads are staged and renamed into place only when complete."""

    def __init__(self, path: str, environ: Environ, file_path: str, *, exists: bool = True) -> None:
        """Represent `file_path`; `exists=False` for the target of a PUT that creates it."""
        DAVNonCollection.__init__(self, path, environ)
        self._file_path = file_path
        self.name = util.to_str(os.path.basename(file_path))
        self.file_stat = os.stat(file_path) if exists else os.stat_result((0,) * 10)
        self._upload: _StagedUpload | None = None

    def get_content(self) -> BinaryIO:
        """Open for reading with the large block size GET streams in."""
        return open(self._file_path, "rb", BLOCK_SIZE)  # wsgidav closes it after the response

    def begin_write(self, *, content_type: str | None = None) -> _StagedUpload:
        """Start an upload under a temporary name next to the final one."""
        storage: StorageRoot = self.provider.storage
        staging = storage.new_staging_path(Path(self._file_path))
        try:
            self._upload = _StagedUpload(staging)
        except OSError:
            storage.discard_staging(staging)
            raise
        return self._upload

    def end_write(self, *, with_errors: bool) -> None:
        """Publish a complete upload; delete one that failed or came up short."""
        upload, self._upload = self._upload, None
        if upload is None:
            return
        storage: StorageRoot = self.provider.storage
        # wsgidav skips close() when a write raised (a full drive): an open handle would keep
        # the deleted file's space in use until the server restarts.
        upload.close()
        expected = self._expected_length()
        if with_errors or (expected is not None and upload.written != expected):
            storage.discard_staging(upload.staging)
            _LOGGER.warning(
                "Discarded unfinished upload of %s by %s (%d of %s bytes received)",
                self.path, _who(self.environ), upload.written,
                expected if expected is not None else "unknown",
            )  # fmt: skip
            if not with_errors:
                raise DAVError(
                    400, f"Upload incomplete: {upload.written} of {expected} bytes; nothing saved"
                )
            return
        storage.commit_staging(upload.staging, Path(self._file_path))
        self.file_stat = os.stat(self._file_path)

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
        """List members, leaving out temporary upload names."""
        return [name for name in super().get_member_names() if not is_staging_name(name)]

    def create_empty_resource(self, name: str) -> Any:
        """Create a lock-null file for LOCK, but nothing on disk yet for PUT."""
        if self.environ.get("REQUEST_METHOD") != "PUT":
            return super().create_empty_resource(name)
        path = util.join_uri(self.path, name)
        file_path = self.provider._loc_to_file_path(path, self.environ)
        return BackupDriveFile(path, self.environ, file_path, exists=False)

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

    def __init__(self, storage: StorageRoot) -> None:
        """Serve `storage`."""
        super().__init__(str(storage.path), readonly=False, fs_opts={"follow_symlinks": False})
        self.storage = storage

    def _loc_to_file_path(self, path: str, environ: Environ | None = None) -> str:
        try:
            return str(self.storage.resolve(path, who=_who(environ or {})))
        except OutsideStorageRootError as err:
            raise DAVError(HTTP_FORBIDDEN, str(err)) from err
        except StorageUnavailableError as err:
            raise DAVError(HTTP_SERVICE_UNAVAILABLE, str(err)) from err

    def get_resource_inst(self, path: str, environ: Environ) -> Any:
        """Return the file or folder at `path`, or None."""
        self._count_get_resource_inst += 1
        file_path = self._loc_to_file_path(path, environ)
        if not os.path.exists(file_path):
            return None
        if os.path.isdir(file_path):
            return BackupDriveFolder(path, environ, file_path)
        return BackupDriveFile(path, environ, file_path)


class BackupDriveDomainController(BaseDomainController):  # type: ignore[misc]
    """Check WebDAV logins against the shared account book, Basic and Digest alike."""

    def __init__(self, wsgidav_app: WsgiDAVApp, config: dict[str, Any]) -> None:
        """Read the account book from the wsgidav configuration."""
        super().__init__(wsgidav_app, config)
        self._accounts: AccountBook = config["backup_drive"]["accounts"]

    def __str__(self) -> str:
        """Name the controller in wsgidav's start-up log."""
        return f"{self.__class__.__name__}()"

    def get_domain_realm(self, path_info: str, environ: Environ) -> str:
        """Use one realm for the whole drive."""
        return REALM

    def require_authentication(self, realm: str, environ: Environ) -> bool:
        """Require a login for everything."""
        return True

    def basic_auth_user(self, realm: str, user_name: str, password: str, environ: Environ) -> bool:
        r"""Check a Basic login (`DOMAIN\user` accepted as `user`)."""
        account = self._accounts.get(user_name)
        return account is not None and account.password_matches(password)

    def supports_http_digest_auth(self) -> bool:
        """Offer Digest: Windows Explorer uses it over plain HTTP, where it refuses Basic."""
        return True

    def digest_auth_user(self, realm: str, user_name: str, environ: Environ) -> str | bool:
        """Return HA1 for Digest; the client hashed the name exactly as it sent it."""
        account = self._accounts.get(user_name)
        if account is None or not account.password:
            return False
        a1 = f"{user_name}:{realm}:{account.password}"
        return hashlib.md5(a1.encode(), usedforsecurity=False).hexdigest()


class LoginGuardMiddleware(BaseMiddleware):  # type: ignore[misc]
    """Refuse banned addresses and count failed logins (runs before authentication)."""

    def __init__(self, wsgidav_app: WsgiDAVApp, next_app: Any, config: dict[str, Any]) -> None:
        """Take the shared login guard from the configuration."""
        super().__init__(wsgidav_app, next_app, config)
        self._guard: LoginGuard = config["backup_drive"]["login_guard"]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer 403 to a banned address; slow down repeated failures."""
        address = _client_address(environ)
        if self._guard.is_banned(address):
            body = b"Too many failed logins from your address: try again in a few minutes.\n"
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        sent_credentials = "HTTP_AUTHORIZATION" in environ
        status_holder: list[str] = []

        def watching_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            status_holder.append(status)
            return start_response(status, headers, exc_info)

        result = self.next_app(environ, watching_start_response)
        if sent_credentials and status_holder:
            if status_holder[0].startswith("401"):
                user = _authorization_user(environ["HTTP_AUTHORIZATION"])
                delay = self._guard.record_failure(address, "WebDAV", user)
                if delay:
                    time.sleep(delay)  # a cheroot worker thread: only this client waits
            else:
                self._guard.record_success(address)
        return result  # type: ignore[no-any-return]


def _authorization_user(header: str) -> str:
    """Pull the user name out of an Authorization header, for the log."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value).decode(errors="replace").partition(":")[0]
        except (ValueError, binascii.Error):
            return "?"
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "username":
            return item.strip('"')
    return "?"


class ReadOnlyMiddleware(BaseMiddleware):  # type: ignore[misc]
    """Refuse every write of a read-only account (runs after authentication)."""

    def __init__(self, wsgidav_app: WsgiDAVApp, next_app: Any, config: dict[str, Any]) -> None:
        """Take the account book from the configuration."""
        super().__init__(wsgidav_app, next_app, config)
        self._accounts: AccountBook = config["backup_drive"]["accounts"]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer 403 to a write by a read-only account."""
        user_name = environ.get("wsgidav.auth.user_name") or ""
        if user_name:
            # Explorer's `WORKGROUP\alice` is `alice` for locks, listings and the log.
            environ["wsgidav.auth.user_name"] = canonical_username(user_name)
        account = self._accounts.get(user_name)
        if (
            account is not None
            and account.read_only
            and environ["REQUEST_METHOD"].upper() in WRITE_METHODS
        ):
            _LOGGER.info("Refused %s %s for read-only %s", environ["REQUEST_METHOD"],
                         environ.get("PATH_INFO"), _who(environ))  # fmt: skip
            body = b"Permission denied: this account is read-only.\n"
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self.next_app(environ, start_response)  # type: ignore[no-any-return]


def webdav_config(
    storage: StorageRoot, accounts: AccountBook, guard: LoginGuard, state_dir: Path
) -> dict[str, Any]:
    """Build wsgidav's configuration; every non-default key says why it is set."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return {
        "provider_mapping": {"/": BackupDriveProvider(storage)},
        "middleware_stack": [
            ErrorPrinter,
            LoginGuardMiddleware,  # before authentication, so it sees the 401s
            HTTPAuthenticator,
            ReadOnlyMiddleware,  # after authentication, so it knows the user
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
            "ignore": [".DS_Store", "._*", "Thumbs.db", ".*.partial-*"],
            "response_trailer": f"Backup Drive {__version__}",
            "show_user": True,
            "davmount": True,
            "ms_sharepoint_support": False,
            "libre_office_support": False,
        },
        "suppress_version_info": True,
        "verbose": 2,
        "logging": {"enable": False},
        "backup_drive": {"accounts": accounts, "login_guard": guard},
    }


def refuse_escaping_paths(app: WsgiDAVApp) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    """Answer 403 to a request path that climbs above the root (`/../x`, `/%2e%2e/x`).

    wsgidav answers those itself, but before its middleware runs, with a 400 whose body never
    arrives: clients hang until they time out. Refusing here gives a clear answer and a log line.
    """

    def jailed_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = util.re_encode_wsgi(environ.get("PATH_INFO") or "/")
        try:
            util.normalize_path(path)
            # cheroot leaves an encoded slash encoded; a name like `..%2Fx` would only be odd
            # on disk, but a client sending it means to climb, so it gets the same answer.
            util.normalize_path(path.replace("%2F", "/").replace("%2f", "/"))
        except DAVError:
            _LOGGER.warning(
                "Refused %r for %s: the path leads outside the storage root",
                environ.get("PATH_INFO"), _who(environ),
            )  # fmt: skip
            body = b"Permission denied: the path leads outside the storage root.\n"
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return app(environ, start_response)  # type: ignore[no-any-return]

    return jailed_app


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
        self._server = wsgi.Server(
            (bind, port),
            refuse_escaping_paths(WsgiDAVApp(config)),
            numthreads=16,
            server_name="Backup Drive",
            # An idle client is dropped after this many seconds of silence.
            timeout=60,
            # Uploads still running this long after SIGTERM are cut off (and discarded).
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        )
        if certfile is not None and keyfile is not None:
            self._server.ssl_adapter = BuiltinSSLAdapter(str(certfile), str(keyfile))
        self.scheme = "https" if certfile is not None else "http"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket (errors surface here) and serve in a background thread."""
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, name="webdav", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close connections and join the worker threads."""
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
