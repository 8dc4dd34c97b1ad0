"""The server sends no empty SSH_MSG_IGNORE ahead of its packets (ssh_ignore_packets.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.backup_target import BackupTarget
from tests.peers import require_tool
from tests.server.conftest import Accounts, openssh_options

PAYLOAD_BYTES = 2 * 1024 * 1024


def test_openssh_receives_no_ignore_messages_during_transfers(
    cpu: tuple[BackupTarget, list[str]], accounts: Accounts, tmp_path: Path
) -> None:
    target, expected = cpu
    sftp = require_tool("sftp", "openssh-client")
    alice = accounts.alice
    source = tmp_path / "source.tar"
    source.write_bytes(os.urandom(PAYLOAD_BYTES))
    copy = tmp_path / "copy.tar"
    # A get of 2 MiB is 64 data packets of 32 KiB from the server; asyncssh's default would
    # put an ignore message before each of them and before each status reply of the put.
    result = subprocess.run(
        [
            sftp, "-vvv", *openssh_options(target, alice, tmp_path), "-P", str(target.sftp_port),
            "-b", "-", f"{alice.username}@127.0.0.1",
        ],
        input=f"put {source} /backups/source.tar\nget /backups/source.tar {copy}\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={key: value for key, value in os.environ.items() if key != "OPENSSL_ia32cap"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert copy.read_bytes() == source.read_bytes()
    negotiated = [line for line in result.stderr.splitlines() if "cipher: " in line]
    assert negotiated and all(
        line.split("cipher: ")[1].split()[0] in expected for line in negotiated
    )
    # OpenSSH's client logs every ignore message it receives at debug level 3.
    assert "debug3:" in result.stderr
    assert result.stderr.count("Received SSH2_MSG_IGNORE") == 0
