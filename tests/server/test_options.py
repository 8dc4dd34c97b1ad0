"""options.json and flags: bad input stops the server with a clear message; TLS; key-only users."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.backup_target import BackupTarget
from tests.peers import require_tool
from tests.server.conftest import Accounts, connect, dav, sftp_client


def start_failure(tmp_path: Path, options: dict[str, Any] | None, *extra: str) -> BackupTarget:
    """Start a server that is expected to refuse its settings; return it once it has exited."""
    server = BackupTarget(
        storage=tmp_path / "storage", data_dir=tmp_path / "data", options=options,
        extra_args=list(extra),
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="exited with"):
        server.start(timeout=30)
    assert server.process is not None
    assert server.process.returncode not in (0, None)
    assert "Traceback" not in server.log, server.log
    return server


def good_user(accounts: Accounts) -> dict[str, Any]:
    """Return a valid users entry, to place next to a bad one."""
    return accounts.alice.option()


@pytest.mark.parametrize(
    ("users", "named"),
    [
        pytest.param(
            [{"username": "homeassistant", "password": "never-logged-1"}],
            "homeassistant",
            id="reserved",
        ),
        pytest.param(
            [
                {"username": "carol", "password": "never-logged-2"},
                {"username": "carol", "password": "never-logged-3"},
            ],
            "carol",
            id="duplicate",
        ),
        pytest.param([{"username": "carol", "read_only": True}], "carol", id="no-password-no-key"),
        pytest.param(
            [
                {
                    "username": "carol",
                    "password": "never-logged-1",
                    "authorized_keys": ["ssh-ed25519 garbage"],
                }
            ],
            "carol",
            id="bad-key",
        ),
        pytest.param(
            [{"username": "car/ol", "password": "never-logged-1"}], "car/ol", id="slash-in-name"
        ),
        pytest.param([{"password": "never-logged-1"}], "username", id="no-name"),
    ],
)
def test_bad_users_stop_the_server_with_a_clear_message(
    tmp_path: Path, accounts: Accounts, users: list[dict[str, Any]], named: str
) -> None:
    server = start_failure(tmp_path, {"users": [good_user(accounts), *users]})
    assert named in server.log
    assert "never-logged" not in server.log
    assert accounts.alice.password not in server.log


def test_unreadable_options_file_is_explained(tmp_path: Path) -> None:
    options = tmp_path / "broken-options.json"
    options.write_text('{"users": [')
    server = start_failure(tmp_path, None, "--options", str(options))
    assert "JSON" in server.log
    assert str(options) in server.log


def test_missing_tls_files_are_explained(tmp_path: Path) -> None:
    ssl_dir = tmp_path / "ssl"
    ssl_dir.mkdir()
    server = start_failure(
        tmp_path,
        {"webdav_tls": True, "certfile": "nope.pem", "keyfile": "nope.key"},
        "--ssl-dir",
        str(ssl_dir),
    )
    assert "nope.pem" in server.log


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and its key; return both paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backup-drive.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / "fullchain.pem"
    key_file = directory / "privkey.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.mark.parametrize("configured_by", ["flags", "options"])
def test_webdav_over_tls(
    start_target: Callable[..., BackupTarget],
    accounts: Accounts,
    tmp_path: Path,
    configured_by: str,
) -> None:
    curl = require_tool("curl", "curl")
    cert_file, key_file = make_certificate(tmp_path / "ssl")
    if configured_by == "flags":
        target = start_target(
            extra_args=["--webdav-certfile", str(cert_file), "--webdav-keyfile", str(key_file)]
        )
    else:
        target = start_target(
            options={"users": [accounts.alice.option()], "webdav_tls": True},
            extra_args=["--ssl-dir", str(tmp_path / "ssl")],
        )
    (target.storage / "backups" / "over-tls.txt").write_text("encrypted")
    alice = accounts.alice
    result = subprocess.run(
        [curl, "-sS", "--cacert", str(cert_file), "--digest",
         "-u", f"{alice.username}:{alice.password}", "-w", "\n%{http_code}",
         f"https://127.0.0.1:{target.webdav_port}/backups/over-tls.txt"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.stdout.rsplit("\n", 1) == ["encrypted", "200"], result.stderr
    assert f"https://127.0.0.1:{target.webdav_port}/" in target.log
    # Plain HTTP on the TLS port gets nowhere: credentials are never read in the clear.
    plain = subprocess.run(
        [curl, "-sS", "-u", f"{alice.username}:{alice.password}", "-o", "/dev/null",
         "-w", "%{http_code}", f"http://127.0.0.1:{target.webdav_port}/backups/over-tls.txt"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert plain.stdout != "200"


async def test_key_only_account_has_no_empty_password(
    start_target: Callable[..., BackupTarget], accounts: Accounts
) -> None:
    carol = {"username": "carol", "read_only": False,
             "authorized_keys": [accounts.alice.public_key]}  # fmt: skip
    target = start_target(options={"users": [carol]})
    async with sftp_client(target, "carol", key=accounts.alice.private_key) as sftp:
        assert "backups" in await sftp.listdir("/")
    with pytest.raises(asyncssh.PermissionDenied):
        async with await connect(target, "carol", password=""):
            pass
    assert dav(target, "PROPFIND", "/", auth=("carol", ""), headers={"Depth": "0"}).status == 401
