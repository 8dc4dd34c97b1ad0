"""Nobody gets out of the storage root: `..`, absolute paths and symlinks pointing out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from backup_drive_server.staged_upload import STAGING_FOLDER
from tests.backup_target import BackupTarget
from tests.server.conftest import (
    LOCK_EXCLUSIVE,
    PROPPATCH_SET,
    Accounts,
    dav,
    destination,
    eventually,
    run_sftp,
    sftp_client,
    tree_snapshot,
    wait_until,
)

JAIL_WARNING = "outside the storage root"
PROPFIND_ALL = b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>'


@dataclass(frozen=True)
class Escapes:
    """A storage root with symlinks pointing out of it, and the place they point to."""

    storage: Path
    outside: Path
    secret: bytes

    def assert_outside_untouched(self) -> None:
        """Assert the folder outside still holds only the secret, byte for byte."""
        assert tree_snapshot(self.outside) == {"secret.txt": self.secret}


@pytest.fixture
def escapes(tmp_path: Path) -> Escapes:
    """Make storage/escape -> a sibling folder, storage/etc -> /etc and file links out of root.

    The links are made on disk before the server starts, as a user with shell access might. The
    sibling's name starts with the storage root's (`storage-other`, like `/mnt/backup_drive2`
    next to `/mnt/backup_drive`), so a jail that compares path prefixes as plain strings fails.
    """
    storage = tmp_path / "storage"
    outside = tmp_path / "storage-other"
    storage.mkdir()
    outside.mkdir()
    secret = f"secret {uuid.uuid4()}\n".encode()
    (outside / "secret.txt").write_bytes(secret)
    (storage / "escape").symlink_to(outside)
    (storage / "etc").symlink_to("/etc")
    (storage / "file-link").symlink_to(outside / "secret.txt")
    (storage / "relative-link").symlink_to("../storage-other/secret.txt")
    (storage / "hostname-link").symlink_to("/etc/hostname")
    return Escapes(storage, outside, secret)


def warnings_logged(target: BackupTarget) -> int:
    """Count the server's jail warnings so far."""
    return target.log.count(JAIL_WARNING)


async def assert_sftp_refused(
    sftp: asyncssh.SFTPClient, operation: str, *arguments: object
) -> None:
    """Assert one SFTP client operation fails with an SFTP error."""
    call = getattr(sftp, operation)
    with pytest.raises(asyncssh.SFTPError):
        result = await call(*arguments)
        pytest.fail(f"{operation}{arguments} succeeded: {result!r}")


async def test_sftp_symlinks_out_of_root_are_refused(
    escapes: Escapes, target: BackupTarget, tmp_path: Path
) -> None:
    local = tmp_path / "local.txt"
    local.write_text("should never land outside")
    async with sftp_client(target) as sftp:
        for path in ("/escape", "/etc", "/escape/", "/escape/."):
            await assert_sftp_refused(sftp, "listdir", path)
        for path in ("/escape/secret.txt", "/file-link", "/relative-link", "/etc/hostname"):
            await assert_sftp_refused(sftp, "get", path, str(tmp_path / "got"))
            assert not (tmp_path / "got").exists()
        await assert_sftp_refused(sftp, "put", str(local), "/escape/new.txt")
        await assert_sftp_refused(sftp, "put", str(local), "/file-link")
        await assert_sftp_refused(sftp, "mkdir", "/escape/new-folder")
        await assert_sftp_refused(sftp, "remove", "/escape/secret.txt")
        await assert_sftp_refused(sftp, "rename", "/escape/secret.txt", "/stolen.txt")
        await assert_sftp_refused(sftp, "chmod", "/file-link", 0o777)
        await assert_sftp_refused(sftp, "stat", "/escape/secret.txt")
        # The links themselves are inside the root; what they point to must stay out of reach.
        names = await sftp.listdir("/")
        assert "backups" in names
    escapes.assert_outside_untouched()
    assert (escapes.outside / "secret.txt").stat().st_mode & 0o777 != 0o777
    assert not (escapes.storage / "stolen.txt").exists()
    assert await eventually(lambda: warnings_logged(target) > 0), target.log


async def test_sftp_dotdot_and_absolute_paths_stay_inside(
    escapes: Escapes, target: BackupTarget, tmp_path: Path
) -> None:
    local = tmp_path / "local.txt"
    local.write_text("should never land outside")
    async with sftp_client(target) as sftp:
        for path in (
            "/../outside/secret.txt",
            "../outside/secret.txt",
            "/backups/../../outside/secret.txt",
            "/../../../../../../etc/hostname",
        ):
            await assert_sftp_refused(sftp, "get", path, str(tmp_path / "got"))
            assert not (tmp_path / "got").exists()
        await assert_sftp_refused(sftp, "listdir", "/../outside")
        await assert_sftp_refused(sftp, "put", str(local), "/../outside/new.txt")
        await assert_sftp_refused(sftp, "put", str(local), "../outside/new.txt")
        await assert_sftp_refused(sftp, "mkdir", "/../outside/new-folder")
        await assert_sftp_refused(sftp, "rename", "/../outside/secret.txt", "/stolen.txt")
    escapes.assert_outside_untouched()
    assert not (tmp_path / "new.txt").exists()
    assert not (escapes.storage / "stolen.txt").exists()
    assert await eventually(lambda: warnings_logged(target) > 0), (
        f"`..` escapes should be logged with {JAIL_WARNING!r}:\n{target.log}"
    )


async def test_sftp_client_cannot_create_a_link_out(
    escapes: Escapes, target: BackupTarget, tmp_path: Path
) -> None:
    async with sftp_client(target) as sftp:
        for link, pointing_to in (
            ("/made-absolute", str(escapes.outside)),
            ("/made-relative", "../" * 12 + str(escapes.outside).lstrip("/")),
            ("/made-etc", "/etc"),
        ):
            try:
                await sftp.symlink(pointing_to, link)
            except asyncssh.SFTPError:
                continue
            # Making the link may be allowed (it points inside, then); following it must not leave.
            await assert_sftp_refused(sftp, "get", f"{link}/secret.txt", str(tmp_path / "got"))
            await assert_sftp_refused(sftp, "get", f"{link}/hostname", str(tmp_path / "got"))
            await assert_sftp_refused(sftp, "listdir", link)
            assert not (tmp_path / "got").exists()
    escapes.assert_outside_untouched()


def test_openssh_sftp_symlinks_and_dotdot_are_refused(
    escapes: Escapes, target: BackupTarget, accounts: Accounts, tmp_path: Path
) -> None:
    local = tmp_path / "local.txt"
    local.write_text("should never land outside")
    got = tmp_path / "got"
    commands = [
        f"get /escape/secret.txt {got}",
        f"get /file-link {got}",
        f"get /etc/hostname {got}",
        f"get /../outside/secret.txt {got}",
        "cd /escape",
        f"put {local} /escape/new.txt",
        f"put {local} /../outside/new.txt",
        "mkdir /escape/new-folder",
        "rm /escape/secret.txt",
    ]
    # sftp's ls shows the link itself (it is inside the root); never what is behind it.
    for command in ("ls -l /escape", "ls -l /escape/", "ls /escape/*", "ls -l /etc/", "ls -l /"):
        listed = run_sftp(target, accounts.alice, tmp_path, command + "\n")
        assert "secret.txt" not in listed.stdout
        assert "passwd" not in listed.stdout
    for command in commands:
        result = run_sftp(target, accounts.alice, tmp_path, command + "\n")
        assert result.returncode != 0, f"{command!r} succeeded: {result.stdout}"
        assert escapes.secret.decode() not in result.stdout
        assert "secret.txt" not in result.stdout.replace(command, "")
        assert not got.exists()
    escapes.assert_outside_untouched()
    assert not (tmp_path / "new.txt").exists()
    assert wait_until(lambda: warnings_logged(target) > 0), target.log


def dav_paths_out() -> list[str]:
    """Return URL paths that try to leave the root through links, `..` and absolute paths."""
    return [
        "/escape/secret.txt",
        "/file-link",
        "/relative-link",
        "/etc/hostname",
        "/hostname-link",
        "/%2e%2e/outside/secret.txt",
        "/backups/%2e%2e/%2e%2e/outside/secret.txt",
        "/%2E%2E%2Foutside%2Fsecret.txt",
        "/..%2F..%2Foutside%2Fsecret.txt",
        "/../outside/secret.txt",
        "//etc/hostname",
        "/%2Fetc%2Fhostname",
    ]


def not_refused(
    target: BackupTarget, auth: tuple[str, str], attempts: list[tuple[str, str, dict[str, str]]]
) -> list[str]:
    """Send every attempt; describe those that were not refused with a 4xx/5xx answer."""
    bodies = {"PROPPATCH": PROPPATCH_SET, "LOCK": LOCK_EXCLUSIVE}
    problems = []
    for method, path, headers in attempts:
        body = bodies.get(method, b"overwritten")
        try:
            response = dav(target, method, path, auth=auth, headers=headers, body=body)
        except TimeoutError:
            problems.append(f"{method} {path} {headers}: no complete answer (timed out)")
            continue
        if response.status < 400:
            problems.append(f"{method} {path} {headers}: {response.status}")
    return problems


@pytest.mark.parametrize("path", dav_paths_out())
def test_webdav_get_out_of_root_is_refused(
    escapes: Escapes, target: BackupTarget, accounts: Accounts, path: str
) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    response = dav(target, "GET", path, auth=alice)
    assert response.status >= 400, f"GET {path}: {response.status}"
    assert escapes.secret not in response.body

    listing = dav(target, "PROPFIND", path, auth=alice, headers={"Depth": "1"}, body=PROPFIND_ALL)
    assert listing.status >= 400, f"PROPFIND {path}: {listing.status}"
    # Paths that start with a double slash may be refused before any file is looked at.
    if not path.startswith(("//", "/%2F")):
        assert wait_until(lambda: warnings_logged(target) > 0), target.log


def test_webdav_symlinks_out_of_root_are_refused(
    escapes: Escapes, target: BackupTarget, accounts: Accounts
) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    before = warnings_logged(target)
    for path in ("/escape/", "/escape", "/etc/"):
        listing = dav(target, "PROPFIND", path, auth=alice, headers={"Depth": "1"})
        assert listing.status >= 400, f"PROPFIND {path}: {listing.status} {listing.text}"
        assert "secret.txt" not in listing.text
        page = dav(target, "GET", path, auth=alice, headers={"Accept": "text/html"})
        assert page.status >= 400, f"GET {path}: {page.status}"
        assert "secret.txt" not in page.text
    root = dav(target, "PROPFIND", "/", auth=alice, headers={"Depth": "1"})
    assert root.status == 207
    assert "secret.txt" not in root.text

    writes = [
        ("PUT", "/escape/new.txt", {}),
        ("PUT", "/file-link", {}),
        ("MKCOL", "/escape/new-folder", {}),
        ("DELETE", "/escape/secret.txt", {}),
        ("DELETE", "/escape/", {}),
        ("MOVE", "/escape/secret.txt", destination(target, "/stolen.txt")),
        ("COPY", "/escape/secret.txt", destination(target, "/stolen.txt")),
        ("COPY", "/escape/", destination(target, "/stolen-folder/")),
        ("PROPPATCH", "/file-link", {}),
        ("LOCK", "/escape/secret.txt", {}),
        ("LOCK", "/escape/locked-new.txt", {}),
    ]
    problems = not_refused(target, alice, writes)
    assert not problems, "\n".join(problems)
    escapes.assert_outside_untouched()
    assert not (escapes.storage / "stolen.txt").exists()
    assert not (escapes.storage / "stolen-folder").exists()
    assert wait_until(lambda: warnings_logged(target) > before), target.log


def test_webdav_writes_through_dotdot_are_refused(
    escapes: Escapes, target: BackupTarget, accounts: Accounts
) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    into_root = "/backups/into-root.txt"
    (escapes.storage / "backups" / "into-root.txt").write_text("inside")
    attempts = [
        ("PUT", "/%2e%2e/outside/new.txt", {}),
        ("PUT", "/..%2Foutside%2Fnew.txt", {}),
        ("MKCOL", "/%2e%2e/outside/new-folder", {}),
        ("DELETE", "/%2e%2e/outside/secret.txt", {}),
        ("COPY", into_root, destination(target, "/%2e%2e/outside/copied.txt")),
        ("MOVE", into_root, destination(target, "/%2e%2e/outside/moved.txt")),
        ("COPY", into_root, destination(target, "/../outside/copied.txt")),
        ("MOVE", "/%2e%2e/outside/secret.txt", destination(target, "/stolen.txt")),
    ]
    problems = not_refused(target, alice, attempts)
    assert not problems, "\n".join(problems)
    assert wait_until(lambda: warnings_logged(target) > 0), target.log
    escapes.assert_outside_untouched()
    assert (escapes.storage / "backups" / "into-root.txt").read_text() == "inside"
    assert not (escapes.storage / "stolen.txt").exists()


async def test_sftp_cannot_reach_the_staging_folder(target: BackupTarget, tmp_path: Path) -> None:
    local = tmp_path / "local.txt"
    local.write_text("must not land among uploads in progress")
    async with sftp_client(target) as sftp:
        assert STAGING_FOLDER not in await sftp.listdir("/")
        for path in (f"/{STAGING_FOLDER}", f"/backups/../{STAGING_FOLDER}"):
            await assert_sftp_refused(sftp, "listdir", path)
            await assert_sftp_refused(sftp, "stat", path)
            await assert_sftp_refused(sftp, "rmdir", path)
        await assert_sftp_refused(sftp, "put", str(local), f"/{STAGING_FOLDER}/planted")
        await assert_sftp_refused(sftp, "rename", "/backups", f"/{STAGING_FOLDER}/backups")
    assert list((target.storage / STAGING_FOLDER).iterdir()) == []


def test_webdav_cannot_reach_the_staging_folder(target: BackupTarget, accounts: Accounts) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    root = dav(target, "PROPFIND", "/", auth=alice, headers={"Depth": "1"})
    assert root.status == 207
    assert STAGING_FOLDER not in root.text
    page = dav(target, "GET", "/", auth=alice, headers={"Accept": "text/html"})
    assert STAGING_FOLDER not in page.text
    for method, body in (("PROPFIND", b""), ("GET", b""), ("PUT", b"planted"), ("DELETE", b"")):
        response = dav(target, method, f"/{STAGING_FOLDER}/planted", auth=alice, body=body)
        assert response.status == 403, f"{method}: {response.status}"
    assert list((target.storage / STAGING_FOLDER).iterdir()) == []
