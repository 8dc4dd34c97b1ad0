"""Offered ciphers follow what OpenSSL does fast: AES-GCM with AES instructions, else chacha20."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.backup_target import HOMEASSISTANT_USER, BackupTarget
from tests.server.conftest import (
    WITHOUT_AES,
    Accounts,
    connect,
    negotiated_ciphers,
    run_sftp_logged,
)


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
    result = run_sftp_logged(target, accounts.alice, tmp_path, "ls /\n", "-v")
    assert result.returncode == 0, result.stderr
    ciphers = negotiated_ciphers(result.stderr)
    assert ciphers, result.stderr
    assert ciphers <= set(expected), ciphers


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
