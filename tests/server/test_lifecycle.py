"""Start, restart and stop the server: key and password files, startup log, SIGTERM mid-upload."""

from __future__ import annotations

import asyncio
import re
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest

from tests.backup_target import HOMEASSISTANT_USER, BackupTarget
from tests.peers import require_tool
from tests.server.conftest import (
    READY_LINE,
    Accounts,
    basic_auth,
    connect,
    dav,
    openssh_options,
    partial_files,
    sftp_client,
    wait_until,
)
from tests.stop_clients import closed_by_server, stalled_webdav_download, start_sftp_upload

# Generous on purpose: a stop that needs longer is stuck (the server kills nothing itself after
# its 4 s grace), and the measured stop times live in bench/shutdown_bench.py.
STOP_DEADLINE_SECONDS = 30.0


def file_mode(path: Path) -> int:
    """Return the permission bits of path."""
    return stat.S_IMODE(path.stat().st_mode)


def test_host_key_is_private_and_stable_across_restarts(
    start_target: Callable[..., BackupTarget],
) -> None:
    first = start_target()
    key_file = first.data_dir / "ssh_host_ed25519_key"
    assert file_mode(key_file) == 0o600
    private_key = key_file.read_bytes()
    public_key = first.host_key
    assert public_key.startswith("ssh-ed25519 ")
    assert first.stop() == 0

    second = start_target()
    assert key_file.read_bytes() == private_key
    assert second.host_key == public_key
    assert file_mode(key_file) == 0o600


def test_password_file_is_private_stable_and_never_logged(
    start_target: Callable[..., BackupTarget], accounts: Accounts
) -> None:
    first = start_target()
    password_file = first.data_dir / "homeassistant.password"
    assert file_mode(password_file) == 0o600
    password = first.password
    assert len(password) >= 16
    assert first.stop() == 0

    second = start_target()
    assert second.password == password
    assert file_mode(password_file) == 0o600
    for log in (first.log, second.log):
        assert password not in log
        assert accounts.alice.password not in log
        assert accounts.bob.password not in log
        assert str(password_file) in log


@pytest.mark.parametrize("log_level", ["info", "debug"])
async def test_passwords_never_reach_the_log(
    start_target: Callable[..., BackupTarget], accounts: Accounts, log_level: str
) -> None:
    curl = require_tool("curl", "curl")
    target = start_target(extra_args=["--log-level", log_level])
    alice = accounts.alice
    # A wrong password is often the user's password for something else: it must not leak either.
    typo = "my-bank-password-42"
    async with sftp_client(target) as sftp:
        await sftp.listdir("/")
    async with sftp_client(target, alice.username, password=alice.password) as sftp:
        await sftp.listdir("/")
    with pytest.raises(asyncssh.PermissionDenied):
        async with await connect(target, alice.username, password=typo):
            pass
    assert dav(target, "PROPFIND", "/", auth=(alice.username, typo)).status == 401
    assert dav(target, "GET", "/backups/", auth=(alice.username, alice.password)).status == 200
    for password in (alice.password, typo):
        subprocess.run(
            [curl, "-sS", "-o", "/dev/null", "--digest", "-u", f"{alice.username}:{password}",
             f"http://127.0.0.1:{target.webdav_port}/backups/"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
    assert target.stop() == 0
    log = target.log
    for secret in (target.password, alice.password, accounts.bob.password, typo):
        assert secret not in log
    # The Basic credentials in base64 must not appear either (a logged header would show them).
    for header in (basic_auth(alice.username, alice.password), basic_auth(alice.username, typo)):
        assert header["Authorization"].split()[1] not in log


def test_startup_log_names_addresses_fingerprint_and_readiness(target: BackupTarget) -> None:
    ssh_keygen = require_tool("ssh-keygen", "openssh-client")
    listing = subprocess.run(
        [ssh_keygen, "-lf", str(target.data_dir / "ssh_host_ed25519_key.pub")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    fingerprint = re.search(r"SHA256:[A-Za-z0-9+/]+", listing)
    assert fingerprint is not None, listing
    assert wait_until(lambda: READY_LINE in target.log), target.log
    log = target.log
    assert fingerprint.group(0) in log
    assert str(target.sftp_port) in log
    assert str(target.webdav_port) in log
    assert HOMEASSISTANT_USER in log
    assert log.index(fingerprint.group(0)) < log.index(READY_LINE)


def test_sigterm_right_after_the_ports_open_exits_zero(tmp_path: Path) -> None:
    # Supervisors may stop a service at any moment, including while it is still starting.
    server = BackupTarget(storage=tmp_path / "storage", data_dir=tmp_path / "data").start()
    assert server.stop() == 0, server.log


def test_storage_gets_a_backups_folder(target: BackupTarget) -> None:
    assert (target.storage / "backups").is_dir()


def test_data_dir_inside_storage_is_refused(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    server = BackupTarget(storage=storage, data_dir=storage / ".data")
    with pytest.raises(RuntimeError, match="exited with"):
        server.start(timeout=30)
    assert server.process is not None
    assert server.process.returncode != 0
    assert "storage" in server.log.lower()
    assert "Traceback" not in server.log


def test_sigterm_during_uploads_exits_cleanly(
    target: BackupTarget, accounts: Accounts, tmp_path: Path
) -> None:
    sftp = require_tool("sftp", "openssh-client")
    curl = require_tool("curl", "curl")
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        out.truncate(64 * 1024 * 1024)
    batch = tmp_path / "put.batch"
    batch.write_text(f'put "{big}" /backups/sftp-upload.bin\n')
    alice = accounts.alice
    # Both clients are throttled so that the uploads are still running when SIGTERM arrives.
    clients = [
        subprocess.Popen(
            [
                sftp, *openssh_options(target, alice, tmp_path), "-l", "4000",
                "-P", str(target.sftp_port), "-b", str(batch), f"{alice.username}@127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                curl, "-sS", "--limit-rate", "500k", "-T", str(big),
                "-u", f"{alice.username}:{alice.password}",
                f"http://127.0.0.1:{target.webdav_port}/backups/webdav-upload.bin",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    try:
        backups = target.storage / "backups"
        assert wait_until(lambda: len(partial_files(target.storage)) == 2), (
            f"both uploads should be writing staged files: {partial_files(target.storage)}"
        )

        # How long the stop takes is measured by bench/shutdown_bench.py, never asserted here.
        code = target.stop(timeout=STOP_DEADLINE_SECONDS)
        assert code == 0, target.log
        assert partial_files(target.storage) == []
        assert not (backups / "sftp-upload.bin").exists()
        assert not (backups / "webdav-upload.bin").exists()
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
            client.wait()


async def test_sigterm_closes_a_stalled_download_and_an_upload(
    target: BackupTarget, accounts: Accounts
) -> None:
    alice = accounts.alice
    with (target.storage / "backups" / "big.bin").open("wb") as big:
        big.truncate(256 * 1024 * 1024)
    download = await asyncio.to_thread(
        stalled_webdav_download, target, alice.username, alice.password, "/backups/big.bin"
    )
    upload = await start_sftp_upload(target, alice.username, alice.password, "/backups/up.bin")
    try:
        assert partial_files(target.storage) != []
        code = await asyncio.to_thread(target.stop, STOP_DEADLINE_SECONDS)
        assert code == 0, target.log
        assert await asyncio.to_thread(closed_by_server, download)
        await asyncio.wait_for(upload.connection.wait_closed(), STOP_DEADLINE_SECONDS)
        assert partial_files(target.storage) == []
        assert not (target.storage / "backups" / "up.bin").exists()
    finally:
        download.close()
        upload.connection.abort()
