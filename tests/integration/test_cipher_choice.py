"""The integration prefers the cipher its machine runs fastest, and the server agrees to it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from tests.integration.conftest import INTEGRATION_ROOT

PASSWORD = "cipher-test-password"
# Tells OpenSSL the CPU has no AES instructions (BRIEF: a Raspberry Pi 4 or Yellow's CM4); it
# must be in the environment before OpenSSL initialises, hence a child process.
NO_AES = "~0x200000200000000"
# Runs in the child: connect as the integration does and print its preference and the cipher.
CLIENT_SCRIPT = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from custom_components.backup_drive.cipher_choice import measure_ciphers
from custom_components.backup_drive.session import DriveSession, ServerSettings

async def main() -> None:
    settings = ServerSettings(
        host="127.0.0.1", port=int(sys.argv[2]), username="cipher", password=sys.argv[3],
        host_key=sys.argv[4], path="/",
    )
    session = DriveSession(settings)
    await session.open()
    print(measure_ciphers().encryption_algs)
    print(session.cipher)
    await session.close()

asyncio.run(main())
"""


class PasswordLogin(asyncssh.SSHServer):
    """Accept one password, whatever the user name."""

    def password_auth_supported(self) -> bool:
        """Offer password authentication."""
        return True

    def validate_password(self, username: str, password: str) -> bool:
        """Accept the test's password."""
        return password == PASSWORD


@pytest.fixture
async def both_ciphers_server(
    tmp_path: Path, socket_enabled: None
) -> AsyncIterator[tuple[int, str]]:
    """An asyncssh SFTP server offering AES-GCM and chacha20-poly1305; yield port and host key."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        server_factory=PasswordLogin,
        encryption_algs=["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"],
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=os.fsencode(tmp_path)),
    )
    port: int = server.sockets[0].getsockname()[1]
    public = " ".join(host_key.export_public_key("openssh").decode().split()[:2])
    yield port, public
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize(
    ("cpu", "expected_first", "expected_cipher"),
    [
        (None, "^aes128-gcm@openssh.com", "aes128-gcm@openssh.com"),
        (NO_AES, "^chacha20-poly1305@openssh.com", "chacha20-poly1305@openssh.com"),
    ],
    ids=["aes-instructions", "no-aes-emulated"],
)
async def test_cipher_follows_the_cpu(
    both_ciphers_server: tuple[int, str],
    cpu: str | None,
    expected_first: str,
    expected_cipher: str,
) -> None:
    """With AES instructions AES-GCM is negotiated; without them chacha20-poly1305."""
    port, host_key = both_ciphers_server
    env = {k: v for k, v in os.environ.items() if k != "OPENSSL_ia32cap"}
    if cpu is not None:
        env["OPENSSL_ia32cap"] = cpu
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT_SCRIPT, str(INTEGRATION_ROOT), str(port), PASSWORD, host_key,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(120):
        out, err = await child.communicate()
    assert child.returncode == 0, err.decode()
    preference, negotiated = out.decode().split()
    assert preference.startswith(expected_first)
    assert negotiated == expected_cipher
