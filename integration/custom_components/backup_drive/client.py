"""Talk SFTP to a Backup Drive (or any SFTP server): the session and every file operation."""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import asyncssh
from asyncssh import SFTPClient, SFTPClientFile, SSHClientConnection
from homeassistant.components.backup import AgentBackup

from .const import LOGGER
from .errors import (
    CONNECTION_ERRORS,
    AccessDenied,
    BackupDriveError,
    BackupFileMissing,
    CannotConnect,
    FolderMissing,
    HostKeyMismatch,
    InvalidAuth,
    InvalidPrivateKey,
    TransferFailed,
    describe_error,
    translate_error,
)
from .sidecar import SIDECAR_SUFFIX, StoredBackup, parse_sidecar, sidecar_content, sidecar_name
from .transfer import BackgroundHasher, BlockWriter, check_size, read_exactly

# Round trips, not bandwidth, limit SFTP on a fast link: large blocks with several requests in
# flight keep the pipe full (BRIEF.md section 3). Memory stays bounded by block size * in flight.
# Measured on loopback against backup-drive-server: 1 MiB blocks, 8 in flight, beat 4 MiB x 4
# both ways (4 MiB messages cost the asyncssh server twice the CPU per byte in copies), and a
# 1 MiB chunk from Home Assistant's manager goes out without a copy.
WRITE_BLOCK_SIZE: Final = 1024 * 1024
WRITES_IN_FLIGHT: Final = 8
READ_BLOCK_SIZE: Final = 1024 * 1024
READS_IN_FLIGHT: Final = 8
# An unreachable drive must not hold up Home Assistant's startup; the entry retries by itself.
CONNECT_TIMEOUT: Final = 5.0
# Cleaning up after a failure must not hang on a dead connection.
CLEANUP_TIMEOUT: Final = 10.0
LIST_CACHE_SECONDS: Final = 30.0
SIDECAR_READS_IN_FLIGHT: Final = 64
SIDECAR_READ_SIZE: Final = 256 * 1024
# AES-GCM runs on the CPU's AES instructions; asyncssh's default, chacha20-poly1305, is slower
# on every machine we measured. The rest of asyncssh's defaults follow as fallbacks.
ENCRYPTION_ALGS: Final = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
KEEPALIVE_INTERVAL: Final = 30
RECEIVE_WINDOW: Final = 2 * READS_IN_FLIGHT * READ_BLOCK_SIZE
RECEIVE_PACKET_SIZE: Final = 256 * 1024


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Where the drive is and how to log in."""

    host: str
    port: int
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    host_key: str
    path: str


type _SidecarRecord = tuple[tuple[int | None, int | None], StoredBackup | None]


@dataclass(frozen=True, kw_only=True)
class UploadResult:
    """What was written: size and sha256 of the archive."""

    size: int
    sha256: str


def normalize_path(path: str) -> str:
    """Return an absolute folder path without a trailing slash."""
    normalized = posixpath.normpath(path.strip())
    return "/" if normalized in ("/", "//") else normalized


def host_key_line(key: asyncssh.SSHKey) -> str:
    """Return a public key as an OpenSSH one-line key without comment."""
    algorithm, data = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {data}"


def fingerprint(host_key: str) -> str:
    """Return the SHA256 fingerprint of an OpenSSH one-line public key."""
    try:
        return asyncssh.import_public_key(host_key).get_fingerprint("sha256")
    except (asyncssh.KeyImportError, ValueError) as err:
        raise TransferFailed(f"The stored host key cannot be read: {err}") from err


def check_private_key(private_key: str) -> None:
    """Raise InvalidPrivateKey unless the text is an unencrypted private key."""
    try:
        asyncssh.import_private_key(private_key)
    except (asyncssh.KeyImportError, ValueError) as err:
        raise InvalidPrivateKey(f"The private key cannot be read: {err}") from err


async def fetch_host_key(host: str, port: int, connect_timeout: float = CONNECT_TIMEOUT) -> str:
    """Return the host key the server presents, without logging in."""
    try:
        async with asyncio.timeout(connect_timeout):
            key = await asyncssh.get_server_host_key(host, port, config=None)
    except (OSError, TimeoutError, asyncssh.Error) as err:
        raise CannotConnect(f"Cannot connect to {host}:{port}: {describe_error(err)}") from err
    if key is None:
        raise CannotConnect(f"{host}:{port} did not present a host key")
    return host_key_line(key)


class _ConnectionWatcher(asyncssh.SSHClient):
    """Tell the client when its SSH connection closes, so the next call reconnects."""

    def __init__(self, on_lost: Callable[[], None]) -> None:
        """Store the callback."""
        self._on_lost = on_lost

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        self._on_lost()


class BackupDriveClient:
    """One SFTP session to the drive, reused across calls and reopened when it drops."""

    def __init__(
        self, settings: ServerSettings, *, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        """Prepare; nothing connects until the first call."""
        self.settings = settings
        self.path = normalize_path(settings.path)
        self._connect_timeout = connect_timeout
        self._connection: SSHClientConnection | None = None
        self._sftp: SFTPClient | None = None
        self._connect_lock = asyncio.Lock()
        self._cache: dict[str, StoredBackup] | None = None
        self._cache_expires = 0.0
        # Every sidecar read so far, by name, with the (size, mtime) it had then.
        self._sidecars: dict[str, _SidecarRecord] = {}
        self.server_version: str | None = None

    @property
    def connected(self) -> bool:
        """Whether an SFTP session is open right now."""
        return self._sftp is not None

    @property
    def cached_backups(self) -> int | None:
        """How many backups the listing cache holds, if it is filled."""
        return None if self._cache is None else len(self._cache)

    def _remote(self, name: str) -> str:
        """Return the full path of a file in the backup folder."""
        return posixpath.join(self.path, name)

    def _options(self) -> asyncssh.SSHClientConnectionOptions:
        """Build the connection options (reads nothing from ~/.ssh)."""
        settings = self.settings
        client_keys: list[asyncssh.SSHKey] = []
        if settings.private_key:
            try:
                client_keys.append(asyncssh.import_private_key(settings.private_key))
            except (asyncssh.KeyImportError, ValueError) as err:
                raise InvalidPrivateKey(f"The private key cannot be read: {err}") from err
        try:
            trusted = asyncssh.import_public_key(settings.host_key)
        except (asyncssh.KeyImportError, ValueError) as err:
            raise TransferFailed(f"The stored host key cannot be read: {err}") from err
        return asyncssh.SSHClientConnectionOptions(
            username=settings.username,
            password=settings.password,
            client_keys=client_keys,
            agent_path=None,
            # Pinned: the only key accepted is the one the user (or the add-on) gave us.
            known_hosts=([trusted], [], []),
            config=None,
            encryption_algs=ENCRYPTION_ALGS,
            compression_algs=None,
            connect_timeout=self._connect_timeout,
            keepalive_interval=KEEPALIVE_INTERVAL,
            keepalive_count_max=3,
            # Room for every read in flight, in few large packets: fewer round trips and less
            # per-packet work on both ends of a download.
            window=RECEIVE_WINDOW,
            max_pktsize=RECEIVE_PACKET_SIZE,
        )

    async def _open_session(self) -> SFTPClient:
        """Return the SFTP session, connecting when there is none."""
        if self._sftp is not None:
            return self._sftp
        async with self._connect_lock:
            # Another call may have connected while this one waited for the lock.
            return self._current_session() or await self._connect()

    def _current_session(self) -> SFTPClient | None:
        """Return the open SFTP session, if any."""
        return self._sftp

    async def _connect(self) -> SFTPClient:
        """Open the SSH connection and the SFTP session."""
        settings = self.settings
        where = f"{settings.host}:{settings.port}"
        options = self._options()
        connection: SSHClientConnection | None = None

        def lost() -> None:
            if self._connection is connection:
                self._connection = None
                self._sftp = None

        try:
            async with asyncio.timeout(self._connect_timeout + 1):
                connection = await asyncssh.connect(
                    settings.host,
                    settings.port,
                    client_factory=lambda: _ConnectionWatcher(lost),
                    options=options,
                )
            self._connection = connection
            sftp = await connection.start_sftp_client()
        except asyncssh.HostKeyNotVerifiable as err:
            raise await self._host_key_mismatch(where) from err
        except asyncssh.PermissionDenied as err:
            raise InvalidAuth(f"{where} refused the login of {settings.username}") from err
        except (OSError, TimeoutError, asyncssh.Error) as err:
            await self.close()
            raise CannotConnect(f"Cannot connect to {where}: {describe_error(err)}") from err
        self._sftp = sftp
        self.server_version = connection.get_extra_info("server_version")
        LOGGER.debug("Connected to %s (%s)", where, self.server_version)
        return sftp

    async def _host_key_mismatch(self, where: str) -> HostKeyMismatch:
        """Build the error for a server whose key changed, naming both fingerprints."""
        expected = fingerprint(self.settings.host_key)
        offered_key: str | None = None
        with contextlib.suppress(BackupDriveError):
            offered_key = await fetch_host_key(
                self.settings.host, self.settings.port, self._connect_timeout
            )
        offered = fingerprint(offered_key) if offered_key else None
        error = HostKeyMismatch(
            f"{where} presented host key {offered or 'of another type'}, "
            f"but {expected} is the trusted one",
            expected=expected,
            offered=offered,
        )
        error.offered_key = offered_key
        return error

    async def close(self) -> None:
        """Close the SSH connection, if any."""
        connection, self._connection, self._sftp = self._connection, None, None
        if connection is not None:
            connection.close()
            with contextlib.suppress(Exception):
                await connection.wait_closed()

    async def _run[T](self, what: str, operation: Callable[[SFTPClient], Awaitable[T]]) -> T:
        """Run an idempotent operation, reconnecting once if the session had dropped."""
        for attempt in (1, 2):
            sftp = await self._open_session()
            try:
                return await operation(sftp)
            except BackupDriveError:
                raise
            except CONNECTION_ERRORS as err:
                await self.close()
                if attempt == 2:
                    raise translate_error(err, what) from err
                LOGGER.debug("%s: connection dropped, reconnecting", what)
            except (OSError, asyncssh.Error) as err:
                raise translate_error(err, what) from err
        raise AssertionError("unreachable")  # pragma: no cover

    async def check_folder(self) -> None:
        """Raise unless the backup folder exists and we may write in it."""
        await self._run("Checking the backup folder", self._probe_folder)

    async def wake(self) -> None:
        """Write and sync a small file, so that a spun-down disk is spinning afterwards."""
        await self._run("Waking the drive", lambda sftp: self._probe_folder(sftp, sync=True))

    async def keep_awake(self, interval: float) -> None:
        """Wake the drive every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.wake()
            except BackupDriveError as err:
                LOGGER.warning("Could not keep the drive awake: %s", err)

    async def _probe_folder(self, sftp: SFTPClient, *, sync: bool = False) -> None:
        """Stat the folder and write, optionally sync, and remove a probe file."""
        try:
            attrs = await sftp.stat(self.path)
        except asyncssh.SFTPNoSuchFile as err:
            raise FolderMissing(f"The folder {self.path} does not exist") from err
        except asyncssh.SFTPPermissionDenied as err:
            raise AccessDenied(f"Access to the folder {self.path} is denied") from err
        if attrs.type != asyncssh.FILEXFER_TYPE_DIRECTORY:
            raise FolderMissing(f"{self.path} is not a folder")
        probe = self._remote(f".backup_drive-probe-{secrets.token_hex(4)}")
        try:
            async with sftp.open(probe, "wb") as file:
                await file.write(b"Backup Drive write check\n")
                if sync:
                    with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                        await file.fsync()
            await sftp.remove(probe)
        except asyncssh.SFTPPermissionDenied as err:
            raise AccessDenied(f"Writing in the folder {self.path} is not permitted") from err

    def invalidate_cache(self) -> None:
        """Forget the cached listing."""
        self._cache = None

    async def list_backups(self, *, fresh: bool = False) -> dict[str, StoredBackup]:
        """Return the backups in the folder by id, from a short-lived cache unless `fresh`."""
        if not fresh and self._cache is not None and time.monotonic() < self._cache_expires:
            return self._cache
        backups = await self._run("Listing backups", self._read_all_sidecars)
        self._cache = backups
        self._cache_expires = time.monotonic() + LIST_CACHE_SECONDS
        return backups

    async def find_backup(self, backup_id: str) -> StoredBackup:
        """Return one backup, raising BackupFileMissing when it is not on the drive."""
        if "/" in backup_id or backup_id.startswith(".") or not backup_id:
            raise BackupFileMissing(f"Backup {backup_id!r} not found")
        if (
            self._cache is not None
            and time.monotonic() < self._cache_expires
            and backup_id in self._cache
        ):
            return self._cache[backup_id]
        stored = await self._run(
            f"Reading backup {backup_id}",
            lambda sftp: self._read_sidecar(sftp, sidecar_name(backup_id)),
        )
        if stored is None or stored.backup.backup_id != backup_id:
            raise BackupFileMissing(f"Backup {backup_id} not found")
        return stored

    async def _read_all_sidecars(self, sftp: SFTPClient) -> dict[str, StoredBackup]:
        """Read the metadata files that are new or changed since the last listing, many at once.

        The directory listing carries each file's size and modification time; a sidecar whose
        both are unchanged is not read again (nor its error logged again).
        """
        try:
            entries = await sftp.readdir(self.path)
        except asyncssh.SFTPNoSuchFile as err:
            raise FolderMissing(f"The folder {self.path} does not exist") from err
        current: dict[str, tuple[int | None, int | None]] = {
            name: (entry.attrs.size, entry.attrs.mtime)
            for entry in entries
            if isinstance(name := entry.filename, str)
            and name.startswith(".")
            and name.endswith(SIDECAR_SUFFIX)
        }
        known = self._sidecars
        limit = asyncio.Semaphore(SIDECAR_READS_IN_FLIGHT)

        async def read_one(name: str) -> tuple[str, _SidecarRecord] | None:
            async with limit:
                try:
                    return name, (current[name], await self._read_sidecar(sftp, name))
                except BackupFileMissing:
                    return None  # deleted while we listed

        changed = [
            name
            for name, stamp in current.items()
            if None in stamp or name not in known or known[name][0] != stamp
        ]
        fresh = dict(r for r in await asyncio.gather(*map(read_one, changed)) if r is not None)
        self._sidecars = {
            name: fresh.get(name) or known[name]
            for name in current
            if name in fresh or name in known
        }
        return {
            stored.backup.backup_id: stored
            for _, stored in self._sidecars.values()
            if stored is not None
        }

    async def _read_sidecar(self, sftp: SFTPClient, name: str) -> StoredBackup | None:
        """Read one metadata file; None (and a log line) when it cannot be understood."""
        path = self._remote(name)
        try:
            async with sftp.open(path, "rb") as file:
                raw: bytes = await file.read(SIDECAR_READ_SIZE)
                if len(raw) == SIDECAR_READ_SIZE:
                    rest: bytes = await file.read()
                    raw += rest
        except asyncssh.SFTPNoSuchFile as err:
            raise BackupFileMissing(f"{path} not found") from err
        return parse_sidecar(raw, path)

    async def upload(
        self,
        stream: AsyncIterator[bytes],
        *,
        backup: AgentBackup,
        file_name: str,
        on_progress: Callable[[int], None] | None = None,
    ) -> UploadResult:
        """Stream an archive to a temporary name, rename it into place, then write its sidecar."""
        what = f"Uploading {file_name}"
        final = self._remote(file_name)
        temp = self._remote(f".{file_name}.partial-{secrets.token_hex(4)}")
        self.invalidate_cache()
        # Nothing of the stream is consumed yet, so opening may reconnect a dropped session.
        file, sftp = await self._run(what, lambda sftp: self._open_for_writing(sftp, temp))
        try:
            try:
                result = await self._write_archive(file, stream, backup.size, on_progress)
                await self._rename(sftp, temp, final)
            except BaseException:
                await self._remove_quietly(sftp, temp)
                raise
            try:
                await self._write_sidecar(sftp, backup, file_name, result)
            except BaseException:
                # An archive without its sidecar is invisible to Home Assistant: take it away.
                await self._remove_quietly(sftp, final)
                raise
        except BackupDriveError:
            raise
        except (OSError, asyncssh.Error) as err:
            if isinstance(err, CONNECTION_ERRORS):
                await self.close()
            raise translate_error(err, what) from err
        finally:
            self.invalidate_cache()
        LOGGER.debug("Uploaded %s (%d bytes, sha256 %s)", final, result.size, result.sha256)
        return result

    async def _open_for_writing(
        self, sftp: SFTPClient, path: str
    ) -> tuple[SFTPClientFile, SFTPClient]:
        """Create a file; return it with the session it belongs to."""
        try:
            return await sftp.open(path, "wb"), sftp
        except asyncssh.SFTPNoSuchFile as err:
            raise FolderMissing(f"The folder {self.path} does not exist") from err

    async def _write_archive(
        self,
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
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLEANUP_TIMEOUT):
                    await file.close()
            raise
        return UploadResult(size=writer.offset, sha256=digest)

    async def _write_sidecar(
        self, sftp: SFTPClient, backup: AgentBackup, file_name: str, result: UploadResult
    ) -> None:
        """Write the metadata file under a temporary name and rename it into place."""
        sidecar = sidecar_content(backup, self._remote(file_name), result.sha256, result.size)
        final = self._remote(sidecar_name(backup.backup_id))
        temp = f"{final}.partial-{secrets.token_hex(4)}"
        try:
            async with sftp.open(temp, "wb") as file:
                await file.write(sidecar)
            await self._rename(sftp, temp, final)
        except BaseException:
            await self._remove_quietly(sftp, temp)
            raise

    @staticmethod
    async def _rename(sftp: SFTPClient, source: str, target: str) -> None:
        """Rename, replacing the target: POSIX rename where the server offers it."""
        try:
            await sftp.posix_rename(source, target)
        except asyncssh.SFTPOpUnsupported:
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(target)
            await sftp.rename(source, target)

    @staticmethod
    async def _remove_quietly(sftp: SFTPClient, path: str) -> None:
        """Remove a file after a failure, ignoring every error."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                await sftp.remove(path)

    async def open_download(self, stored: StoredBackup) -> AsyncIterator[bytes]:
        """Open an archive and return its bytes as an iterator with reads in flight."""
        path = self._remote(stored.file_name)

        async def open_file(sftp: SFTPClient) -> tuple[SFTPClientFile, int]:
            file = await sftp.open(path, "rb")
            try:
                size = (await file.stat()).size or 0
            except BaseException:
                await file.close()
                raise
            return file, size

        file, size = await self._run(f"Opening {stored.file_name}", open_file)
        return self._read_blocks(file, size, stored.file_name)

    async def _read_blocks(
        self, file: SFTPClientFile, size: int, name: str
    ) -> AsyncIterator[bytes]:
        """Yield the file in order while the next blocks are already being read."""
        tasks: deque[asyncio.Task[bytes]] = deque()
        offset = 0
        try:
            while True:
                while len(tasks) < READS_IN_FLIGHT and offset < size:
                    length = min(READ_BLOCK_SIZE, size - offset)
                    tasks.append(asyncio.create_task(read_exactly(file, offset, length)))
                    offset += length
                if not tasks:
                    return
                try:
                    data = await tasks.popleft()
                except BackupDriveError:
                    raise
                except (OSError, asyncssh.Error) as err:
                    raise translate_error(err, f"Reading {name}") from err
                yield data
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLEANUP_TIMEOUT):
                    await file.close()

    async def delete(self, stored: StoredBackup) -> None:
        """Remove an archive and its sidecar (either may already be gone)."""

        async def remove(sftp: SFTPClient) -> None:
            for name in (stored.file_name, sidecar_name(stored.backup.backup_id)):
                with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                    await sftp.remove(self._remote(name))

        try:
            await self._run(f"Deleting {stored.file_name}", remove)
        finally:
            self.invalidate_cache()

    async def disk_usage(self) -> tuple[int, int] | None:
        """Return (free, total) bytes of the drive, when the server reports them."""

        async def statvfs(sftp: SFTPClient) -> tuple[int, int] | None:
            try:
                vfs = await sftp.statvfs(self.path)
            except asyncssh.SFTPOpUnsupported:
                return None
            return vfs.bavail * vfs.frsize, vfs.blocks * vfs.frsize

        return await self._run("Reading free space", statvfs)
