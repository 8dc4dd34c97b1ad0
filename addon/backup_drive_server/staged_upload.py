"""Stage an upload in a hidden folder and rename it into place only when it is complete."""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from backup_drive_server.storage_root import StorageRoot

_LOGGER = logging.getLogger(__name__)

# Uploads in progress live in this folder at the top of the storage root (one filesystem, so the
# final rename stays atomic) under random names. Both servers hide it and refuse every path into
# it, so no name a user chooses can collide with an upload's, and every name the filesystem
# accepts can be uploaded (a suffix on the final name would push long names over 255 bytes).
STAGING_FOLDER = ".backup-drive-staging"
DRIVE_FULL_MESSAGE = "The backup drive is full: free some space and try again"


def write_all_at(fd: int, offset: int, data: bytes | memoryview) -> int:
    """Write all of `data` at `offset` (pwrite may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
    return len(data)


class UploadNotSavedError(Exception):
    """An upload that was discarded instead of published; the message says why."""


class StagedUpload:
    """One upload: written in the staging folder, published by commit(), removed by discard().

    The failure rules of both servers live here: a failed write makes the upload unpublishable,
    commit() flushes to the drive before the atomic rename, and whatever goes wrong on the way
    leaves nothing behind, neither in the staging folder nor at the final name.
    """

    def __init__(
        self,
        storage: StorageRoot,
        final: Path,
        *,
        who: str,
        mode: int = 0o666,
        readable: bool = False,
    ) -> None:
        """Create the staged file for `final` (mode as for open(), so the umask applies)."""
        if not final.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such folder", str(final.parent))
        self.final = final
        self.failed: OSError | None = None
        self._storage = storage
        self._who = who
        self._appended = 0
        self._fd_open = True
        self._finished = False
        self.staging = storage.new_staging_path(final)
        access = os.O_RDWR if readable else os.O_WRONLY
        try:
            self.fd = os.open(self.staging, access | os.O_CREAT | os.O_EXCL, mode)
        except OSError:
            storage.discard_staging(self.staging)
            raise

    def write_at(self, offset: int, data: bytes | memoryview) -> int:
        """Write `data` at `offset`; a failure is remembered so the upload is never published."""
        try:
            return write_all_at(self.fd, offset, data)
        except OSError as err:
            self.failed = err
            raise

    def append(self, data: bytes | memoryview) -> int:
        """Write `data` after everything appended so far (a stream's body, one writer)."""
        written = self.write_at(self._appended, data)
        self._appended += written
        return written

    def commit(self, *, expected_size: int | None = None) -> None:
        """Flush the upload to the drive and rename it into place, or discard it and raise."""
        try:
            self._check_complete(expected_size)
            # Without the flush the rename can reach the drive before the data: unplugged or
            # powered off then, FAT and exFAT keep an empty or torn file under the final name.
            os.fsync(self.fd)
            self._close()
            self._storage.commit_staging(self.staging, self.final)
            self._finished = True
        except BaseException as err:
            self.discard(str(err))
            raise

    def _check_complete(self, expected_size: int | None) -> None:
        client_path = self._storage.client_path(self.final)
        if self.failed is not None:
            raise UploadNotSavedError(
                f"Upload failed ({self.failed.strerror}); nothing was saved as {client_path}"
            )
        size = os.fstat(self.fd).st_size
        if expected_size is not None and size != expected_size:
            raise UploadNotSavedError(
                f"Upload incomplete ({size} of {expected_size} bytes); nothing was saved as "
                f"{client_path}"
            )
        if self.final.is_dir():
            raise IsADirectoryError(errno.EISDIR, "A folder has that name", str(self.final))

    def discard(self, reason: str) -> None:
        """Close and delete the upload, logging `reason`; a second call does nothing."""
        if self._finished:
            return
        self._finished = True
        size = os.fstat(self.fd).st_size if self._fd_open else None
        self._close()
        self._storage.discard_staging(self.staging)
        _LOGGER.warning(
            "Discarded unfinished upload of %s by %s (%s; %s bytes written)",
            self._storage.client_path(self.final), self._who, reason,
            "?" if size is None else size,
        )  # fmt: skip

    def _close(self) -> None:
        # Closed exactly once: discard() may follow a commit() that failed after closing.
        if self._fd_open:
            self._fd_open = False
            os.close(self.fd)
