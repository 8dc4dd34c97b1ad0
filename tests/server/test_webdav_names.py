"""Odd names and paths over WebDAV: listed when on disk, refused with a 4xx when requested."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from tests.backup_target import BackupTarget
from tests.server.conftest import Accounts, dav, destination, sftp_client

INVALID_UTF8_NAME = b"\xff-invalid-utf8"


async def test_a_non_utf8_name_does_not_break_its_folder(
    target: BackupTarget, accounts: Accounts
) -> None:
    async with sftp_client(target) as sftp, sftp.open(b"/backups/" + INVALID_UTF8_NAME, "wb") as f:
        await f.write(b"uploaded over SFTP")
    (target.storage / "backups" / "normal.tar").write_bytes(b"normal")
    alice = (accounts.alice.username, accounts.alice.password)
    listing = dav(target, "PROPFIND", "/backups/", auth=alice, headers={"Depth": "1"})
    assert listing.status == 207, listing.text
    assert "/backups/normal.tar" in listing.text
    assert "/backups/%5Cxff-invalid-utf8" in listing.text  # escaped, with its size
    assert "<ns0:getcontentlength>18</ns0:getcontentlength>" in listing.text
    page = dav(target, "GET", "/backups/", auth=alice, headers={"Accept": "text/html"})
    assert page.status == 200
    assert "normal.tar" in page.text
    assert "Traceback" not in target.log
    assert os.listdir(os.fsencode(target.storage / "backups")).count(INVALID_UTF8_NAME) == 1


def test_bad_paths_get_a_4xx_never_a_500(target: BackupTarget, accounts: Accounts) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    long_name = "a" * 256
    attempts = [
        ("GET", "/backups/a%00b", {}, "NUL"),
        ("PUT", "/backups/a%00b", {}, "NUL"),
        ("GET", "/backups/%c0%af", {}, "UTF-8"),
        ("PROPFIND", "/%ff/", {"Depth": "0"}, "UTF-8"),
        ("PUT", f"/backups/{long_name}", {}, "255 bytes"),
        ("MKCOL", f"/backups/{long_name}", {}, "255 bytes"),
        ("COPY", "/backups/a.tar", destination(target, "/backups/%c0%af"), "UTF-8"),
        ("MOVE", "/backups/a.tar", destination(target, "/backups/x%00"), "NUL"),
    ]
    (target.storage / "backups" / "a.tar").write_bytes(b"kept")
    for method, path, headers, reason in attempts:
        response = dav(target, method, path, auth=alice, headers=headers, body=b"x")
        assert response.status == 400, (method, path, response.status, response.text)
        assert reason in response.text, response.text
    # A name that fits alone but not with the upload's temporary prefix is refused cleanly too.
    response = dav(target, "PUT", f"/backups/{'b' * 250}", auth=alice, body=b"x")
    assert response.status in {201, 204, 400}, response.status
    assert (target.storage / "backups" / "a.tar").read_bytes() == b"kept"
    assert "Traceback" not in target.log


def test_answers_name_no_library_or_version(target: BackupTarget, accounts: Accounts) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    bob = (accounts.bob.username, accounts.bob.password)
    (target.storage / "backups" / "a.tar").write_bytes(b"a")
    answers = [
        dav(target, "GET", "/backups/missing.tar", auth=alice),
        dav(target, "PUT", "/backups/a.tar", auth=bob, body=b"read-only"),
        dav(target, "MKCOL", "/backups/a.tar", auth=alice),
        dav(target, "MKCOL", "/nowhere/deeper", auth=alice),
        dav(target, "PROPFIND", "/", auth=alice, headers={"Depth": "infinity"}),
        dav(target, "GET", "/backups/a.tar"),
        dav(target, "GET", "/backups/a.tar", headers={"Authorization": "Basic eDp5"}),
        dav(target, "OPTIONS", "/", auth=alice),
        dav(target, "PROPFIND", "/", auth=alice, headers={"Depth": "1"}),
    ]
    assert {answer.status for answer in answers} >= {404, 403, 405, 409, 401}
    for answer in answers:
        assert answer.headers["Server"] == "Backup Drive"
        seen = f"{answer.headers}\n{answer.text}".lower()
        for name in ("wsgidav", "cheroot", "python/", "4.4.0", "11.1.2"):
            assert name not in seen, (answer.status, name, seen)
    missing = answers[0]
    assert missing.headers["Content-Type"].startswith("text/plain")
    assert "/backups/missing.tar" in missing.text


def root_display_name(target: BackupTarget, accounts: Accounts) -> str:
    """Return the displayname PROPFIND reports for the WebDAV root."""
    alice = (accounts.alice.username, accounts.alice.password)
    response = dav(target, "PROPFIND", "/", auth=alice, headers={"Depth": "0"})
    assert response.status == 207, response.text
    found = re.search(r"displayname>([^<]*)<", response.text)
    assert found, response.text
    return found.group(1)


def test_the_root_is_named_after_the_drive(
    start_target: Callable[..., BackupTarget], accounts: Accounts
) -> None:
    assert root_display_name(start_target(), accounts) == "Backup Drive"
    labelled = start_target(extra_args=["--label", "SANDISK 64GB"])
    assert root_display_name(labelled, accounts) == "SANDISK 64GB"
