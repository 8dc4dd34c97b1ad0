"""Uploads land atomically: a temporary name while writing, nothing left behind when aborted."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from pathlib import Path

import pytest

from tests.backup_target import BackupTarget
from tests.server.conftest import Accounts, connect, dav, eventually, partial_files, wait_until

CHUNK = os.urandom(1024 * 1024)


def upload_destination(backups: Path, existing: bytes | None) -> Path:
    """Return the path the aborted uploads aim at, holding `existing` first unless it is None."""
    final = backups / "upload.tar"
    if existing is not None:
        final.write_bytes(existing)
    return final


def content_of(path: Path) -> bytes | None:
    """Return a file's bytes, or None when there is no file under that name."""
    return path.read_bytes() if path.exists() else None


@pytest.mark.parametrize("existing", [None, b"the previous backup"], ids=["new", "overwrite"])
async def test_aborted_sftp_upload_leaves_nothing(
    target: BackupTarget, accounts: Accounts, existing: bytes | None
) -> None:
    backups = target.storage / "backups"
    final = upload_destination(backups, existing)
    alice = accounts.alice
    conn = await connect(target, alice.username, key=alice.private_key)
    try:
        sftp = await conn.start_sftp_client()
        handle = await sftp.open("/backups/upload.tar", "wb")
        for _ in range(3):
            await handle.write(CHUNK)
        assert await eventually(lambda: bool(partial_files(target.storage)))
        # Still writing: the name holds the old content (or nothing), never a partial file.
        assert content_of(final) == existing
    finally:
        # Drop the connection without closing the file, as a crash or a pulled cable would.
        conn.abort()
        await conn.wait_closed()
    assert await eventually(lambda: not partial_files(target.storage)), partial_files(
        target.storage
    )
    assert content_of(final) == existing
    assert sorted(p.name for p in backups.iterdir()) == (["upload.tar"] if existing else [])


async def test_sftp_upload_appears_only_when_closed(
    target: BackupTarget, accounts: Accounts
) -> None:
    backups = target.storage / "backups"
    alice = accounts.alice
    async with (
        await connect(target, alice.username, key=alice.private_key) as conn,
        conn.start_sftp_client() as sftp,
    ):
        async with sftp.open("/backups/complete.tar", "wb") as handle:
            for _ in range(2):
                await handle.write(CHUNK)
            assert partial_files(target.storage)
            assert not (backups / "complete.tar").exists()
        assert (backups / "complete.tar").read_bytes() == CHUNK * 2
        assert partial_files(target.storage) == []
        names = set(await sftp.listdir("/backups")) - {".", ".."}
        assert names == {"complete.tar"}


def start_raw_put(
    target: BackupTarget, accounts: Accounts, path: str, length: int
) -> socket.socket:
    """Send a PUT's headers and the first MiB of a `length`-byte body; return the open socket."""
    alice = accounts.alice
    token = base64.b64encode(f"{alice.username}:{alice.password}".encode()).decode()
    sock = socket.create_connection(("127.0.0.1", target.webdav_port), timeout=30)
    head = (
        f"PUT {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{target.webdav_port}\r\n"
        f"Authorization: Basic {token}\r\n"
        "Content-Type: application/x-tar\r\n"
        f"Content-Length: {length}\r\n"
        "\r\n"
    )
    sock.sendall(head.encode() + CHUNK)
    return sock


@pytest.mark.parametrize("existing", [None, b"the previous backup"], ids=["new", "overwrite"])
def test_aborted_webdav_put_leaves_nothing(
    target: BackupTarget, accounts: Accounts, existing: bytes | None
) -> None:
    backups = target.storage / "backups"
    final = upload_destination(backups, existing)
    sock = start_raw_put(target, accounts, "/backups/upload.tar", 50 * len(CHUNK))
    try:
        assert wait_until(lambda: bool(partial_files(target.storage))), list(backups.iterdir())
        assert content_of(final) == existing
    finally:
        sock.close()
    assert wait_until(lambda: not partial_files(target.storage)), partial_files(target.storage)
    assert content_of(final) == existing
    assert sorted(p.name for p in backups.iterdir()) == (["upload.tar"] if existing else [])


def test_aborted_webdav_put_with_reset_leaves_nothing(
    target: BackupTarget, accounts: Accounts
) -> None:
    backups = target.storage / "backups"
    sock = start_raw_put(target, accounts, "/backups/reset.tar", 50 * len(CHUNK))
    try:
        assert wait_until(lambda: bool(partial_files(target.storage)))
    finally:
        # SO_LINGER 0 turns close() into a TCP reset instead of an orderly end of stream.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assert wait_until(lambda: not partial_files(target.storage)), partial_files(target.storage)
    assert not (backups / "reset.tar").exists()


def test_aborted_chunked_webdav_put_leaves_nothing(
    target: BackupTarget, accounts: Accounts
) -> None:
    backups = target.storage / "backups"
    alice = accounts.alice
    token = base64.b64encode(f"{alice.username}:{alice.password}".encode()).decode()
    head = (
        "PUT /backups/chunked.tar HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{target.webdav_port}\r\n"
        f"Authorization: Basic {token}\r\n"
        "Transfer-Encoding: chunked\r\n"
        f"X-Expected-Entity-Length: {50 * len(CHUNK)}\r\n"
        "\r\n"
    )
    with socket.create_connection(("127.0.0.1", target.webdav_port), timeout=30) as sock:
        sock.sendall(head.encode())
        for _ in range(2):
            sock.sendall(f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n")
        # Half a chunk, then the client goes away without the terminating zero-size chunk.
        sock.sendall(f"{len(CHUNK):x}\r\n".encode() + CHUNK[: len(CHUNK) // 2])
        assert wait_until(lambda: bool(partial_files(target.storage)))
    assert wait_until(lambda: not partial_files(target.storage)), partial_files(target.storage)
    assert not (backups / "chunked.tar").exists()


async def test_concurrent_uploads_to_one_name_never_mix(
    target: BackupTarget, accounts: Accounts
) -> None:
    backups = target.storage / "backups"
    alice = accounts.alice
    first_payload, second_payload = os.urandom(len(CHUNK)), os.urandom(len(CHUNK))
    async with (
        await connect(target, alice.username, key=alice.private_key) as first_conn,
        await connect(target, alice.username, password=alice.password) as second_conn,
        first_conn.start_sftp_client() as first,
        second_conn.start_sftp_client() as second,
    ):
        first_file = await first.open("/backups/same.tar", "wb")
        second_file = await second.open("/backups/same.tar", "wb")
        for part in range(4):
            piece = slice(part * len(CHUNK) // 4, (part + 1) * len(CHUNK) // 4)
            await first_file.write(first_payload[piece])
            await second_file.write(second_payload[piece])
        assert len(partial_files(target.storage)) == 2
        await first_file.close()
        assert (backups / "same.tar").read_bytes() == first_payload
        await second_file.close()
    assert (backups / "same.tar").read_bytes() == second_payload
    assert partial_files(target.storage) == []


async def test_download_during_an_upload_sees_the_previous_file(
    target: BackupTarget, accounts: Accounts
) -> None:
    backups = target.storage / "backups"
    previous = os.urandom(len(CHUNK))
    (backups / "busy.tar").write_bytes(previous)
    alice = accounts.alice
    async with (
        await connect(target, alice.username, key=alice.private_key) as conn,
        await connect(target, alice.username, password=alice.password) as other_conn,
        conn.start_sftp_client() as sftp,
        other_conn.start_sftp_client() as other_sftp,
        sftp.open("/backups/busy.tar", "wb") as upload,
    ):
        await upload.write(CHUNK[:1000])
        # Another session and WebDAV see the previous file until the upload is closed.
        async with other_sftp.open("/backups/busy.tar", "rb") as download:
            # asyncssh types read() as str | bytes; a binary-mode file returns bytes.
            seen: str | bytes = await download.read()
            assert seen == previous
        assert (await other_sftp.stat("/backups/busy.tar")).size == len(previous)
        webdav = await asyncio.to_thread(
            dav, target, "GET", "/backups/busy.tar", auth=(alice.username, alice.password)
        )
        assert webdav.body == previous
        # The uploading session sees what it is writing, as a file system mount expects.
        assert (await sftp.stat("/backups/busy.tar")).size == 1000
        async with sftp.open("/backups/busy.tar", "rb") as read_back:
            written: str | bytes = await read_back.read()
            assert written == CHUNK[:1000]
        await upload.write(CHUNK[1000:])
    assert (backups / "busy.tar").read_bytes() == CHUNK
