"""The server sends no empty SSH_MSG_IGNORE ahead of its packets (ssh_ignore_packets.py)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.backup_target import BackupTarget
from tests.server.conftest import Accounts, negotiated_ciphers, run_sftp_logged

PAYLOAD_BYTES = 2 * 1024 * 1024


def test_openssh_receives_no_ignore_messages_during_transfers(
    cpu: tuple[BackupTarget, list[str]], accounts: Accounts, tmp_path: Path
) -> None:
    target, expected = cpu
    source = tmp_path / "source.tar"
    source.write_bytes(os.urandom(PAYLOAD_BYTES))
    copy = tmp_path / "copy.tar"
    # A get of 2 MiB is 64 data packets of 32 KiB from the server; asyncssh's default would
    # put an ignore message before each of them and before each status reply of the put.
    commands = f"put {source} /backups/source.tar\nget /backups/source.tar {copy}\n"
    result = run_sftp_logged(target, accounts.alice, tmp_path, commands, "-vvv")
    assert result.returncode == 0, result.stderr
    assert copy.read_bytes() == source.read_bytes()
    ciphers = negotiated_ciphers(result.stderr)
    assert ciphers and ciphers <= set(expected), ciphers
    # OpenSSH's client logs every ignore message it receives at debug level 3.
    assert "debug3:" in result.stderr
    assert result.stderr.count("Received SSH2_MSG_IGNORE") == 0
