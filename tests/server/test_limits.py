"""Resource limits under attack: idle sockets, open handles and oversized SFTP packets."""

from __future__ import annotations

import asyncio
import resource
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import asyncssh
import pytest

from backup_drive_server.sftp_limits import MAX_OPEN_HANDLES, MAX_PACKET_BYTES
from tests.backup_target import BackupTarget
from tests.server.conftest import Accounts, connect, eventually, sftp_client

IDLE_SOCKETS = 40
USUAL_SOFT_LIMIT = 1024
# Sent after a packet header that declares 4 GiB: a server that buffers it grows by this much.
FLOOD_BYTES = 256 * 1024 * 1024
FLOOD_CHUNK = b"\0" * (1024 * 1024)
# Python, asyncssh buffers and a few packets in flight; far below what buffering the flood costs.
RSS_GROWTH_LIMIT_BYTES = 64 * 1024 * 1024


@contextmanager
def idle_sockets(target: BackupTarget, address: str, count: int) -> Iterator[list[socket.socket]]:
    """Hold `count` TCP connections to the SFTP port that never say anything."""
    held = []
    try:
        for _ in range(count):
            held.append(
                socket.create_connection(
                    ("127.0.0.1", target.sftp_port), timeout=30, source_address=(address, 0)
                )
            )
        for sock in held:
            # The server greets (or drops) each one: after this it has seen them all.
            with suppress(OSError):
                sock.recv(64)
        yield held
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("attacker", ["127.0.0.1", "127.0.0.2"], ids=["same-address", "other"])
async def test_idle_sockets_do_not_lock_out_home_assistant(
    target: BackupTarget, accounts: Accounts, attacker: str
) -> None:
    with idle_sockets(target, attacker, IDLE_SOCKETS):
        async with sftp_client(target) as sftp:
            assert "backups" in await sftp.listdir("/")
        alice = accounts.alice
        async with sftp_client(target, alice.username, key=alice.private_key) as sftp:
            assert "backups" in await sftp.listdir("/")
    assert "had not started to log in" in target.log
    # Idle sockets are no failed logins: the address is not banned.
    assert "banned" not in target.log


def test_a_client_in_key_exchange_outlasts_a_burst_of_silent_sockets(target: BackupTarget) -> None:
    # A client that has sent its version is in key exchange; the burst comes from ten other
    # addresses right after it, more than the 16 waiting connections the server keeps.
    client = socket.create_connection(("127.0.0.1", target.sftp_port), timeout=30)
    try:
        client.sendall(b"SSH-2.0-KeyExchangeInProgress\r\n")
        greeting = client.recv(256)
        assert greeting.startswith(b"SSH-2.0-"), greeting
        addresses = [f"127.0.0.{n}" for n in range(2, 12)]
        with ExitStack() as stack:
            for address in addresses:
                stack.enter_context(idle_sockets(target, address, 3))
            assert target.log.count("had not started to log in") >= 30 - 16 + 1
            # The server still talks to it (its KEXINIT, or more of it), rather than a reset.
            client.settimeout(5)
            assert client.recv(65536), "the server closed the connection"
            assert "from 127.0.0.1 that had not started to log in" not in target.log
    finally:
        client.close()


def vm_rss_bytes(target: BackupTarget) -> int:
    """Return the server process's resident memory."""
    assert target.process is not None
    status = Path(f"/proc/{target.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


async def test_an_oversized_sftp_packet_closes_the_connection(
    target: BackupTarget, accounts: Accounts
) -> None:
    bob = accounts.bob
    rss_before = vm_rss_bytes(target)
    conn = await connect(target, bob.username, key=bob.private_key)
    sent = 0
    try:
        writer, reader, _stderr = await conn.open_session(subsystem="sftp", encoding=None)
        # SSH_FXP_INIT, version 3; the answer proves the SFTP server is up.
        writer.write(b"\0\0\0\x05\x01\0\0\0\x03")
        assert (await reader.readexactly(5))[4] == 2  # SSH_FXP_VERSION
        writer.write(b"\xff\xff\xff\xff\x06")  # a WRITE request declaring 4 GiB
        with pytest.raises((asyncssh.Error, OSError)):
            while sent < FLOOD_BYTES:
                writer.write(FLOOD_CHUNK)
                await writer.drain()
                sent += len(FLOOD_CHUNK)
            await asyncio.wait_for(conn.wait_closed(), timeout=60)
            pytest.fail("the server kept the connection open")
    finally:
        conn.abort()
    growth = vm_rss_bytes(target) - rss_before
    print(f"sent {sent >> 20} MiB after the header; server RSS grew by {growth >> 20} MiB")
    assert growth < RSS_GROWTH_LIMIT_BYTES
    assert await eventually(lambda: f"at most {MAX_PACKET_BYTES} are accepted" in target.log)
    # The server still serves everyone else.
    async with sftp_client(target) as sftp:
        assert "backups" in await sftp.listdir("/")


async def test_open_handles_are_capped_per_session(
    target: BackupTarget, accounts: Accounts
) -> None:
    (target.storage / "backups" / "small.txt").write_bytes(b"x")
    bob = accounts.bob
    async with sftp_client(target, bob.username, key=bob.private_key) as sftp:
        opened = [await sftp.open("/backups/small.txt", "rb") for _ in range(MAX_OPEN_HANDLES)]
        with pytest.raises(asyncssh.SFTPFailure, match="Too many files open"):
            await sftp.open("/backups/small.txt", "rb")
        with pytest.raises(asyncssh.SFTPFailure, match="Too many files open"):
            await sftp.listdir("/backups")
        # Home Assistant is not affected by bob's session.
        async with sftp_client(target) as home_assistant:
            assert "backups" in await home_assistant.listdir("/")
        await opened.pop().close()
        async with sftp.open("/backups/small.txt", "rb") as again:
            # asyncssh types read() as str | bytes; a binary-mode file returns bytes.
            content: str | bytes = await again.read()
            assert content == b"x"
        for handle in opened:
            await handle.close()


def test_the_server_may_open_more_files_than_the_usual_soft_limit(
    start_target: Callable[..., BackupTarget],
) -> None:
    # 32 sessions with their capped handles need more than the usual soft limit of 1,024; the
    # server is started with that limit, as a container usually starts it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(USUAL_SOFT_LIMIT, hard), hard))
    try:
        target = start_target()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert target.process is not None
    limits = Path(f"/proc/{target.process.pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    server_soft, server_hard = line.split()[3:5]
    wanted = 32 * MAX_OPEN_HANDLES
    assert server_hard == "unlimited" or int(server_hard) < wanted or int(server_soft) >= wanted
