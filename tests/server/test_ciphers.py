"""Offered ciphers follow what OpenSSL does fast: AES-GCM with AES instructions, else chacha20."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.backup_target import HOMEASSISTANT_USER, BackupTarget
from tests.peers import require_tool
from tests.server.conftest import WITHOUT_AES, Accounts, connect, openssh_options


async def test_asyncssh_client_agrees_on_the_expected_cipher(
    cpu: tuple[BackupTarget, list[str]],
) -> None:
    target, expected = cpu
    # asyncssh's own preference, like OpenSSH's, lists chacha20-poly1305 first.
    async with await connect(target, HOMEASSISTANT_USER, password=target.password) as conn:
        assert conn.get_extra_info("send_cipher") in expected
        assert conn.get_extra_info("recv_cipher") in expected
    assert "SSH ciphers offered:" in target.log


def test_openssh_client_agrees_on_the_expected_cipher(
    cpu: tuple[BackupTarget, list[str]], accounts: Accounts, tmp_path: Path
) -> None:
    target, expected = cpu
    sftp = require_tool("sftp", "openssh-client")
    alice = accounts.alice
    result = subprocess.run(
        [
            sftp, "-v", *openssh_options(target, alice, tmp_path), "-P", str(target.sftp_port),
            "-b", "-", f"{alice.username}@127.0.0.1",
        ],
        input="ls /\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={key: value for key, value in os.environ.items() if key != "OPENSSL_ia32cap"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    negotiated = [line for line in result.stderr.splitlines() if "cipher: " in line]
    assert negotiated, result.stderr
    assert all(line.split("cipher: ")[1].split()[0] in expected for line in negotiated), negotiated


async def test_a_client_without_chacha_still_connects(
    start_target: Callable[..., BackupTarget],
) -> None:
    target = start_target(env=WITHOUT_AES)
    async with await connect(
        target,
        HOMEASSISTANT_USER,
        password=target.password,
        encryption_algs=("aes128-gcm@openssh.com",),
    ) as conn:
        assert conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
