"""Serve the storage root over SFTP (asyncssh): SSH settings, logins and the listener."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import asyncssh

from backup_drive_server.accounts import AccountBook, canonical_username
from backup_drive_server.login_guard import LoginGuard
from backup_drive_server.settings import HOMEASSISTANT_USER
from backup_drive_server.sftp_limits import install_sftp_limits
from backup_drive_server.sftp_session import BackupDriveSFTPServer
from backup_drive_server.ssh_ignore_packets import install_ignore_packet_filter
from backup_drive_server.storage_root import StorageRoot

_LOGGER = logging.getLogger(__name__)

# SSH settings chosen for a backup target on a LAN: a short login window, keepalives that
# notice a vanished client within two minutes, and a large channel window so that a single
# stream is not throttled by round trips.
# A LAN client finishes key exchange and login in well under a second; the window only bounds
# how long an idle or stalling connection holds a slot before it is dropped.
LOGIN_TIMEOUT_SECONDS = 10
KEEPALIVE_INTERVAL_SECONDS = 30
KEEPALIVE_COUNT_MAX = 4
CHANNEL_WINDOW_BYTES = 16 * 1024 * 1024
MAX_PACKET_BYTES = 256 * 1024
# Connections that have not logged in yet are capped apart from sessions, so sockets that never
# authenticate cannot fill the session slots. When a cap is reached the oldest connection that
# has not started to log in is dropped instead of refusing the new one, and among those first
# the ones that have not even sent their SSH version: every real client sends it at once, so a
# burst of silent sockets only ever pushes out other silent sockets, never a client that is still
# in key exchange (asyncssh knows only that much before the login name arrives). The built-in
# account is never counted against the session cap, so Home Assistant always gets in.
MAX_PENDING_PER_ADDRESS = 4
MAX_PENDING = 16


@dataclass
class _PendingLogin:
    address: str
    username: str | None = None


@dataclass(kw_only=True)
class SFTPContext:
    """What every SSH connection of one server shares."""

    storage: StorageRoot
    accounts: AccountBook
    guard: LoginGuard
    io_pool: ThreadPoolExecutor
    max_connections: int
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)
    # Connections not logged in yet, oldest first, with their address and login name once sent.
    pending: dict[asyncssh.SSHServerConnection, _PendingLogin] = field(default_factory=dict)
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
        """Turn away banned addresses; make room among connections that have not logged in."""
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self._address = str(peer[0]) if peer else "unknown"
        if self._context.guard.is_banned(self._address):
            _LOGGER.warning("Refused SFTP connection from %s: address banned", self._address)
            asyncio.get_running_loop().call_soon(conn.abort)
            return
        pending = self._context.pending
        same_address = [c for c, p in pending.items() if p.address == self._address]
        if len(same_address) >= MAX_PENDING_PER_ADDRESS:
            self._drop_oldest_idle(same_address, f"{MAX_PENDING_PER_ADDRESS} from one address")
        if len(pending) >= MAX_PENDING:
            self._drop_oldest_idle(list(pending), f"{MAX_PENDING} in all")
        pending[conn] = _PendingLogin(self._address)

    def _drop_oldest_idle(self, candidates: list[asyncssh.SSHServerConnection], cap: str) -> None:
        pending = self._context.pending
        idle = [conn for conn in candidates if pending[conn].username is None]
        if not idle:
            return  # everyone is logging in: the login timeout and the guard bound them
        silent = [conn for conn in idle if conn.get_extra_info("client_version") is None]
        oldest = (silent or idle)[0]
        _LOGGER.warning(
            "Dropped an SFTP connection from %s that had not started to log in: %s waiting",
            pending.pop(oldest).address, cap,
        )  # fmt: skip
        oldest.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        if self._conn is not None:
            self._context.connections.discard(self._conn)
            self._context.pending.pop(self._conn, None)

    def auth_completed(self) -> None:
        """Move the connection from the login queue to the sessions, within the cap."""
        if self._conn is None:
            return
        self._context.pending.pop(self._conn, None)
        username = canonical_username(str(self._conn.get_extra_info("username")))
        connections = self._context.connections
        if username != HOMEASSISTANT_USER and len(connections) >= self._context.max_connections:
            _LOGGER.warning(
                "Refused SFTP session of %s from %s: %d sessions already open",
                username, self._address, self._context.max_connections,
            )  # fmt: skip
            asyncio.get_running_loop().call_soon(self._conn.abort)
            return
        connections.add(self._conn)

    def begin_auth(self, username: str) -> bool:
        """Require authentication for everyone; a connection logging in is no longer idle."""
        if self._conn is not None and (login := self._context.pending.get(self._conn)):
            login.username = canonical_username(username)
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
            guard.record_success(self._address, account.username)
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
    context: SFTPContext,
    host_key: asyncssh.SSHKey,
    bind: str,
    port: int,
    *,
    encryption_algs: list[str],
) -> asyncssh.SSHAcceptor:
    """Listen for SFTP clients, offering only `encryption_algs` (cipher_choice.py picks them)."""
    install_sftp_limits()
    install_ignore_packet_filter()

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
        encryption_algs=encryption_algs,
    )
