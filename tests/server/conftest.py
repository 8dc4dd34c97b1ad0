"""Fixtures for the server suite: a real backup-drive-server with accounts, and clients for it."""

from __future__ import annotations

import asyncio
import base64
import http.client
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from backup_drive_server.cipher_choice import AES_GCM, CHACHA20_POLY1305
from backup_drive_server.staged_upload import STAGING_FOLDER
from tests.backup_target import HOMEASSISTANT_USER, BackupTarget, user_option
from tests.peers import require_tool
from tests.ssh_keys import generate_key_pair

# How long a test waits for the server to finish something in the background (cleanup after an
# aborted upload, a log line). Generous on purpose: tests never fail on timing.
SETTLE_SECONDS = 20.0
READY_LINE = "Backup Drive is ready"


@dataclass(frozen=True)
class Account:
    """A user account given to the server through options.json, with its own SSH key pair."""

    username: str
    password: str = field(repr=False)
    read_only: bool
    private_key: Path
    public_key: str

    def option(self) -> dict[str, Any]:
        """Return this account as an entry of the options.json `users` list."""
        return user_option(self.username, self.password, self.public_key, read_only=self.read_only)


@dataclass(frozen=True)
class Accounts:
    """The accounts every test target has: alice can write, bob can only read."""

    alice: Account
    bob: Account


def make_key_pair(directory: Path, name: str) -> tuple[Path, str]:
    """Generate an ed25519 key pair with ssh-keygen; return the private key path and public line."""
    ssh_keygen = require_tool("ssh-keygen", "openssh-client")
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    return key, generate_key_pair(key, ssh_keygen=ssh_keygen, comment=f"{name}@test")


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    """Create alice (read-write) and bob (read-only), each with a password and an SSH key."""
    keys = tmp_path / "keys"
    alice_key, alice_public = make_key_pair(keys, "alice")
    bob_key, bob_public = make_key_pair(keys, "bob")
    return Accounts(
        alice=Account("alice", "alice-pw 1!", False, alice_key, alice_public),
        bob=Account("bob", "bob-pw-2", True, bob_key, bob_public),
    )


@pytest.fixture
def start_target(tmp_path: Path, accounts: Accounts) -> Iterator[Callable[..., BackupTarget]]:
    """Start servers on tmp_path's storage and data dir; stop them all afterwards, expecting exit 0.

    Every call starts a new process on new ports with the same storage and data dir, which is how
    a test restarts the server.
    """
    started: list[BackupTarget] = []

    def start(**overrides: Any) -> BackupTarget:
        settings: dict[str, Any] = {
            "storage": tmp_path / "storage",
            "data_dir": tmp_path / "data",
            "options": {"users": [accounts.alice.option(), accounts.bob.option()]},
        }
        settings.update(overrides)
        target = BackupTarget(**settings)
        started.append(target)
        target.start()
        # The ports open a moment before the server has finished starting; tests that stop it
        # soon after must not race its startup (test_lifecycle checks that race on its own).
        assert wait_until(lambda: READY_LINE in target.log), target.log
        return target

    yield start
    for target in started:
        code = target.stop()
        assert code == 0, f"server exited with {code}:\n{target.log}"


@pytest.fixture
def target(start_target: Callable[..., BackupTarget]) -> BackupTarget:
    """Return a running server with alice and bob configured."""
    return start_target()


def known_hosts(target: BackupTarget) -> asyncssh.SSHKnownHosts:
    """Trust exactly the target's host key, as an OpenSSH client with a known_hosts file would."""
    return asyncssh.import_known_hosts(target.known_hosts_line() + "\n")


def write_known_hosts(target: BackupTarget, directory: Path) -> Path:
    """Write a known_hosts file for OpenSSH clients that holds only the target's host key."""
    path = directory / f"known_hosts-{target.sftp_port}"
    path.write_text(target.known_hosts_line() + "\n")
    return path


def openssh_options(target: BackupTarget, account: Account, directory: Path) -> list[str]:
    """Return the `-o` options that make ssh/sftp/scp strict, non-interactive and key-only."""
    return [
        "-F", "/dev/null",
        "-o", f"UserKnownHostsFile={write_known_hosts(target, directory)}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "ConnectTimeout=30",
        "-i", str(account.private_key),
    ]  # fmt: skip


def run_sftp(
    target: BackupTarget, account: Account, tmp_path: Path, commands: str
) -> subprocess.CompletedProcess[str]:
    """Run `sftp -b` with the given batch commands as account; return the finished process."""
    sftp = require_tool("sftp", "openssh-client")
    batch = tmp_path / "commands.batch"
    batch.write_text(commands)
    return subprocess.run(
        [
            sftp, *openssh_options(target, account, tmp_path), "-P", str(target.sftp_port),
            "-b", str(batch), f"{account.username}@127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def run_sftp_logged(
    target: BackupTarget, account: Account, tmp_path: Path, commands: str, verbosity: str
) -> subprocess.CompletedProcess[str]:
    """Run `sftp -b -` with a debug `verbosity` (-v, -vvv) as this machine's CPU; return it.

    OPENSSL_ia32cap is left out of the client's environment: only the server plays a CPU.
    """
    sftp = require_tool("sftp", "openssh-client")
    return subprocess.run(
        [
            sftp, verbosity, *openssh_options(target, account, tmp_path),
            "-P", str(target.sftp_port), "-b", "-", f"{account.username}@127.0.0.1",
        ],
        input=commands,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={key: value for key, value in os.environ.items() if key != "OPENSSL_ia32cap"},
    )  # fmt: skip


def negotiated_ciphers(sftp_log: str) -> set[str]:
    """Return the ciphers an OpenSSH client's -v log says it negotiated (both directions)."""
    return {
        line.split("cipher: ")[1].split()[0] for line in sftp_log.splitlines() if "cipher: " in line
    }


async def connect(
    target: BackupTarget,
    username: str,
    *,
    password: str | None = None,
    key: Path | None = None,
    local_addr: tuple[str, int] | None = None,
    encryption_algs: tuple[str, ...] = (),
) -> asyncssh.SSHClientConnection:
    """Open an SSH connection with exactly one way to authenticate (password or key).

    `encryption_algs` replaces the client's cipher preference (empty: asyncssh's default).
    """
    return await asyncssh.connect(
        "127.0.0.1",
        target.sftp_port,
        username=username,
        password=password,
        client_keys=[str(key)] if key else None,
        preferred_auth="publickey" if key else "password",
        known_hosts=known_hosts(target),
        agent_path=None,
        config=None,
        local_addr=local_addr,
        encryption_algs=encryption_algs,
        connect_timeout=60,
    )


@asynccontextmanager
async def sftp_client(
    target: BackupTarget,
    username: str = HOMEASSISTANT_USER,
    *,
    password: str | None = None,
    key: Path | None = None,
    local_addr: tuple[str, int] | None = None,
) -> AsyncIterator[asyncssh.SFTPClient]:
    """Connect over SFTP; without a password or key, log in as homeassistant with its password."""
    if password is None and key is None and username == HOMEASSISTANT_USER:
        password = target.password
    async with (
        await connect(target, username, password=password, key=key, local_addr=local_addr) as conn,
        conn.start_sftp_client() as sftp,
    ):
        yield sftp


@dataclass(frozen=True)
class DavResponse:
    """One WebDAV answer: status, headers and the whole body."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        """Return the body decoded as UTF-8."""
        return self.body.decode("utf-8", errors="replace")


def basic_auth(username: str, password: str) -> dict[str, str]:
    """Return a Basic Authorization header (UTF-8 credentials)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    auth: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    source_address: tuple[str, int] | None = None,
    timeout: float = 15,
) -> DavResponse:
    """Send one raw HTTP request to 127.0.0.1:port (the path exactly as given) and read it all.

    A loopback request of a few MiB takes milliseconds; the timeout only catches answers that
    never complete (a Content-Length with no body behind it).
    """
    all_headers = dict(headers or {})
    if auth is not None:
        all_headers.update(basic_auth(*auth))
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=source_address
    )
    try:
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return DavResponse(response.status, response.headers, response.read())
    finally:
        connection.close()


def dav(
    target: BackupTarget,
    method: str,
    path: str,
    *,
    auth: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    source_address: tuple[str, int] | None = None,
) -> DavResponse:
    """Send one raw HTTP request to the target's WebDAV port."""
    return http_request(
        target.webdav_port, method, path,
        auth=auth, headers=headers, body=body, source_address=source_address,
    )  # fmt: skip


def destination(target: BackupTarget, path: str) -> dict[str, str]:
    """Return the Destination header that COPY and MOVE need."""
    return {"Destination": f"http://127.0.0.1:{target.webdav_port}{path}"}


def partial_files(storage: Path) -> list[Path]:
    """List the uploads in progress: the files in the storage root's staging folder."""
    staging = storage / STAGING_FOLDER
    return sorted(staging.iterdir()) if staging.is_dir() else []


def wait_until(condition: Callable[[], bool], timeout: float = SETTLE_SECONDS) -> bool:
    """Poll condition until it holds or timeout passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(0.1)
    return True


async def eventually(condition: Callable[[], bool], timeout: float = SETTLE_SECONDS) -> bool:
    """Like wait_until, but lets the event loop run (and close connections) while it waits."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        await asyncio.sleep(0.1)
    return True


def tree_snapshot(root: Path) -> dict[str, bytes | str]:
    """Map every path under root to its content (files) or to a marker (folders, links)."""
    snapshot: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            snapshot[key] = f"link -> {path.readlink()}"
        elif path.is_dir():
            snapshot[key] = "folder"
        else:
            snapshot[key] = path.read_bytes()
    return snapshot


PROPFIND_QUOTA = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:quota-available-bytes/><D:quota-used-bytes/>"
    b"</D:prop></D:propfind>"
)
PROPPATCH_SET = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:backup-drive:test">'
    b"<D:set><D:prop><Z:note>kept across restarts</Z:note></D:prop></D:set>"
    b"</D:propertyupdate>"
)
PROPFIND_NOTE = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:propfind xmlns:D="DAV:" xmlns:Z="urn:backup-drive:test">'
    b"<D:prop><Z:note/></D:prop></D:propfind>"
)
LOCK_EXCLUSIVE = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>"
)


# Makes OpenSSL behave as on a CPU without AES instructions (Raspberry Pi 4, Home Assistant
# Yellow): AES-GCM falls to a tenth of its speed, chacha20-poly1305 stays fast.
WITHOUT_AES = {"OPENSSL_ia32cap": "~0x200000200000000"}


def cpu_has_aes() -> bool:
    """Return whether this CPU has AES instructions (else the server picks chacha20 anyway)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " aes " in flags.replace("\n", " ")


@pytest.fixture(params=["aes-instructions", "no-aes-instructions"])
def cpu(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    start_target: Callable[..., BackupTarget],
) -> tuple[BackupTarget, list[str]]:
    """Start a server as on a CPU with or without AES instructions; return it and its ciphers."""
    monkeypatch.delenv("OPENSSL_ia32cap", raising=False)
    if request.param == "aes-instructions" and cpu_has_aes():
        return start_target(), AES_GCM
    return start_target(env=WITHOUT_AES), [CHACHA20_POLY1305]
