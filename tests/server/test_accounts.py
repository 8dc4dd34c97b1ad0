"""Accounts: passwords and keys, read-only users, Digest and DOMAIN\\user, bans after bad logins."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh
import pytest

from tests.backup_target import HOMEASSISTANT_USER, BackupTarget
from tests.peers import require_tool
from tests.server.conftest import (
    LOCK_EXCLUSIVE,
    PROPPATCH_SET,
    Accounts,
    connect,
    dav,
    destination,
    eventually,
    sftp_client,
    tree_snapshot,
)

OTHER_ADDRESS = "127.0.0.2"
# The contract: 6 failures within 10 minutes ban the address; the 7th attempt meets the ban.
FAILURES_BEFORE_BAN = 6


async def test_homeassistant_password_login(target: BackupTarget, tmp_path: Path) -> None:
    local = tmp_path / "relative.tar"
    local.write_bytes(b"relative upload")
    async with sftp_client(target) as sftp:
        assert "backups" in await sftp.listdir("/")
        await sftp.mkdir("/backups/from-ha")
        # A session starts at the storage root: relative paths and /backups mean the same folder.
        assert await sftp.realpath(".") == "/"
        await sftp.put(str(local), "backups/relative.tar")
    assert (target.storage / "backups" / "from-ha").is_dir()
    assert (target.storage / "backups" / "relative.tar").read_bytes() == b"relative upload"


async def test_option_account_logs_in_with_password_and_key(
    target: BackupTarget, accounts: Accounts
) -> None:
    alice = accounts.alice
    async with sftp_client(target, alice.username, password=alice.password) as sftp:
        assert "backups" in await sftp.listdir("/")
    async with sftp_client(target, alice.username, key=alice.private_key) as sftp:
        assert "backups" in await sftp.listdir("/")


@pytest.mark.parametrize(
    ("username", "credential"),
    [
        pytest.param("alice", "bob-pw-2", id="someone-elses-password"),
        pytest.param("alice", "", id="empty-password"),
        pytest.param("mallory", "alice-pw 1!", id="unknown-user"),
        pytest.param(HOMEASSISTANT_USER, "homeassistant", id="guessed-password"),
    ],
)
async def test_wrong_password_is_refused(
    target: BackupTarget, username: str, credential: str
) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with await connect(target, username, password=credential):
            pass
    response = dav(target, "PROPFIND", "/", auth=(username, credential), headers={"Depth": "0"})
    assert response.status == 401


async def test_someone_elses_key_is_refused(target: BackupTarget, accounts: Accounts) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with await connect(target, accounts.alice.username, key=accounts.bob.private_key):
            pass


async def listed(sftp: asyncssh.SFTPClient, path: str) -> list[str]:
    """Return the sorted names in folder path, without `.` and `..`."""
    return sorted(name for name in await sftp.listdir(path) if name not in {".", ".."})


async def test_read_only_account_is_refused_every_sftp_write(
    target: BackupTarget, accounts: Accounts, tmp_path: Path
) -> None:
    bob = accounts.bob
    backups = target.storage / "backups"
    (backups / "existing.tar").write_bytes(b"a backup")
    (backups / "folder").mkdir()
    local = tmp_path / "local.tar"
    local.write_bytes(b"new content")
    before = tree_snapshot(target.storage)

    async with sftp_client(target, bob.username, key=bob.private_key) as sftp:
        assert await listed(sftp, "/backups") == ["existing.tar", "folder"]
        await sftp.get("/backups/existing.tar", str(tmp_path / "downloaded.tar"))
        assert (tmp_path / "downloaded.tar").read_bytes() == b"a backup"

        attempts: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("put new", lambda: sftp.put(str(local), "/backups/new.tar")),
            ("put over", lambda: sftp.put(str(local), "/backups/existing.tar")),
            ("open for write", lambda: sftp.open("/backups/other.tar", "wb")),
            ("open for append", lambda: sftp.open("/backups/existing.tar", "ab")),
            ("mkdir", lambda: sftp.mkdir("/backups/new-folder")),
            ("rmdir", lambda: sftp.rmdir("/backups/folder")),
            ("rm", lambda: sftp.remove("/backups/existing.tar")),
            ("rename", lambda: sftp.rename("/backups/existing.tar", "/backups/renamed.tar")),
            (
                "posix-rename",
                lambda: sftp.posix_rename("/backups/existing.tar", "/backups/renamed.tar"),
            ),
            ("setstat chmod", lambda: sftp.chmod("/backups/existing.tar", 0o600)),
            ("setstat utime", lambda: sftp.utime("/backups/existing.tar", (0, 0))),
            ("setstat truncate", lambda: sftp.truncate("/backups/existing.tar", 0)),
        ]
        for what, attempt in attempts:
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await attempt()
                pytest.fail(f"read-only {what} succeeded")
        # Links may be refused for everyone; either way bob cannot make one.
        with pytest.raises((asyncssh.SFTPPermissionDenied, asyncssh.SFTPOpUnsupported)):
            await sftp.symlink("/backups/existing.tar", "/backups/link")
        assert await listed(sftp, "/backups") == ["existing.tar", "folder"]
    assert tree_snapshot(target.storage) == before
    assert await eventually(lambda: len(refusals(target, "SFTP")) > len(attempts)), target.log
    assert_refusals_logged_alike(target, "SFTP", accounts.bob.password)


def test_read_only_account_is_refused_every_webdav_write(
    target: BackupTarget, accounts: Accounts
) -> None:
    bob = (accounts.bob.username, accounts.bob.password)
    backups = target.storage / "backups"
    (backups / "existing.tar").write_bytes(b"a backup")
    (backups / "folder").mkdir()
    before = tree_snapshot(target.storage)

    listing = dav(target, "PROPFIND", "/backups/", auth=bob, headers={"Depth": "1"})
    assert listing.status == 207
    assert "existing.tar" in listing.text
    download = dav(target, "GET", "/backups/existing.tar", auth=bob)
    assert download.status == 200
    assert download.body == b"a backup"

    attempts = [
        ("PUT", "/backups/new.tar", {}, b"new"),
        ("PUT", "/backups/existing.tar", {}, b"overwritten"),
        ("MKCOL", "/backups/new-folder", {}, b""),
        ("DELETE", "/backups/existing.tar", {}, b""),
        ("DELETE", "/backups/folder/", {}, b""),
        ("MOVE", "/backups/existing.tar", destination(target, "/backups/moved.tar"), b""),
        ("COPY", "/backups/existing.tar", destination(target, "/backups/copied.tar"), b""),
        ("PROPPATCH", "/backups/existing.tar", {}, PROPPATCH_SET),
        ("LOCK", "/backups/existing.tar", {}, LOCK_EXCLUSIVE),
        ("LOCK", "/backups/not-there-yet.tar", {}, LOCK_EXCLUSIVE),
    ]
    for method, path, headers, body in attempts:
        response = dav(target, method, path, auth=bob, headers=headers, body=body)
        assert response.status == 403, f"read-only {method} {path}: {response.status}"
    assert tree_snapshot(target.storage) == before
    assert len(refusals(target, "WebDAV")) == len(attempts), target.log
    assert_refusals_logged_alike(target, "WebDAV", accounts.bob.password)


def refusals(target: BackupTarget, protocol: str) -> list[str]:
    """Return the log lines of writes refused to bob over `protocol`."""
    return [
        line
        for line in target.log.splitlines()
        if "for read-only account bob from 127.0.0.1" in line and f"({protocol})" in line
    ]


def assert_refusals_logged_alike(target: BackupTarget, protocol: str, password: str) -> None:
    """Assert every refusal names account, address, operation and path, at WARNING, no password."""
    for line in refusals(target, protocol):
        assert "WARNING" in line, line
        assert "Refused " in line, line
        assert "'/backups/" in line, line
    assert password not in target.log


def test_digest_auth_with_curl(target: BackupTarget, accounts: Accounts) -> None:
    curl = require_tool("curl", "curl")
    alice = accounts.alice
    (target.storage / "backups" / "digest.txt").write_text("over digest")
    url = f"http://127.0.0.1:{target.webdav_port}/backups/digest.txt"

    challenge = dav(target, "GET", "/backups/digest.txt")
    assert challenge.status == 401
    offers = challenge.headers.get_all("WWW-Authenticate") or []
    assert any(o.startswith("Digest ") and 'realm="Backup Drive"' in o for o in offers), offers

    def fetch(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [curl, "-sS", "--digest", "-u", f"{alice.username}:{password}",
             "-w", "\n%{http_code}", url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    good = fetch(alice.password)
    assert good.returncode == 0, good.stderr
    assert good.stdout.rsplit("\n", 1) == ["over digest", "200"]
    bad = fetch("not the password")
    assert bad.stdout.rsplit("\n", 1)[-1] == "401"


def test_windows_domain_user_name_with_basic(target: BackupTarget, accounts: Accounts) -> None:
    (target.storage / "backups" / "explorer.txt").write_text("from Windows")
    for username in ("WORKGROUP\\alice", "DESKTOP-1\\alice"):
        response = dav(
            target, "GET", "/backups/explorer.txt", auth=(username, accounts.alice.password)
        )
        assert response.status == 200, username
        assert response.body == b"from Windows"
    wrong = dav(target, "GET", "/backups/explorer.txt", auth=("WORKGROUP\\alice", "bob-pw-2"))
    assert wrong.status == 401


def test_windows_domain_user_name_with_digest(target: BackupTarget, accounts: Accounts) -> None:
    curl = require_tool("curl", "curl")
    (target.storage / "backups" / "explorer.txt").write_text("from Windows")
    result = subprocess.run(
        [curl, "-sS", "--digest", "-u", f"WORKGROUP\\alice:{accounts.alice.password}",
         "-w", "\n%{http_code}", f"http://127.0.0.1:{target.webdav_port}/backups/explorer.txt"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.stdout.rsplit("\n", 1) == ["from Windows", "200"], result.stderr


def test_challenges_do_not_count_as_failures(target: BackupTarget, accounts: Accounts) -> None:
    # Digest clients (curl, Windows Explorer) start every exchange without credentials.
    for _ in range(FAILURES_BEFORE_BAN * 2):
        assert dav(target, "PROPFIND", "/", headers={"Depth": "0"}).status == 401
    alice = (accounts.alice.username, accounts.alice.password)
    assert dav(target, "PROPFIND", "/", auth=alice, headers={"Depth": "0"}).status == 207
    assert "banned" not in target.log


async def sftp_login_works(
    target: BackupTarget, username: str, password: str, address: str
) -> bool:
    """Try one SFTP password login from address; return whether it got in."""
    try:
        async with sftp_client(target, username, password=password, local_addr=(address, 0)):
            return True
    except (asyncssh.Error, OSError):
        return False


def webdav_login_works(target: BackupTarget, username: str, password: str, address: str) -> bool:
    """Try one WebDAV request with Basic credentials from address; return whether it got in."""
    try:
        response = dav(
            target,
            "PROPFIND",
            "/",
            auth=(username, password),
            headers={"Depth": "0"},
            source_address=(address, 0),
        )
    except OSError:
        return False
    return response.status == 207


async def test_wrong_sftp_passwords_ban_the_address(
    target: BackupTarget, accounts: Accounts
) -> None:
    alice = accounts.alice
    durations = []
    for _ in range(FAILURES_BEFORE_BAN):
        started = time.monotonic()
        assert not await sftp_login_works(target, alice.username, "wrong", "127.0.0.1")
        durations.append(time.monotonic() - started)
    # Delays are reported, not asserted: tests never fail on timing.
    print("seconds per refused login:", [f"{d:.2f}" for d in durations])
    assert await eventually(lambda: "banned" in target.log), target.log
    ban_lines = [line for line in target.log.splitlines() if "banned" in line]
    assert all("127.0.0.1" in line for line in ban_lines), ban_lines
    assert all("WARNING" in line for line in ban_lines), ban_lines

    # Banned: even the right password is refused, over both protocols (the ban is shared).
    assert not await sftp_login_works(target, alice.username, alice.password, "127.0.0.1")
    assert not await asyncio.to_thread(
        webdav_login_works, target, alice.username, alice.password, "127.0.0.1"
    )
    assert not await sftp_login_works(target, HOMEASSISTANT_USER, target.password, "127.0.0.1")
    # Another address is not affected.
    assert await sftp_login_works(target, alice.username, alice.password, OTHER_ADDRESS)
    assert await asyncio.to_thread(
        webdav_login_works, target, alice.username, alice.password, OTHER_ADDRESS
    )
    assert not [
        line for line in target.log.splitlines() if OTHER_ADDRESS in line and "banned" in line
    ]


async def test_wrong_webdav_passwords_ban_the_address(
    target: BackupTarget, accounts: Accounts
) -> None:
    alice = accounts.alice
    for _ in range(FAILURES_BEFORE_BAN):
        assert not await asyncio.to_thread(
            webdav_login_works, target, alice.username, "wrong", "127.0.0.1"
        )
    assert await eventually(lambda: "banned" in target.log), target.log

    assert not await asyncio.to_thread(
        webdav_login_works, target, alice.username, alice.password, "127.0.0.1"
    )
    assert not await sftp_login_works(target, alice.username, alice.password, "127.0.0.1")
    assert await asyncio.to_thread(
        webdav_login_works, target, alice.username, alice.password, OTHER_ADDRESS
    )
    assert await sftp_login_works(target, alice.username, alice.password, OTHER_ADDRESS)


async def test_failures_from_both_protocols_add_up(
    target: BackupTarget, accounts: Accounts
) -> None:
    alice = accounts.alice
    for attempt in range(FAILURES_BEFORE_BAN):
        if attempt % 2:
            assert not await sftp_login_works(target, alice.username, "wrong", "127.0.0.1")
        else:
            assert not await asyncio.to_thread(
                webdav_login_works, target, alice.username, "wrong", "127.0.0.1"
            )
    assert await eventually(lambda: "banned" in target.log), target.log
    assert not await sftp_login_works(target, alice.username, alice.password, "127.0.0.1")


async def login_works(
    protocol: str, target: BackupTarget, username: str, password: str, address: str = "127.0.0.1"
) -> bool:
    """Try one password login over `protocol` ("sftp" or "webdav"); return whether it got in."""
    if protocol == "sftp":
        return await sftp_login_works(target, username, password, address)
    return await asyncio.to_thread(webdav_login_works, target, username, password, address)


@pytest.fixture(params=["sftp", "webdav"])
def protocol(request: pytest.FixtureRequest) -> str:
    """Run a test over SFTP and again over WebDAV: the login guard is shared."""
    return str(request.param)


async def refused_logins(protocol: str, target: BackupTarget, username: str, count: int) -> None:
    """Try `count` wrong passwords for `username`, asserting each is refused."""
    for _ in range(count):
        assert not await login_works(protocol, target, username, "wrong")


async def test_five_failures_still_let_the_right_password_in_and_the_sixth_bans(
    protocol: str, target: BackupTarget, accounts: Accounts
) -> None:
    alice = accounts.alice
    await refused_logins(protocol, target, alice.username, FAILURES_BEFORE_BAN - 1)
    assert "banned" not in target.log
    # Another account's good login neither meets a ban nor forgives alice's failures.
    assert await login_works(protocol, target, HOMEASSISTANT_USER, target.password)
    assert not await login_works(protocol, target, alice.username, "wrong")
    assert await eventually(lambda: "banned" in target.log), target.log
    assert not await login_works(protocol, target, HOMEASSISTANT_USER, target.password)


async def test_a_good_login_as_another_account_does_not_reset_the_count(
    protocol: str, target: BackupTarget, accounts: Accounts
) -> None:
    # The attack: two guesses at homeassistant, then one login with a password the guesser
    # knows, over and over. Only alice's own failures are forgiven by alice's login.
    alice = accounts.alice
    for round_number in range(FAILURES_BEFORE_BAN // 2):
        await refused_logins(protocol, target, HOMEASSISTANT_USER, 2)
        if round_number < FAILURES_BEFORE_BAN // 2 - 1:
            assert await login_works(protocol, target, alice.username, alice.password)
    assert await eventually(lambda: "banned" in target.log), target.log
    assert not await login_works(protocol, target, alice.username, alice.password)


async def test_a_good_login_forgives_only_that_accounts_failures(
    protocol: str, target: BackupTarget, accounts: Accounts
) -> None:
    name, password = accounts.alice.username, accounts.alice.password
    for _attempt in range(FAILURES_BEFORE_BAN - 1):
        assert not await login_works(protocol, target, name, "typo")
    # alice finally types it right: her five failures are forgiven, so one more typo is no ban.
    assert await login_works(protocol, target, name, password)
    assert not await login_works(protocol, target, name, "typo")
    assert await login_works(protocol, target, name, password)
    assert "banned" not in target.log
