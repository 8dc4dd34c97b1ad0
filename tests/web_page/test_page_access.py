"""Who gets the page, and what never leaves it: plain HTTP against the real server."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.server.conftest import DavResponse, http_request
from tests.web_page.conftest import ALICE, BOB, Drive
from tests.web_page.drive_content import HEALTH_FILE

INGRESS_PATH = "/api/hassio_ingress/Zx9-token"
PROPFIND_NAMES = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/></D:prop></D:propfind>'
)


def request(
    port: int,
    method: str,
    path: str,
    *,
    login: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> DavResponse:
    """Send one request to 127.0.0.1:port and read the whole answer."""
    return http_request(port, method, path, auth=login, headers=headers, body=body, timeout=30)


def alice() -> tuple[str, str]:
    """Alice's login."""
    return (ALICE.username, ALICE.password)


@pytest.fixture(scope="module")
def proxy_only_drive(start_drive_factory: Callable[..., Drive]) -> Drive:
    """A page that only Supervisor's real ingress proxy address may open."""
    return start_drive_factory("--ui-allow-from", "172.30.32.2")


def test_ingress_port_refuses_other_addresses(proxy_only_drive: Drive) -> None:
    port = proxy_only_drive.target.ui_port
    assert port is not None
    for login in (None, alice()):
        answer = request(port, "GET", "/", login=login, headers={"X-Ingress-Path": INGRESS_PATH})
        assert answer.status == 403
        assert "Automatic backup" not in answer.text
    download = f"/files/backups/{proxy_only_drive.backups[0].file_name}"
    assert request(port, "GET", download).status == 403
    assert "Refused the add-on's page to 127.0.0.1" in proxy_only_drive.target.log


def test_ingress_proxy_needs_no_login_and_keeps_its_path(ingress_drive: Drive) -> None:
    port = ingress_drive.target.ui_port
    assert port is not None
    answer = request(port, "GET", "/", headers={"X-Ingress-Path": INGRESS_PATH})
    assert answer.status == 200
    links = re.findall(r'(?:href|src|action)="([^"]*)"', answer.text)
    assert links, answer.text
    assert all(link.startswith(f"{INGRESS_PATH}/") for link in links), links
    # A header that is not an ingress path is ignored, not echoed into links.
    odd = request(port, "GET", "/", headers={"X-Ingress-Path": 'x" onmouseover="alert(1)'})
    assert odd.status == 200
    assert "onmouseover" not in odd.text
    assert all(link.startswith("/") for link in re.findall(r'href="([^"]*)"', odd.text))


def test_page_asks_for_an_account(local_drive: Drive) -> None:
    port = local_drive.target.ui_port
    assert port is not None
    anonymous = request(port, "GET", "/")
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"].startswith('Basic realm="Backup Drive"')
    assert "Automatic backup" not in anonymous.text
    assert request(port, "GET", "/", login=(ALICE.username, "wrong")).status == 401
    assert request(port, "GET", "/", login=("nobody", ALICE.password)).status == 401
    assert request(port, "GET", "/", login=alice()).status == 200
    assert request(port, "GET", "/", login=(BOB.username, BOB.password)).status == 200
    assert request(port, "POST", "/", login=alice()).status == 405
    assert request(port, "GET", "/nothing-here", login=alice()).status == 404


def test_failed_logins_show_among_recent_warnings(ingress_drive: Drive) -> None:
    assert request(ingress_drive.target.webdav_port, "PROPFIND", "/",
                   login=("mallory", "guess")).status == 401  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        page = request(ingress_drive.target.ui_port or 0, "GET", "/").text
        if "Failed login as &#39;mallory&#39;" in page or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "Failed login as &#39;mallory&#39; from 127.0.0.1 over WebDAV" in page


def test_page_downloads_only_visible_files_inside_the_drive(local_drive: Drive) -> None:
    port = local_drive.target.ui_port
    assert port is not None
    newest = local_drive.backups[-1]
    got = request(port, "GET", f"/files/backups/{newest.file_name}", login=alice())
    assert got.status == 200
    assert got.body == (local_drive.backups_folder / newest.file_name).read_bytes()
    assert newest.file_name in got.headers["Content-Disposition"]
    head = request(port, "HEAD", f"/files/backups/{newest.file_name}", login=alice())
    assert head.status == 200 and head.body == b""
    for hidden in (newest.sidecar_name, HEALTH_FILE, local_drive.staging_name):
        assert request(port, "GET", f"/files/backups/{hidden}", login=alice()).status == 404
    for escape in ("/files/../data/homeassistant.password", "/files/%2e%2e/%2e%2e/etc/passwd",
                   "/files/backups/../../data/homeassistant.password"):  # fmt: skip
        answer = request(port, "GET", escape, login=alice())
        assert answer.status in (403, 404), escape
        assert local_drive.target.password.encode() not in answer.body
    assert request(port, "GET", "/files/backups/older", login=alice()).status == 404


def test_webdav_clients_are_untouched(local_drive: Drive) -> None:
    port = local_drive.target.webdav_port
    assert request(port, "GET", "/backups/", headers={"Accept": "text/html"}).status == 401
    listing = request(port, "PROPFIND", "/backups/", login=alice(), headers={"Depth": "1"},
                      body=PROPFIND_NAMES)  # fmt: skip
    assert listing.status == 207
    # WebDAV clients see every file, sidecars included: copying a folder must copy those too.
    assert local_drive.backups[0].sidecar_name in listing.text
    assert request(port, "HEAD", "/backups/", login=alice()).status == 200
    newest = local_drive.backups[-1]
    got = request(port, "GET", f"/backups/{newest.file_name}", login=alice(),
                  headers={"Accept": "text/html"})  # fmt: skip
    assert got.body == (local_drive.backups_folder / newest.file_name).read_bytes()


def test_no_html_answer_names_a_library(local_drive: Drive) -> None:
    webdav = local_drive.target.webdav_port
    for accept in ("text/html", "*/*", None):
        headers = {"Accept": accept} if accept else {}
        for path in ("/", "/backups/", "/backups"):
            answer = request(webdav, "GET", path, login=alice(), headers=headers)
            assert answer.status == 200, (path, accept)
            assert answer.headers["Content-Type"].startswith("text/html")
            assert "wsgidav" not in answer.text.lower(), (path, accept)
            assert local_drive.staging_name not in answer.text
            assert ".metadata.json" not in answer.text
    page = request(local_drive.target.ui_port or 0, "GET", "/", login=alice())
    for answer in (page, request(webdav, "GET", "/backups/", login=alice())):
        assert "Backup Drive" in answer.headers.get("Server", "Backup Drive")
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


def test_page_survives_a_vanished_backups_folder(local_drive: Drive, tmp_path: Path) -> None:
    folder = local_drive.backups_folder
    moved = local_drive.target.storage / "moved-away"
    folder.rename(moved)
    try:
        answer = request(local_drive.target.ui_port or 0, "GET", "/", login=alice())
        assert answer.status == 200
        assert "No backups here yet" in answer.text
    finally:
        moved.rename(folder)
