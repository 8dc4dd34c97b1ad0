"""The SSH connection to the drive: keys, connecting, reconnecting after a drop, closing."""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import asyncssh
from asyncssh import SFTPClient, SSHClientConnection

from .cipher_choice import async_preferred_ciphers
from .const import LOGGER
from .errors import (
    CONNECTION_ERRORS,
    BackupDriveError,
    CannotConnect,
    HostKeyMismatch,
    InvalidAuth,
    InvalidPrivateKey,
    TransferFailed,
    describe_error,
    translate_error,
)
from .transfer import READ_BLOCK_SIZE, READS_IN_FLIGHT

# An unreachable drive must not hold up Home Assistant's startup; the entry retries by itself.
CONNECT_TIMEOUT: Final = 5.0
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


def normalize_path(path: str) -> str:
    """Return an absolute folder path without a trailing slash."""
    normalized = posixpath.normpath(path.strip())
    return "/" if normalized in ("/", "//") else normalized


def parse_host_key(host_key: str) -> asyncssh.SSHKey:
    """Read a trusted OpenSSH one-line public key."""
    try:
        return asyncssh.import_public_key(host_key)
    except (asyncssh.KeyImportError, ValueError) as err:
        raise TransferFailed(f"The stored host key cannot be read: {err}") from err


def parse_private_key(private_key: str) -> asyncssh.SSHKey:
    """Read an unencrypted private key, raising InvalidPrivateKey when it cannot be."""
    try:
        return asyncssh.import_private_key(private_key)
    except (asyncssh.KeyImportError, ValueError) as err:
        raise InvalidPrivateKey(f"The private key cannot be read: {err}") from err


def fingerprint(host_key: str) -> str:
    """Return the SHA256 fingerprint of an OpenSSH one-line public key."""
    return parse_host_key(host_key).get_fingerprint("sha256")


def host_key_line(key: asyncssh.SSHKey) -> str:
    """Return a public key as an OpenSSH one-line key without comment."""
    algorithm, data = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {data}"


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
    """Tell the session when its SSH connection closes, so the next call reconnects."""

    def __init__(self, on_lost: Callable[[], None]) -> None:
        """Store the callback."""
        self._on_lost = on_lost

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        self._on_lost()


class DriveSession:
    """One SFTP session to the drive, reused across calls and reopened when it drops."""

    def __init__(
        self, settings: ServerSettings, *, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        """Prepare; nothing connects until the first call."""
        self.settings = settings
        self._connect_timeout = connect_timeout
        self._connection: SSHClientConnection | None = None
        self._sftp: SFTPClient | None = None
        self._connect_lock = asyncio.Lock()
        self.server_version: str | None = None

    @property
    def connected(self) -> bool:
        """Whether an SFTP session is open right now."""
        return self._sftp is not None

    @property
    def cipher(self) -> str | None:
        """The cipher of the open connection (client to server), once connected."""
        if self._connection is None:
            return None
        cipher: str | None = self._connection.get_extra_info("send_cipher")
        return cipher

    def _options(self, encryption_algs: str) -> asyncssh.SSHClientConnectionOptions:
        """Build the connection options (reads nothing from ~/.ssh)."""
        settings = self.settings
        return asyncssh.SSHClientConnectionOptions(
            username=settings.username,
            password=settings.password,
            # An empty list would make asyncssh read the keys in ~/.ssh, in the event loop, and
            # offer them to the server; None offers no key at all.
            client_keys=(
                [parse_private_key(settings.private_key)] if settings.private_key else None
            ),
            agent_path=None,
            # Pinned: the only key accepted is the one the user (or the add-on) gave us.
            known_hosts=([parse_host_key(settings.host_key)], [], []),
            config=None,
            # The cipher this CPU runs fastest first; asyncssh's other defaults follow.
            encryption_algs=encryption_algs,
            compression_algs=None,
            connect_timeout=self._connect_timeout,
            keepalive_interval=KEEPALIVE_INTERVAL,
            keepalive_count_max=3,
            # Room for every read in flight, in few large packets: fewer round trips and less
            # per-packet work on both ends of a download.
            window=RECEIVE_WINDOW,
            max_pktsize=RECEIVE_PACKET_SIZE,
        )

    async def open(self) -> SFTPClient:
        """Return the SFTP session, connecting when there is none."""
        if self._sftp is not None:
            return self._sftp
        async with self._connect_lock:
            # Another call may have connected while this one waited for the lock.
            return self._sftp or await self._connect()

    async def _connect(self) -> SFTPClient:
        """Open the SSH connection and the SFTP session."""
        settings = self.settings
        where = f"{settings.host}:{settings.port}"
        options = self._options(await async_preferred_ciphers())
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

    async def translate_failure(self, err: Exception, what: str) -> BackupDriveError:
        """Return the client error for a library error, closing a connection that dropped."""
        if isinstance(err, CONNECTION_ERRORS):
            await self.close()
        return translate_error(err, what)

    async def run_with_reconnect[T](
        self, what: str, operation: Callable[[SFTPClient], Awaitable[T]]
    ) -> T:
        """Run an operation that is safe to repeat, reconnecting once if the session dropped."""
        for attempt in (1, 2):
            sftp = await self.open()
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
