"""Verify stored backups: the sha256 recorded at upload, and a complete, readable outer tar."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from homeassistant.util import dt as dt_util

from .const import LOGGER
from .errors import BackupDriveError, BackupFileMissing, CannotConnect
from .health_record import RESULT_MISMATCH, RESULT_OK, RESULT_UNREADABLE, VerificationResult
from .sidecar import StoredBackup

if TYPE_CHECKING:
    from .coordinator import BackupDriveCoordinator

TAR_BLOCK: Final = 512
# Link, directory, device and fifo members carry no data, whatever their size field says.
DATALESS_TYPES: Final = frozenset(b"123456")


class VerificationPaused(Exception):
    """An upload to the same drive started; the backup is verified again later."""


@dataclass(frozen=True, kw_only=True)
class BackupCheck:
    """What verifying one backup found."""

    result: str
    sha256: str | None
    detail: str


def header_checksum_ok(header: bytes) -> bool:
    """Return whether a tar header's checksum field matches its bytes."""
    field = header[148:156].rstrip(b"\0 ").lstrip(b" ")
    try:
        recorded = int(field or b"x", 8)
    except ValueError:
        return False
    computed = sum(header[:148]) + 8 * 0x20 + sum(header[156:])
    return recorded == computed


def member_size(header: bytes) -> int:
    """Return the data size a tar header announces (octal, or GNU base-256)."""
    field = header[124:136]
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    return int(field.rstrip(b"\0 ").lstrip(b" ") or b"0", 8)


class TarWalker:
    """Follow a tar stream header to header, without copying member data, to its end marker."""

    def __init__(self) -> None:
        """Expect a header at offset 0."""
        self.offset = 0
        self._next_header = 0
        self._carry = b""
        self._zero_blocks = 0
        self.members = 0
        self.ended = False
        self.problem: str | None = None

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the archive."""
        start, self.offset = self.offset, self.offset + len(data)
        while not self.ended and self.problem is None and self._next_header < self.offset:
            begin = self._next_header - start
            wanted = TAR_BLOCK - len(self._carry)
            self._carry += data[max(begin, 0) : max(begin, 0) + wanted]
            if len(self._carry) < TAR_BLOCK:
                return
            header, self._carry = self._carry, b""
            self._next_header += TAR_BLOCK
            self._read_header(header)

    def _read_header(self, header: bytes) -> None:
        """Check one header and find where the next one starts."""
        if not any(header):
            self._zero_blocks += 1
            self.ended = self._zero_blocks == 2
            return
        if self._zero_blocks or not header_checksum_ok(header):
            self.problem = f"the tar header at byte {self._next_header - TAR_BLOCK} is damaged"
            return
        try:
            size = 0 if header[156] in DATALESS_TYPES else member_size(header)
        except ValueError:
            self.problem = f"the tar header at byte {self._next_header - TAR_BLOCK} is damaged"
            return
        self.members += 1
        self._next_header += -(-size // TAR_BLOCK) * TAR_BLOCK

    def finish(self) -> str | None:
        """Return what is wrong with the archive as a whole, or None."""
        if self.problem is None and not self.ended:
            self.problem = f"the archive ends after {self.offset} bytes, before its end marker"
        return self.problem


async def check_archive(
    blocks: AsyncIterator[bytes], expected_sha256: str | None, paused: Callable[[], bool]
) -> BackupCheck:
    """Hash an archive on a worker thread and walk its tar headers, one block at a time.

    Raises BackupFileMissing when it went away, CannotConnect when the drive did, and
    VerificationPaused when `paused()` turns true.
    """
    digest = hashlib.sha256()
    walker = TarWalker()
    loop = asyncio.get_running_loop()
    try:
        async for block in blocks:
            if paused():
                raise VerificationPaused
            walker.feed(block)
            # hashlib releases the GIL for large buffers: the event loop keeps running meanwhile.
            await loop.run_in_executor(None, digest.update, block)
    except (BackupFileMissing, CannotConnect):
        raise
    except BackupDriveError as err:
        return BackupCheck(result=RESULT_UNREADABLE, sha256=None, detail=str(err))
    finally:
        if isinstance(blocks, AsyncGenerator):
            await blocks.aclose()
    sha256 = digest.hexdigest()
    if problem := walker.finish():
        return BackupCheck(result=RESULT_UNREADABLE, sha256=sha256, detail=problem)
    if expected_sha256 is not None and sha256 != expected_sha256:
        return BackupCheck(
            result=RESULT_MISMATCH,
            sha256=sha256,
            detail=f"sha256 {sha256} differs from {expected_sha256} recorded at upload",
        )
    return BackupCheck(result=RESULT_OK, sha256=sha256, detail=f"{walker.members} members")


def expected_sha256(stored: StoredBackup, earlier: VerificationResult | None) -> str | None:
    """Return the checksum a backup must have: its sidecar's, else the first verification's."""
    if stored.sha256:
        return stored.sha256
    return earlier.sha256 if earlier is not None and earlier.result == RESULT_OK else None


async def verify_backup(
    coordinator: BackupDriveCoordinator, stored: StoredBackup, earlier: VerificationResult | None
) -> VerificationResult:
    """Check one backup, starting over whenever an upload to the drive interrupts it."""
    while True:
        await coordinator.no_uploads.wait()
        blocks = await coordinator.client.open_download(stored, check_integrity=False)
        try:
            check = await check_archive(
                blocks,
                expected_sha256(stored, earlier),
                lambda: coordinator.uploads_running > 0,
            )
        except VerificationPaused:
            LOGGER.debug("Verification of %s paused for an upload", stored.file_name)
            continue
        if check.result != RESULT_OK:
            LOGGER.warning("Backup %s on %s: %s", stored.file_name, coordinator.name, check.detail)
        return VerificationResult(
            verified_at=dt_util.utcnow(),
            result=check.result,
            sha256=check.sha256 if check.result == RESULT_OK else expected_sha256(stored, earlier),
            # A choice to keep a damaged backup holds while it stays damaged the same way.
            kept=earlier is not None and earlier.kept and earlier.result == check.result,
        )


async def verify_all(coordinator: BackupDriveCoordinator) -> None:
    """Verify every stored backup, oldest first, one at a time; record each result on the drive."""
    client = coordinator.client
    # A backup being uploaded is verified too, once it is complete.
    await coordinator.no_uploads.wait()
    try:
        backups = await client.list_backups(fresh=True)
        if coordinator.record is None:
            coordinator.record = await client.read_health()
        record = coordinator.record
        for stored in sorted(backups.values(), key=lambda s: s.backup.date):
            backup_id = stored.backup.backup_id
            try:
                result = await verify_backup(coordinator, stored, record.backups.get(backup_id))
            except BackupFileMissing:
                continue  # deleted meanwhile
            record.backups[backup_id] = result
            await coordinator.async_save_record()
        record.last_verified = dt_util.utcnow()
        await coordinator.async_save_record()
    except BackupDriveError as err:
        LOGGER.warning("Verification of %s stopped: %s", coordinator.name, err)
    await coordinator.async_refresh()
