"""WebDAV details that file managers and Home Assistant rely on."""

from __future__ import annotations

import http.client
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

from tests.backup_target import BackupTarget
from tests.server.conftest import (
    PROPFIND_NOTE,
    PROPFIND_QUOTA,
    PROPPATCH_SET,
    Accounts,
    basic_auth,
    dav,
    partial_files,
    tree_snapshot,
)

DAV_NS = "{DAV:}"


def alice_of(accounts: Accounts) -> tuple[str, str]:
    """Return alice's WebDAV credentials."""
    return accounts.alice.username, accounts.alice.password


def test_options_on_root_announce_class_2_for_explorer(
    target: BackupTarget, accounts: Accounts
) -> None:
    response = dav(target, "OPTIONS", "/", auth=alice_of(accounts))
    assert response.status == 200
    classes = {part.strip() for part in (response.headers.get("DAV") or "").split(",")}
    assert {"1", "2"} <= classes, response.headers.get("DAV")
    assert response.headers.get("MS-Author-Via") == "DAV"
    allowed = {part.strip() for part in (response.headers.get("Allow") or "").split(",")}
    # PUT is rightly missing: "/" is a collection.
    assert {"PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "COPY", "MOVE"} <= allowed, allowed


def test_propfind_reports_quota(target: BackupTarget, accounts: Accounts) -> None:
    response = dav(
        target,
        "PROPFIND",
        "/",
        auth=alice_of(accounts),
        headers={"Depth": "0", "Content-Type": "application/xml"},
        body=PROPFIND_QUOTA,
    )
    assert response.status == 207, response.text
    tree = ET.fromstring(response.body)  # noqa: S314 (our own server under test)
    available = tree.find(f".//{DAV_NS}quota-available-bytes")
    used = tree.find(f".//{DAV_NS}quota-used-bytes")
    assert available is not None, response.text
    assert used is not None, response.text
    assert available.text is not None
    assert used.text is not None
    disk = os.statvfs(target.storage)
    assert 0 < int(available.text) <= disk.f_blocks * disk.f_frsize
    assert int(used.text) >= 0


def test_head_on_a_collection_is_allowed(target: BackupTarget, accounts: Accounts) -> None:
    # Home Assistant's webdav agent sends HEAD on its folder before every upload.
    for path in ("/", "/backups", "/backups/"):
        response = dav(target, "HEAD", path, auth=alice_of(accounts))
        assert response.status == 200, f"HEAD {path}: {response.status}"


def test_browser_gets_an_html_listing(target: BackupTarget, accounts: Accounts) -> None:
    backups = target.storage / "backups"
    (backups / "Full backup 2026-11-29.tar").write_bytes(b"x" * 10)
    (backups / "older").mkdir()
    response = dav(
        target,
        "GET",
        "/backups/",
        auth=alice_of(accounts),
        headers={"Accept": "text/html,application/xhtml+xml", "User-Agent": "Mozilla/5.0"},
    )
    assert response.status == 200
    assert (response.headers.get("Content-Type") or "").startswith("text/html")
    assert "Full backup 2026-11-29.tar" in response.text
    assert re.search(r'href="[^"]*Full(%20| )backup', response.text), response.text
    assert "older" in response.text


def test_put_get_delete_round_trip(target: BackupTarget, accounts: Accounts) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 5)
    alice = alice_of(accounts)
    assert dav(target, "MKCOL", "/backups/%C3%BCn%C3%AF%20code/", auth=alice).status == 201
    put = dav(target, "PUT", "/backups/%C3%BCn%C3%AF%20code/b%20a.tar", auth=alice, body=payload)
    assert put.status in {200, 201, 204}
    on_disk = target.storage / "backups" / "ünï code" / "b a.tar"
    assert on_disk.read_bytes() == payload
    got = dav(target, "GET", "/backups/%C3%BCn%C3%AF%20code/b%20a.tar", auth=alice)
    assert got.status == 200
    assert got.body == payload
    ranged = dav(
        target,
        "GET",
        "/backups/%C3%BCn%C3%AF%20code/b%20a.tar",
        auth=alice,
        headers={"Range": "bytes=1048576-1048585"},
    )
    assert ranged.status == 206
    assert ranged.body == payload[1048576:1048586]
    assert dav(target, "DELETE", "/backups/%C3%BCn%C3%AF%20code/b%20a.tar", auth=alice).status in {
        200,
        204,
    }
    assert not on_disk.exists()


def test_chunked_put_like_finder(target: BackupTarget, accounts: Accounts) -> None:
    # macOS Finder sends bodies chunked, with the size in X-Expected-Entity-Length.
    payload = os.urandom(5 * 1024 * 1024 + 99)
    chunks = [payload[start : start + 65536] for start in range(0, len(payload), 65536)]
    connection = http.client.HTTPConnection("127.0.0.1", target.webdav_port, timeout=30)
    try:
        connection.request(
            "PUT",
            "/backups/from-finder.tar",
            body=iter(chunks),
            headers={
                **basic_auth(*alice_of(accounts)),
                "Transfer-Encoding": "chunked",
                "X-Expected-Entity-Length": str(len(payload)),
            },
            encode_chunked=True,
        )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status in {201, 204}
    assert (target.storage / "backups" / "from-finder.tar").read_bytes() == payload
    assert partial_files(target.storage) == []


def test_dead_property_survives_a_restart(
    start_target: Callable[..., BackupTarget], accounts: Accounts
) -> None:
    alice = alice_of(accounts)
    first = start_target()
    (first.storage / "backups" / "tagged.tar").write_bytes(b"a backup")
    storage_before = tree_snapshot(first.storage)
    patched = dav(
        first,
        "PROPPATCH",
        "/backups/tagged.tar",
        auth=alice,
        headers={"Content-Type": "application/xml"},
        body=PROPPATCH_SET,
    )
    assert patched.status == 207, patched.text
    assert "200 OK" in patched.text
    assert first.stop() == 0

    second = start_target()
    found = dav(
        second,
        "PROPFIND",
        "/backups/tagged.tar",
        auth=alice,
        headers={"Depth": "0", "Content-Type": "application/xml"},
        body=PROPFIND_NOTE,
    )
    assert found.status == 207, found.text
    tree = ET.fromstring(found.body)  # noqa: S314 (our own server under test)
    note = tree.find(".//{urn:backup-drive:test}note")
    assert note is not None, found.text
    assert note.text == "kept across restarts"
    # The property store lives in the data dir: nothing was added to the user's drive.
    assert tree_snapshot(second.storage) == storage_before
