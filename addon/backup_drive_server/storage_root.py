"""The storage root both servers share: the path jail, the staging folder and free space."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from pathlib import Path

from backup_drive_server.mount_table import mount_at
from backup_drive_server.settings import BACKUPS_FOLDER
from backup_drive_server.staged_upload import STAGING_FOLDER

_LOGGER = logging.getLogger(__name__)


class OutsideStorageRootError(PermissionError):
    """A path that would leave the storage root (`..`, or a symlink pointing out)."""


class StorageUnavailableError(OSError):
    """The drive behind the storage root is gone (unplugged or never mounted)."""


class StorageRoot:
    """Map client paths into one folder and stage uploads in a hidden folder inside it."""

    def __init__(self, root: Path, *, require_mount: bool = False) -> None:
        """Serve `root`; with `require_mount`, refuse I/O unless a filesystem is mounted there."""
        self.path = Path(os.path.realpath(root))
        self.staging_folder = self.path / STAGING_FOLDER
        self.require_mount = require_mount
        self._staging_lock = threading.Lock()
        self._staging: set[Path] = set()
        self._unavailable_logged_at = -60.0

    def prepare(self) -> None:
        """Create the root, the backups folder and the staging folder; empty the staging folder."""
        if self.require_mount:
            self.check_available()
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / BACKUPS_FOLDER).mkdir(exist_ok=True)
        self.staging_folder.mkdir(mode=0o700, exist_ok=True)
        # Whatever is left here is an upload a crash or a power cut interrupted.
        with os.scandir(self.staging_folder) as leftovers:
            for entry in leftovers:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                _LOGGER.warning("Removed an unfinished upload left by a crash: %s", entry.path)

    def hides(self, folder: str | Path, name: str) -> bool:
        """Return whether listings of `folder` leave `name` out (a staging folder)."""
        # Each filesystem inside the root has its own staging folder (see new_staging_path).
        return name == STAGING_FOLDER

    def check_available(self) -> None:
        """Raise StorageUnavailableError when the drive is not mounted at the root."""
        if self.require_mount and not self._mounted():
            self._log_unavailable()
            raise StorageUnavailableError(
                f"The backup drive is not mounted at {self.path} (unplugged?). Reconnect it and "
                "restart the add-on."
            )

    def _mounted(self) -> bool:
        # A drive mounted at the root has its own device, which ismount sees with two stats. A
        # bind mount of a folder on the same filesystem (a folder of /share in folder mode) has
        # its parent's device, so ismount says no: then the kernel's mount table decides. Asked
        # on every request, never cached: a write in the moment after an unplug would land on
        # the container's own disk.
        return os.path.ismount(self.path) or mount_at(self.path) is not None

    def _log_unavailable(self) -> None:
        # Every request would log it; once a minute tells the user without flooding the log.
        now = time.monotonic()
        if now - self._unavailable_logged_at >= 60:
            self._unavailable_logged_at = now
            _LOGGER.error(
                "The backup drive is not mounted at %s (unplugged?): refusing file access so "
                "nothing lands on the add-on's own disk. Reconnect the drive and restart the "
                "add-on.",
                self.path,
            )

    def resolve(self, client_path: str, *, follow_last: bool = True, who: str = "") -> Path:
        """Return the local path for `client_path` ('/' is the root), or refuse to leave it.

        With `follow_last` false the last component may be a symlink (to remove or rename the
        link itself); every folder on the way is still resolved and checked.
        """
        self.check_available()
        parts: list[str] = []
        for part in client_path.replace("\\", "/").split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    self._refuse(client_path, who)
                parts.pop()
                continue
            parts.append(part)
        candidate = self.path.joinpath(*parts)
        if follow_last or not parts:
            real = os.path.realpath(candidate)
        else:
            real = os.path.join(os.path.realpath(candidate.parent), candidate.name)
        if real != str(self.path) and not real.startswith(f"{self.path}{os.sep}"):
            self._refuse(client_path, who)
        if STAGING_FOLDER in Path(real).relative_to(self.path).parts:
            self._refuse_staging(client_path, who)
        return Path(real)

    def client_path(self, local: Path) -> str:
        """Return the path a client sees for `local` ('/' is the root)."""
        relative = Path(local).relative_to(self.path)
        return "/" + relative.as_posix() if relative.parts else "/"

    def _refuse(self, client_path: str, who: str) -> None:
        _LOGGER.warning("Refused %r for %s: the path leads outside the storage root", client_path,
                        who or "a client")  # fmt: skip
        raise OutsideStorageRootError(
            f"Permission denied: {client_path!r} leads outside the storage root"
        )

    def _refuse_staging(self, client_path: str, who: str) -> None:
        _LOGGER.warning("Refused %r for %s: the folder %s holds uploads in progress",
                        client_path, who or "a client", STAGING_FOLDER)  # fmt: skip
        raise OutsideStorageRootError(
            f"Permission denied: {STAGING_FOLDER} is reserved for uploads in progress"
        )

    def new_staging_path(self, final: Path) -> Path:
        """Reserve a fresh name for an upload to `final`, on the filesystem that will hold it."""
        # Made again if someone removed it from the host while the server was running, but
        # never on the container's own disk while the drive is gone.
        self.check_available()
        folder = self._staging_folder_for(final.parent)
        folder.mkdir(mode=0o700, exist_ok=True)
        staging = folder / f"{secrets.token_hex(8)}.upload"
        with self._staging_lock:
            self._staging.add(staging)
        return staging

    def _staging_folder_for(self, folder: Path) -> Path:
        """Return the staging folder on `folder`'s filesystem: a rename cannot cross devices.

        Usually the root's; a filesystem mounted inside the root (another drive, a network
        share) gets one at its own top, so the final rename stays atomic there too.
        """
        try:
            device = folder.stat().st_dev
            if device == self.path.stat().st_dev:
                return self.staging_folder
            top = folder
            while top != self.path and top.parent.stat().st_dev == device:
                top = top.parent
        except OSError:
            return self.staging_folder
        return top / STAGING_FOLDER

    def commit_staging(self, staging: Path, final: Path) -> None:
        """Move a complete upload into place, replacing an older file of the same name."""
        try:
            staging.replace(final)
        finally:
            with self._staging_lock:
                self._staging.discard(staging)

    def discard_staging(self, staging: Path) -> None:
        """Delete an unfinished upload."""
        try:
            staging.unlink(missing_ok=True)
        except OSError as err:
            _LOGGER.warning("Could not remove unfinished upload %s: %s", staging, err)
        finally:
            with self._staging_lock:
                self._staging.discard(staging)

    def discard_all_staging(self) -> int:
        """Delete every unfinished upload (at shutdown); return how many there were."""
        with self._staging_lock:
            leftovers = list(self._staging)
        for staging in leftovers:
            self.discard_staging(staging)
        return len(leftovers)

    def disk_usage(self) -> shutil._ntuple_diskusage:
        """Return total, used and free bytes of the filesystem holding the root."""
        self.check_available()
        return shutil.disk_usage(self.path)
