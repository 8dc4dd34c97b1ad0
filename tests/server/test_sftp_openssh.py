"""OpenSSH's own clients against the server: sftp in batch mode, scp, and refused shells."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.backup_target import BackupTarget
from tests.peers import require_tool
from tests.server.conftest import (
    Account,
    Accounts,
    make_key_pair,
    openssh_options,
    partial_files,
    run_sftp,
)


def run_ssh(
    target: BackupTarget,
    account: Account,
    tmp_path: Path,
    *options: str,
    command: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run OpenSSH's ssh as account with extra options and a remote command; return the process."""
    ssh = require_tool("ssh", "openssh-client")
    return subprocess.run(
        [
            ssh, *openssh_options(target, account, tmp_path), "-p", str(target.sftp_port),
            *options, f"{account.username}@127.0.0.1", *command,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def test_sftp_batch_put_get_rename_remove(
    target: BackupTarget, accounts: Accounts, tmp_path: Path
) -> None:
    alice = accounts.alice
    local = tmp_path / "local"
    local.mkdir()
    payload = os.urandom(3 * 1024 * 1024 + 17)
    (local / "upload me.bin").write_bytes(payload)
    storage = target.storage

    made = run_sftp(
        target,
        alice,
        tmp_path,
        f'mkdir "/backups/new folder"\nput "{local}/upload me.bin" "/backups/new folder/a b.bin"\n',
    )
    assert made.returncode == 0, made.stderr
    assert (storage / "backups" / "new folder" / "a b.bin").read_bytes() == payload

    listed = run_sftp(
        target,
        alice,
        tmp_path,
        'rename "/backups/new folder/a b.bin" "/backups/new folder/renamed.bin"\n'
        'ls -l "/backups/new folder"\n'
        f'get "/backups/new folder/renamed.bin" "{local}/downloaded.bin"\n'
        "df /backups\n",
    )
    assert listed.returncode == 0, listed.stderr
    assert not (storage / "backups" / "new folder" / "a b.bin").exists()
    assert (storage / "backups" / "new folder" / "renamed.bin").read_bytes() == payload
    assert (local / "downloaded.bin").read_bytes() == payload
    assert "renamed.bin" in listed.stdout
    assert str(len(payload)) in listed.stdout
    # sftp's df prints a header, then sizes in KiB: Size Used Avail (Root) %Capacity.
    assert "Avail" in listed.stdout, listed.stdout

    removed = run_sftp(
        target,
        alice,
        tmp_path,
        'rm "/backups/new folder/renamed.bin"\nrmdir "/backups/new folder"\nls /backups\n',
    )
    assert removed.returncode == 0, removed.stderr
    assert not (storage / "backups" / "new folder").exists()
    assert partial_files(storage) == []


def test_sftp_df_reports_real_sizes(
    target: BackupTarget, accounts: Accounts, tmp_path: Path
) -> None:
    result = run_sftp(target, accounts.alice, tmp_path, "df /\n")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    header = next(i for i, line in enumerate(lines) if "Avail" in line)
    size, used, avail = (int(value) for value in lines[header + 1][:3])
    disk = os.statvfs(target.storage)
    expected_size = disk.f_blocks * disk.f_frsize // 1024
    assert size == expected_size
    assert 0 <= used <= size
    assert 0 < avail <= size


def test_scp_upload_and_download_exit_zero(
    target: BackupTarget, accounts: Accounts, tmp_path: Path
) -> None:
    scp = require_tool("scp", "openssh-client")
    alice = accounts.alice
    payload = os.urandom(1024 * 1024 + 3)
    source = tmp_path / "scp source.bin"
    source.write_bytes(payload)
    remote = f"{alice.username}@127.0.0.1"
    options = [*openssh_options(target, alice, tmp_path), "-P", str(target.sftp_port)]

    upload = subprocess.run(
        [scp, *options, str(source), f"{remote}:/backups/scp.bin"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert upload.returncode == 0, upload.stderr
    assert (target.storage / "backups" / "scp.bin").read_bytes() == payload

    back = tmp_path / "scp back.bin"
    download = subprocess.run(
        [scp, *options, f"{remote}:/backups/scp.bin", str(back)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert download.returncode == 0, download.stderr
    assert back.read_bytes() == payload


@pytest.mark.parametrize(
    "ssh_arguments",
    [
        pytest.param(["-T"], id="shell"),
        pytest.param(["-tt"], id="shell-with-pty"),
        pytest.param(["-T", "touch {marker}"], id="exec"),
        pytest.param(["-tt", "touch {marker}"], id="exec-with-pty"),
    ],
)
def test_shell_and_exec_are_refused(
    target: BackupTarget, accounts: Accounts, tmp_path: Path, ssh_arguments: list[str]
) -> None:
    marker = tmp_path / "command-ran"
    command = [argument.format(marker=marker) for argument in ssh_arguments]
    result = run_ssh(target, accounts.alice, tmp_path, command=command)
    assert result.returncode != 0, result.stdout + result.stderr
    assert not marker.exists()
    # The key was accepted: the refusal is about the session, not about logging in.
    assert "Permission denied" not in result.stderr


def test_port_forwarding_is_refused(
    target: BackupTarget, accounts: Accounts, tmp_path: Path
) -> None:
    forward = ["-o", "ExitOnForwardFailure=yes", "-N", "-R", "127.0.0.1:0:127.0.0.1:22"]
    result = run_ssh(target, accounts.alice, tmp_path, *forward)
    assert result.returncode != 0, result.stderr


def test_unknown_key_is_refused(target: BackupTarget, accounts: Accounts, tmp_path: Path) -> None:
    stranger_key, _ = make_key_pair(tmp_path, "stranger")
    stranger = Account(accounts.alice.username, "unused", False, stranger_key, "")
    result = run_sftp(target, stranger, tmp_path, "ls /\n")
    assert result.returncode != 0
    assert "Permission denied" in result.stderr
