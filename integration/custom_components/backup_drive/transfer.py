"""Keep several SFTP requests in flight on an open file: blocks written, hashed, read in order."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import Final

import asyncssh
from asyncssh import SFTPClientFile

from .errors import BackupDamaged, BackupDriveError, TransferFailed, translate_error

# Round trips, not bandwidth, limit SFTP on a fast link: large blocks with several requests in
# flight keep the pipe full (BRIEF.md section 3). Memory stays bounded by block size * in flight.
# Measured on loopback against backup-drive-server: 1 MiB blocks, 8 in flight, beat 4 MiB x 4
# both ways (4 MiB messages cost the asyncssh server twice the CPU per byte in copies), and a
# 1 MiB chunk from Home Assistant's manager goes out without a copy.
WRITE_BLOCK_SIZE: Final = 1024 * 1024
WRITES_IN_FLIGHT: Final = 8
READ_BLOCK_SIZE: Final = 1024 * 1024
READS_IN_FLIGHT: Final = 8
# Cleaning up after a failure must not hang on a dead connection.
CLEANUP_TIMEOUT: Final = 10.0


async def close_quietly(file: SFTPClientFile) -> None:
    """Close a remote file after a failure, ignoring every error."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLEANUP_TIMEOUT):
            await file.close()


def check_size(written: int, expected: int) -> None:
    """Raise when the stream ended at another size than Home Assistant announced."""
    if expected and written != expected:
        raise TransferFailed(
            f"The backup stream ended after {written} bytes, {expected} were expected; "
            "nothing was kept"
        )


class BackgroundHasher:
    """SHA-256 blocks in order on a worker thread, so the event loop keeps sending meanwhile.

    hashlib releases the GIL for large buffers: on a two-core machine hashing on the loop costs
    as much time as encrypting the stream does.
    """

    def __init__(self, limit: int) -> None:
        """Allow `limit` blocks to wait for hashing."""
        self._hash = hashlib.sha256()
        self._limit = limit
        self._pending: deque[asyncio.Task[None]] = deque()

    async def add(self, block: bytes) -> None:
        """Queue a block after the ones before it."""
        while len(self._pending) >= self._limit:
            await self._pending.popleft()
        previous = self._pending[-1] if self._pending else None
        self._pending.append(asyncio.create_task(self._update_after(previous, block)))

    async def _update_after(self, previous: asyncio.Task[None] | None, block: bytes) -> None:
        """Hash one block once the previous one is in."""
        if previous is not None:
            await previous
        await asyncio.get_running_loop().run_in_executor(None, self._hash.update, block)

    async def hexdigest(self) -> str:
        """Return the digest of everything queued."""
        while self._pending:
            await self._pending.popleft()
        return self._hash.hexdigest()

    async def cancel(self) -> None:
        """Abandon the queued blocks."""
        for task in self._pending:
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        self._pending.clear()


class BlockWriter:
    """Write blocks at increasing offsets with a few writes in flight."""

    def __init__(
        self, file: SFTPClientFile, in_flight: int, on_progress: Callable[[int], None] | None
    ) -> None:
        """Start at offset 0."""
        self._file = file
        self._in_flight = in_flight
        self._on_progress = on_progress
        self._tasks: set[asyncio.Task[int]] = set()
        self.offset = 0
        self.written = 0

    async def submit(self, block: bytes) -> None:
        """Queue one block, waiting while the pipe is full."""
        while len(self._tasks) >= self._in_flight:
            await self._collect(asyncio.FIRST_COMPLETED)
        self._tasks.add(asyncio.create_task(self._file.write(block, self.offset)))
        self.offset += len(block)

    async def drain(self) -> None:
        """Wait for every queued block."""
        while self._tasks:
            await self._collect(asyncio.ALL_COMPLETED)

    async def cancel(self) -> None:
        """Abandon the queued blocks."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _collect(self, return_when: str) -> None:
        """Wait for finished writes, raising the first failure."""
        done, pending = await asyncio.wait(self._tasks, return_when=return_when)
        self._tasks = pending
        # Look at every finished write, so that no failure goes unretrieved.
        failures = [error for task in done if (error := task.exception()) is not None]
        if failures:
            raise failures[0]
        for task in done:
            self.written += task.result()
        if self._on_progress is not None:
            self._on_progress(self.written)


async def read_exactly(file: SFTPClientFile, offset: int, length: int) -> bytes:
    """Read `length` bytes at `offset`, looping over short reads."""
    data: bytes = await file.read(length, offset)
    while len(data) < length:
        more: bytes = await file.read(length - len(data), offset + len(data))
        if not more:
            raise TransferFailed("The backup file became shorter while it was read")
        data += more
    return data


async def read_blocks(
    file: SFTPClientFile, size: int, name: str, sha256: str | None = None
) -> AsyncGenerator[bytes]:
    """Yield the file in order while the next blocks are already being read; close it at the end.

    With `sha256` (recorded when the backup was stored) the last block is held back until the
    digest matches, so damaged bytes end in BackupDamaged rather than in a complete-looking copy.
    """
    hasher = BackgroundHasher(READS_IN_FLIGHT) if sha256 else None
    tasks: deque[asyncio.Task[bytes]] = deque()
    offset = 0
    try:
        while True:
            while len(tasks) < READS_IN_FLIGHT and offset < size:
                length = min(READ_BLOCK_SIZE, size - offset)
                tasks.append(asyncio.create_task(read_exactly(file, offset, length)))
                offset += length
            if not tasks:
                if hasher is not None and size == 0:
                    await check_digest(hasher, sha256, name)
                return
            try:
                data = await tasks.popleft()
            except BackupDriveError:
                raise
            except (OSError, asyncssh.Error) as err:
                raise translate_error(err, f"Reading {name}") from err
            if hasher is not None:
                await hasher.add(data)
                if not tasks and offset >= size:
                    await check_digest(hasher, sha256, name)
            yield data
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if hasher is not None:
            await hasher.cancel()
        await close_quietly(file)


async def check_digest(hasher: BackgroundHasher, expected: str | None, name: str) -> None:
    """Raise BackupDamaged unless the bytes hashed so far have the expected sha256."""
    actual = await hasher.hexdigest()
    if actual != expected:
        raise BackupDamaged(
            f"{name} does not match the sha256 recorded when it was stored "
            f"({expected}, read {actual}); the drive may be failing"
        )
