"""Serve one SFTP session from the storage root: jailed paths, staged uploads, I/O in threads."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import posixpath
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh
from asyncssh import SFTPAttrs, SFTPName

from backup_drive_server.accounts import log_read_only_refusal
from backup_drive_server.staged_upload import (
    DRIVE_FULL_MESSAGE,
    StagedUpload,
    UploadNotSavedError,
    write_all_at,
)
from backup_drive_server.storage_root import OutsideStorageRootError, StorageUnavailableError

if TYPE_CHECKING:
    from backup_drive_server.sftp_server import SFTPContext

_LOGGER = logging.getLogger(__name__)


class _OpenFile:
    """A file handle given to a client: a file opened in place, or a staged upload."""

    __slots__ = ("fd", "read_buffer", "upload")

    def __init__(self, fd: int, upload: StagedUpload | None = None) -> None:
        self.fd = fd
        self.upload = upload
        # Reused by inline reads: a fresh megabyte per request costs page faults on every read.
        self.read_buffer = bytearray()

    def fileno(self) -> int:
        """Return the OS file descriptor (asyncssh's default handlers use it)."""
        return self.fd

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Reposition; asyncssh's ranges@asyncssh.com finds a sparse file's data this way."""
        return os.lseek(self.fd, offset, whence)


def _opened(file_obj: object) -> _OpenFile:
    """Return the handle asyncssh passes back, which is always one of ours."""
    if not isinstance(file_obj, _OpenFile):
        raise asyncssh.SFTPInvalidHandle("Invalid file handle")
    return file_obj


def _client_error(err: Exception) -> Exception:
    """Turn our errors into SFTP statuses with messages a person understands."""
    if isinstance(err, OutsideStorageRootError):
        return asyncssh.SFTPPermissionDenied(str(err))
    if isinstance(err, StorageUnavailableError):
        return asyncssh.SFTPFailure(str(err))
    if isinstance(err, UploadNotSavedError):
        return asyncssh.SFTPFailure(str(err))
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return asyncssh.SFTPNoSpaceOnFilesystem(DRIVE_FULL_MESSAGE)
    return err


class BackupDriveSFTPServer(asyncssh.SFTPServer):
    """One SFTP session: jailed paths, file I/O in worker threads, staged uploads."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], context: SFTPContext) -> None:
        """Serve the account that authenticated on `chan`."""
        super().__init__(chan)
        self._context = context
        self._storage = context.storage
        self._username = str(chan.get_extra_info("username"))
        account = context.accounts.get(self._username)
        self._read_only = account is None or account.read_only
        peer = chan.get_extra_info("peername")
        self._address = str(peer[0]) if peer else "unknown"
        self._who = f"{self._username} from {self._address} (SFTP)"
        self._files: set[_OpenFile] = set()
        # Uploads this session has open, by final path: until they are closed, the final name
        # answers for the upload to this session (sshfs stats a file right after creating it).
        self._uploads: dict[Path, StagedUpload] = {}

    async def _in_thread[T](self, func: Callable[..., T], *args: object) -> T:
        """Run blocking file work in the I/O pool so one slow disk never stalls other clients."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._context.io_pool, func, *args)
        except Exception as err:
            raise _client_error(err) from err

    def _local(self, path: bytes, *, follow_last: bool = True) -> Path:
        return self._storage.resolve(
            path.decode("utf-8", "surrogateescape"), follow_last=follow_last, who=self._who
        )

    def _require_write(self, what: str, path: bytes) -> None:
        if self._read_only:
            client_path = path.decode("utf-8", "surrogateescape")
            log_read_only_refusal(self._username, self._address, "SFTP", what, client_path)
            raise asyncssh.SFTPPermissionDenied(
                f"Permission denied: this account is read-only ({what})"
            )

    def _upload_at(self, local: Path) -> StagedUpload | None:
        """Return this session's upload in progress to `local`, if any."""
        return self._uploads.get(local)

    def map_path(self, path: bytes) -> bytes:
        """Map a client path into the storage root, refusing any way out."""
        try:
            return os.fsencode(self._local(path))
        except Exception as err:
            raise _client_error(err) from err

    def reverse_map_path(self, path: bytes) -> bytes:
        """Map a local path back to what the client sees."""
        return self._storage.client_path(Path(os.fsdecode(path))).encode("utf-8", "surrogateescape")

    async def realpath(self, path: bytes) -> bytes:
        """Return the canonical client path; as in any chroot, the root's parent is the root."""
        clamped = posixpath.normpath(posixpath.join(b"/", path))
        local = await self._in_thread(self._local, clamped)
        return self.reverse_map_path(os.fsencode(local))

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        """Open a file; a new or truncated file is written under a temporary name."""
        if pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND):
            self._require_write("upload", path)
        opened = await self._in_thread(self._open, path, pflags, attrs)
        self._files.add(opened)
        self._context.open_files += 1
        if opened.upload is not None:
            self._uploads[opened.upload.final] = opened.upload
        return opened

    def _open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> _OpenFile:
        local = self._local(path)
        reading = bool(pflags & asyncssh.FXF_READ)
        upload = self._upload_at(local)
        if upload is not None and not pflags & asyncssh.FXF_TRUNC:
            # A second handle on a file this session is still uploading (sshfs reopens it to
            # read back or append): it shares the staged file, which becomes the final one.
            return _OpenFile(os.open(upload.staging, self._reopen_flags(pflags)))
        if not pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND):
            fd = os.open(local, os.O_RDONLY)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.close(fd)
                raise IsADirectoryError(errno.EISDIR, "Is a directory", str(local))
            return _OpenFile(fd)
        access = os.O_RDWR if reading else os.O_WRONLY
        exists = os.path.lexists(local)
        if exists and os.path.isdir(local):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(local))
        if exists and pflags & asyncssh.FXF_CREAT and pflags & asyncssh.FXF_EXCL:
            raise FileExistsError(errno.EEXIST, "File already exists", str(local))
        if not exists and not pflags & asyncssh.FXF_CREAT:
            raise FileNotFoundError(errno.ENOENT, "No such file", str(local))
        if exists and not pflags & asyncssh.FXF_TRUNC:
            # Resuming or appending to a file that is already whole: write in place.
            append = os.O_APPEND if pflags & asyncssh.FXF_APPEND else 0
            return _OpenFile(os.open(local, access | append))
        mode = (attrs.permissions or 0o644) & 0o777
        upload = StagedUpload(self._storage, local, who=self._who, mode=mode, readable=reading)
        return _OpenFile(upload.fd, upload)

    @staticmethod
    def _reopen_flags(pflags: int) -> int:
        writing = pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND)
        if not writing:
            return os.O_RDONLY
        access = os.O_RDWR if pflags & asyncssh.FXF_READ else os.O_WRONLY
        return access | (os.O_APPEND if pflags & asyncssh.FXF_APPEND else 0)

    async def close(self, file_obj: object) -> None:
        """Close a file; a clean close moves an upload into place, an abort deletes it."""
        opened = _opened(file_obj)
        if opened in self._files:
            self._files.discard(opened)
            self._context.open_files -= 1
        # asyncssh closes the files a vanished client left open before calling exit(); the
        # channel is already closing then, and that is what tells an abort from a clean close.
        aborted = self.channel.is_closing()
        if opened.upload is not None and self._uploads.get(opened.upload.final) is opened.upload:
            del self._uploads[opened.upload.final]
        await self._in_thread(self._finish, opened, aborted)

    @staticmethod
    def _finish(opened: _OpenFile, aborted: bool) -> None:
        if opened.upload is None:
            os.close(opened.fd)
        elif aborted:
            opened.upload.discard("connection lost")
        else:
            opened.upload.commit()

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        """Read from a file: inline when the data is cached, else in the I/O pool."""
        opened = _opened(file_obj)
        # RWF_NOWAIT fails instead of waiting for the disk, so the event loop never blocks;
        # a backup being downloaded is usually in the page cache, and skipping the thread
        # hop saves a fifth of the server's CPU per GiB. Nothing awaits between the read and
        # the copy out, so requests in flight on the same file cannot share the buffer.
        if len(opened.read_buffer) < size:
            opened.read_buffer = bytearray(size)
        view = memoryview(opened.read_buffer)[:size]
        try:
            count = os.preadv(opened.fd, [view], offset, os.RWF_NOWAIT)
        except OSError:  # EAGAIN (not cached), or a filesystem without RWF_NOWAIT (FUSE)
            count = 0
        if count == size:
            return bytes(view)
        if count:
            rest = await self._in_thread(os.pread, opened.fd, size - count, offset + count)
            return bytes(view[:count]) + rest
        return await self._in_thread(os.pread, opened.fd, size, offset)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        """Write to a file; a failed write marks an upload so its close cannot publish it."""
        opened = _opened(file_obj)
        if opened.upload is not None:
            return await self._in_thread(opened.upload.write_at, offset, data)
        return await self._in_thread(write_all_at, opened.fd, offset, data)

    async def fsync(self, file_obj: object) -> None:
        """Flush a file to the drive."""
        await self._in_thread(os.fsync, _opened(file_obj).fd)

    async def stat(self, path: bytes) -> os.stat_result:
        """Return attributes, following symlinks (inside the root only)."""
        return await self._in_thread(self._stat, path, True)

    async def lstat(self, path: bytes) -> os.stat_result:
        """Return attributes of a path itself."""
        return await self._in_thread(self._stat, path, False)

    def _stat(self, path: bytes, follow: bool) -> os.stat_result:
        local = self._local(path)  # a symlink pointing out is refused, not described
        upload = self._upload_at(local)
        if upload is not None:
            return os.stat(upload.staging)
        return os.stat(local) if follow else os.lstat(self._local(path, follow_last=False))

    async def fstat(self, file_obj: object) -> os.stat_result:
        """Return attributes of an open file."""
        return await self._in_thread(os.fstat, _opened(file_obj).fd)

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        """Change size, permissions or times of a path."""
        self._require_write("setstat", path)

        def apply_to_path() -> None:
            local = self._local(path)
            upload = self._upload_at(local)
            self._apply_attrs(upload.staging if upload is not None else local, attrs)

        await self._in_thread(apply_to_path)

    async def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        """Change attributes without following a final symlink (same as setstat here)."""
        await self.setstat(path, attrs)

    async def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        """Change attributes of an open file."""
        opened = _opened(file_obj)
        if opened.upload is None:
            self._require_write("setstat", b"(open file)")
        await self._in_thread(self._apply_attrs, opened.fd, attrs)

    @staticmethod
    def _apply_attrs(target: Path | int, attrs: SFTPAttrs) -> None:
        if attrs.size is not None:
            os.truncate(target, attrs.size)
        if attrs.permissions is not None:
            try:
                os.chmod(target, attrs.permissions & 0o7777)
            except PermissionError:
                # exFAT, NTFS and FAT keep no Unix modes; clients send them anyway (put -p).
                _LOGGER.debug("Ignored a mode change the drive's filesystem cannot store")
        if attrs.atime is not None and attrs.mtime is not None:
            os.utime(target, (attrs.atime, attrs.mtime))

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        """List a folder (the folder of uploads in progress is left out)."""
        entries = await self._in_thread(self._list, path)
        for name, attrs in entries:
            yield SFTPName(name, attrs=attrs)

    def _list(self, path: bytes) -> list[tuple[bytes, SFTPAttrs]]:
        local = self._local(path)
        entries = [
            (b".", SFTPAttrs.from_local(os.stat(local))),
            (b"..", SFTPAttrs.from_local(os.stat(local.parent))),
        ]
        with os.scandir(local) as scan:
            for entry in scan:
                if self._storage.hides(local, entry.name):
                    continue
                attrs = SFTPAttrs.from_local(entry.stat(follow_symlinks=False))
                entries.append((os.fsencode(entry.name), attrs))
        return entries

    async def remove(self, path: bytes) -> None:
        """Delete a file (or a symlink itself)."""
        self._require_write("remove", path)
        await self._in_thread(lambda: os.remove(self._local(path, follow_last=False)))

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        """Create a folder."""
        self._require_write("mkdir", path)
        await self._in_thread(
            lambda: os.mkdir(self._local(path), (attrs.permissions or 0o755) & 0o777)
        )

    async def rmdir(self, path: bytes) -> None:
        """Delete an empty folder."""
        self._require_write("rmdir", path)
        await self._in_thread(lambda: os.rmdir(self._local(path, follow_last=False)))

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        """Rename without replacing (SFTP v3 semantics)."""
        self._require_write("rename", oldpath)
        await self._in_thread(self._rename, oldpath, newpath, False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        """Rename, replacing the target atomically (posix-rename@openssh.com)."""
        self._require_write("rename", oldpath)
        await self._in_thread(self._rename, oldpath, newpath, True)

    def _rename(self, oldpath: bytes, newpath: bytes, replace: bool) -> None:
        source = self._local(oldpath, follow_last=False)
        target = self._local(newpath, follow_last=False)
        if not replace and os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File already exists", str(target))
        os.replace(source, target)

    async def readlink(self, path: bytes) -> bytes:
        """Return a symlink's target when it stays inside the root."""
        local = await self._in_thread(self._local, path)
        return self.reverse_map_path(os.fsencode(local))

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        """Refuse: links could point out of the drive, and FAT and exFAT have none."""
        self._require_write("symlink", newpath)
        raise asyncssh.SFTPOpUnsupported("Links are not supported on the backup drive")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        """Refuse hard links too."""
        self._require_write("link", newpath)
        raise asyncssh.SFTPOpUnsupported("Links are not supported on the backup drive")

    async def statvfs(self, path: bytes) -> os.statvfs_result:
        """Return the drive's size and free space (`df` in sftp)."""
        return await self._in_thread(lambda: os.statvfs(self._local(path)))

    async def fstatvfs(self, file_obj: object) -> os.statvfs_result:
        """Return the drive's size and free space for an open file."""
        return await self._in_thread(os.fstatvfs, _opened(file_obj).fd)

    async def exit(self) -> None:
        """End the session with exit status 0 so OpenSSH's scp reports success."""
        for leftover in list(self._files):
            await self.close(leftover)
        if not self.channel.is_closing():
            self.channel.exit(0)
