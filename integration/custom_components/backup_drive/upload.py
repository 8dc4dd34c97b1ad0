"""Upload a backup: the archive under a temporary name, renamed into place, then its sidecar."""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

import asyncssh
from asyncssh import SFTPClient, SFTPClientFile
from homeassistant.components.backup import AgentBackup

from .const import LOGGER
from .errors import BackupDriveError, FolderMissing
from .session import DriveSession
from .sidecar import sidecar_content, sidecar_name
from .transfer import (
    CLEANUP_TIMEOUT,
    WRITE_BLOCK_SIZE,
    WRITES_IN_FLIGHT,
    BackgroundHasher,
    BlockWriter,
    check_size,
    close_quietly,
)

# Contract with backup-drive-server: it hides names of this shape from listings and removes
# them after an aborted upload or a crash (is_staging_name in backup_drive_server/storage_root.py
# matches `^\..+\.partial-[0-9a-f]{8}$`). Change both sides together.
STAGING_SUFFIX: Final = ".partial-"


def staging_name(name: str) -> str:
    """Return a hidden temporary name for `name` while it is written."""
    hidden = name if name.startswith(".") else f".{name}"
    return f"{hidden}{STAGING_SUFFIX}{secrets.token_hex(4)}"


@dataclass(frozen=True, kw_only=True)
class UploadResult:
    """What was written: size and sha256 of the archive."""

    size: int
    sha256: str


async def upload_backup(
    session: DriveSession,
    folder: str,
    stream: AsyncIterator[bytes],
    *,
    backup: AgentBackup,
    file_name: str,
    on_progress: Callable[[int], None] | None = None,
) -> UploadResult:
    """Stream an archive to a temporary name, rename it into place, then write its sidecar."""
    what = f"Uploading {file_name}"
    final = posixpath.join(folder, file_name)
    temp = posixpath.join(folder, staging_name(file_name))

    async def open_for_writing(sftp: SFTPClient) -> tuple[SFTPClientFile, SFTPClient]:
        try:
            return await sftp.open(temp, "wb"), sftp
        except asyncssh.SFTPNoSuchFile as err:
            raise FolderMissing(f"The folder {folder} does not exist") from err

    # Nothing of the stream is consumed yet, so opening may reconnect a dropped session.
    file, sftp = await session.run_with_reconnect(what, open_for_writing)
    try:
        try:
            result = await _write_archive(file, stream, backup.size, on_progress)
            await _rename(sftp, temp, final)
        except BaseException:
            await _remove_quietly(sftp, temp)
            raise
        try:
            await _write_sidecar(sftp, folder, backup, final, result)
        except BaseException:
            # An archive without its sidecar is invisible to Home Assistant: take it away.
            await _remove_quietly(sftp, final)
            raise
    except BackupDriveError:
        raise
    except (OSError, asyncssh.Error) as err:
        raise await session.translate_failure(err, what) from err
    LOGGER.debug("Uploaded %s (%d bytes, sha256 %s)", final, result.size, result.sha256)
    return result


async def _write_archive(
    file: SFTPClientFile,
    stream: AsyncIterator[bytes],
    expected_size: int,
    on_progress: Callable[[int], None] | None,
) -> UploadResult:
    """Re-block the stream into large writes with several in flight, hashing as it goes."""
    hasher = BackgroundHasher(WRITES_IN_FLIGHT)
    writer = BlockWriter(file, WRITES_IN_FLIGHT, on_progress)

    async def send(block: bytes) -> None:
        await hasher.add(block)
        await writer.submit(block)

    try:
        parts: list[bytes] = []
        buffered = 0
        async for chunk in stream:
            parts.append(chunk)
            buffered += len(chunk)
            if buffered < WRITE_BLOCK_SIZE:
                continue
            data = b"".join(parts)
            whole = len(data) - len(data) % WRITE_BLOCK_SIZE
            for start in range(0, whole, WRITE_BLOCK_SIZE):
                await send(data[start : start + WRITE_BLOCK_SIZE])
            parts = [data[whole:]] if whole < len(data) else []
            buffered = len(data) - whole
        if parts:
            await send(b"".join(parts))
        await writer.drain()
        check_size(writer.offset, expected_size)
        with contextlib.suppress(asyncssh.SFTPOpUnsupported):
            await file.fsync()
        await file.close()
        digest = await hasher.hexdigest()
    except BaseException:
        await writer.cancel()
        await hasher.cancel()
        await close_quietly(file)
        raise
    return UploadResult(size=writer.offset, sha256=digest)


async def _write_sidecar(
    sftp: SFTPClient, folder: str, backup: AgentBackup, archive: str, result: UploadResult
) -> None:
    """Write the metadata file under a temporary name and rename it into place."""
    sidecar = sidecar_content(backup, archive, result.sha256, result.size)
    await write_small_file(sftp, posixpath.join(folder, sidecar_name(backup.backup_id)), sidecar)


async def write_small_file(sftp: SFTPClient, path: str, content: bytes) -> None:
    """Write a small file under a temporary name and rename it over `path` in one step."""
    folder, name = posixpath.split(path)
    temp = posixpath.join(folder, staging_name(name))
    try:
        async with sftp.open(temp, "wb") as file:
            await file.write(content)
        await _rename(sftp, temp, path)
    except BaseException:
        await _remove_quietly(sftp, temp)
        raise


async def _rename(sftp: SFTPClient, source: str, target: str) -> None:
    """Rename, replacing the target: POSIX rename where the server offers it."""
    try:
        await sftp.posix_rename(source, target)
    except asyncssh.SFTPOpUnsupported:
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp.remove(target)
        await sftp.rename(source, target)


async def _remove_quietly(sftp: SFTPClient, path: str) -> None:
    """Remove a file after a failure, ignoring every error."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLEANUP_TIMEOUT):
            await sftp.remove(path)
