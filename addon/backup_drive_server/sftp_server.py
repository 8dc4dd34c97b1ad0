"""Serve the storage root over SFTP (asyncssh): SSH settings, logins and the listener."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import asyncssh

from backup_drive_server.accounts import AccountBook
from backup_drive_server.login_guard import LoginGuard
from backup_drive_server.sftp_session import BackupDriveSFTPServer
from backup_drive_server.storage_root import StorageRoot

_LOGGER = logging.getLogger(__name__)

# SSH settings chosen for a backup target on a LAN: a short login window, keepalives that
# notice a vanished client within two minutes, and a large channel window so that a single
# stream is not throttled by round trips.
LOGIN_TIMEOUT_SECONDS = 30
KEEPALIVE_INTERVAL_SECONDS = 30
KEEPALIVE_COUNT_MAX = 4
CHANNEL_WINDOW_BYTES = 16 * 1024 * 1024
MAX_PACKET_BYTES = 256 * 1024
# Only AES-GCM: it is one pass through OpenSSL, while asyncssh's chacha20-poly1305 makes several
# Python-level calls per packet (about twice the server CPU per GiB, bench/README.md). Clients
# choose from their own preference list, and OpenSSH's puts chacha20 and AES-CTR before GCM, so
# offering those would make every OpenSSH client pick a slower cipher. Every maintained SSH
# client supports AES-GCM (DOCS.md names the old ones that do not).
ENCRYPTION_ALGS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]


@dataclass(kw_only=True)
class SFTPContext:
    """What every SSH connection of one server shares."""

    storage: StorageRoot
    accounts: AccountBook
    guard: LoginGuard
    io_pool: ThreadPoolExecutor
    max_connections: int
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)
    # Files open across all sessions: at shutdown, sessions with none are closed at once.
    open_files: int = 0


class BackupDriveSSHServer(asyncssh.SSHServer):
    """Authenticate one SSH connection against the account book."""

    def __init__(self, context: SFTPContext) -> None:
        """Serve one connection with the shared `context`."""
        self._context = context
        self._conn: asyncssh.SSHServerConnection | None = None
        self._address = "unknown"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        """Turn away banned addresses and connections over the cap at once."""
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self._address = str(peer[0]) if peer else "unknown"
        if self._context.guard.is_banned(self._address):
            _LOGGER.warning("Refused SFTP connection from %s: address banned", self._address)
            asyncio.get_running_loop().call_soon(conn.abort)
            return
        if len(self._context.connections) >= self._context.max_connections:
            _LOGGER.warning(
                "Refused SFTP connection from %s: %d connections already open",
                self._address, self._context.max_connections,
            )  # fmt: skip
            asyncio.get_running_loop().call_soon(conn.abort)
            return
        self._context.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        if self._conn is not None:
            self._context.connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        """Require authentication for everyone."""
        return True

    def password_auth_supported(self) -> bool:
        """Accept passwords (Home Assistant's account uses one)."""
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        """Check a password; failures are counted per address, delayed and then banned."""
        guard = self._context.guard
        if guard.is_banned(self._address):
            self._drop()
            return False
        account = self._context.accounts.get(username)
        if account is not None and account.password_matches(password):
            guard.record_success(self._address)
            _LOGGER.info("SFTP login as %s from %s", account.username, self._address)
            return True
        delay = guard.record_failure(self._address, "SFTP", username)
        if delay:
            await asyncio.sleep(delay)
        if guard.is_banned(self._address):
            self._drop()
        return False

    def public_key_auth_supported(self) -> bool:
        """Accept the public keys listed for an account."""
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Return whether `key` is authorized for `username`."""
        if self._context.guard.is_banned(self._address):
            return False
        account = self._context.accounts.get(username)
        return account is not None and account.accepts_key(key)

    def _drop(self) -> None:
        if self._conn is not None:
            asyncio.get_running_loop().call_soon(self._conn.abort)


async def start_sftp_server(
    context: SFTPContext, host_key: asyncssh.SSHKey, bind: str, port: int
) -> asyncssh.SSHAcceptor:
    """Listen for SFTP clients."""

    def make_sftp_server(chan: asyncssh.SSHServerChannel[bytes]) -> BackupDriveSFTPServer:
        return BackupDriveSFTPServer(chan, context)

    return await asyncssh.create_server(
        lambda: BackupDriveSSHServer(context),
        bind,
        port,
        server_host_keys=[host_key],
        sftp_factory=make_sftp_server,
        allow_scp=False,
        agent_forwarding=False,
        allow_pty=False,
        x11_forwarding=False,
        login_timeout=LOGIN_TIMEOUT_SECONDS,
        keepalive_interval=KEEPALIVE_INTERVAL_SECONDS,
        keepalive_count_max=KEEPALIVE_COUNT_MAX,
        window=CHANNEL_WINDOW_BYTES,
        # Fewer, larger SSH packets: asyncssh's cost is per packet (decrypt call, buffer copy,
        # an ignore packet), so 256 KiB packets cut the server's CPU for large uploads.
        max_pktsize=MAX_PACKET_BYTES,
        encryption_algs=ENCRYPTION_ALGS,
    )
