"""Check the backup folder: that it exists and takes writes, waking the disk; its free space."""

from __future__ import annotations

import contextlib
import posixpath
import secrets

import asyncssh
from asyncssh import SFTPClient

from .errors import AccessDenied, FolderMissing


async def probe_folder(sftp: SFTPClient, path: str, *, sync: bool = False) -> None:
    """Stat the folder and write, optionally sync, and remove a probe file."""
    try:
        attrs = await sftp.stat(path)
    except asyncssh.SFTPNoSuchFile as err:
        raise FolderMissing(f"The folder {path} does not exist") from err
    except asyncssh.SFTPPermissionDenied as err:
        raise AccessDenied(f"Access to the folder {path} is denied") from err
    if attrs.type != asyncssh.FILEXFER_TYPE_DIRECTORY:
        raise FolderMissing(f"{path} is not a folder")
    probe = posixpath.join(path, f".backup_drive-probe-{secrets.token_hex(4)}")
    try:
        async with sftp.open(probe, "wb") as file:
            await file.write(b"Backup Drive write check\n")
            if sync:
                with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                    await file.fsync()
        await sftp.remove(probe)
    except asyncssh.SFTPPermissionDenied as err:
        raise AccessDenied(f"Writing in the folder {path} is not permitted") from err


async def read_disk_usage(sftp: SFTPClient, path: str) -> tuple[int, int] | None:
    """Return (free, total) bytes of the drive, when the server reports them."""
    try:
        vfs = await sftp.statvfs(path)
    except asyncssh.SFTPOpUnsupported:
        return None
    except asyncssh.SFTPNoSuchFile as err:
        raise FolderMissing(f"The folder {path} does not exist") from err
    return vfs.bavail * vfs.frsize, vfs.blocks * vfs.frsize
