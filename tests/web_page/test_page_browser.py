"""The add-on's page in a real browser (Debian's Chromium): phone and desktop widths."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.web_page.conftest import ALICE, BACKUP_COUNT, BOB, MAPPED_WEBDAV_PORT, Drive
from tests.web_page.drive_content import HEALTH_FILE

TIME_ZONE = "America/Los_Angeles"
INGRESS_PATH = "/api/hassio_ingress/6bA0-token_x"
WIDTHS = [1280, 360]
# Nothing on the page may name the libraries behind it.
LIBRARY_NAMES = ["wsgidav", "cheroot", "jinja", "asyncssh", "python"]


def open_context(
    browser: Browser, width: int, *, login: bool = True, **options: object
) -> BrowserContext:
    """A fresh browser window in Los Angeles time (dates must not stay in UTC)."""
    return browser.new_context(
        viewport={"width": width, "height": 900},
        locale="en-US",
        timezone_id=TIME_ZONE,
        http_credentials={"username": ALICE.username, "password": ALICE.password}
        if login
        else None,
        **options,  # type: ignore[arg-type]
    )


def local_text(moment_iso: str) -> str:
    """How Chromium's en-US medium date and short time reads in TIME_ZONE."""
    local = datetime.fromisoformat(moment_iso).astimezone(ZoneInfo(TIME_ZONE))
    hour = local.hour % 12 or 12
    return f"{local:%b} {local.day}, {local.year}, {hour}:{local:%M} {local:%p}"


def normalized(text: str) -> str:
    """Fold the narrow and non-breaking spaces ICU puts into dates."""
    return " ".join(text.replace("\u202f", " ").replace("\xa0", " ").split())


def check_backup_view(page: Page, drive: Drive, width: int, screenshot: Path) -> None:
    """Check what both views share: names, sizes, local dates, hidden files, width."""
    html = page.content()
    text = page.inner_text("body")
    rows = page.locator("tr.backup")
    assert rows.count() == BACKUP_COUNT
    # Newest first, each named from its sidecar.
    for row_index, backup in enumerate(reversed(drive.backups)):
        row = rows.nth(row_index)
        assert backup.name in row.inner_text()
        assert backup.file_name in row.inner_text()
        date = row.locator("time").first
        assert normalized(date.inner_text()) == local_text(date.get_attribute("datetime") or "")
        assert "UTC" not in date.inner_text()
    assert "312.0 MB" in text and "11.3 GB" in text, text
    assert str(drive.backups[0].size) not in text
    assert "Yes, encrypted" in text and "Mosquitto broker" in text and "2026.11.3" in text
    assert "notes.txt" in text
    for hidden in [drive.staging_name, HEALTH_FILE, ".metadata.json", ".partial-"]:
        assert hidden not in html
    for backup in drive.backups:
        assert backup.sidecar_name not in html
    for name in LIBRARY_NAMES:
        assert name not in html.lower()
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"horizontal scroll at {width} px: {scroll_width}"
    page.screenshot(path=screenshot, full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_page_shows_the_drive_and_its_backups(
    browser: Browser, local_drive: Drive, screenshots: Path, width: int
) -> None:
    with open_context(browser, width) as context:
        page = context.new_page()
        response = page.goto(local_drive.page_url())
        assert response is not None and response.status == 200
        assert page.title() == "Backup Drive"
        assert page.get_by_role("heading", level=1).inner_text() == "Backup Drive"
        for heading in ["Drive", "Backups", "Connect from your computer", "Server"]:
            assert page.get_by_role("heading", level=2, name=heading).count() == 1, heading
        check_backup_view(page, local_drive, width, screenshots / f"page-{width}.png")
        text = page.inner_text("body")
        assert "No recent backup" in text  # the health file's problem
        assert "Damaged" in text and "Verified" in text
        assert "free of" in text
        assert "bob" in text and "Read-only" in text
        assert ALICE.password not in page.content() and BOB.password not in page.content()
        assert local_drive.target.password not in page.content()
        assert "SHA256:" in text
        assert page.locator("button[data-copy]:visible").count() >= 6
        port = local_drive.target.webdav_port
        assert f"\\\\127.0.0.1@{port}\\DavWWWRoot" in text
        assert f"http://127.0.0.1:{port}/" in text


def test_page_in_dark_mode_at_phone_width(
    browser: Browser, local_drive: Drive, screenshots: Path
) -> None:
    with open_context(browser, 360, color_scheme="dark") as context:
        page = context.new_page()
        page.goto(local_drive.page_url())
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 17, 17)"
        page.screenshot(path=screenshots / "page-360-dark.png", full_page=True)


def test_download_from_the_page_returns_identical_bytes(
    browser: Browser, local_drive: Drive
) -> None:
    newest = local_drive.backups[-1]
    with open_context(browser, 1280, accept_downloads=True) as context:
        page = context.new_page()
        page.goto(local_drive.page_url())
        with page.expect_download() as download:
            page.locator("tr.backup").first.get_by_role("link", name="Download").click()
        assert download.value.suggested_filename == newest.file_name
        saved = Path(download.value.path())
        assert saved.read_bytes() == (local_drive.backups_folder / newest.file_name).read_bytes()


def test_copy_button_copies_the_address(browser: Browser, local_drive: Drive) -> None:
    with open_context(browser, 1280, permissions=["clipboard-read", "clipboard-write"]) as context:
        page = context.new_page()
        page.goto(local_drive.page_url())
        button = page.locator("button[data-copy]").first
        button.click()
        assert page.evaluate("navigator.clipboard.readText()") == button.get_attribute("data-copy")
        assert page.locator("#copy-status").inner_text().startswith("Copied")


@pytest.mark.parametrize("width", WIDTHS)
def test_webdav_port_shows_browsers_the_same_backup_view(
    browser: Browser, local_drive: Drive, screenshots: Path, width: int
) -> None:
    with open_context(browser, width, accept_downloads=True) as context:
        page = context.new_page()
        response = page.goto(local_drive.webdav_url("/backups/"))
        assert response is not None and response.status == 200
        check_backup_view(page, local_drive, width, screenshots / f"webdav-backups-{width}.png")
        oldest = local_drive.backups[0]
        with page.expect_download() as download:
            page.locator("tr.backup").last.get_by_role("link", name="Download").click()
        saved = Path(download.value.path())
        assert saved.read_bytes() == (local_drive.backups_folder / oldest.file_name).read_bytes()
        page.get_by_role("link", name="Drive").click()
        page.wait_for_url(local_drive.webdav_url("/"))
        assert page.get_by_role("link", name="backups/").count() == 1
        page.screenshot(path=screenshots / f"webdav-root-{width}.png", full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_ingress_keeps_its_path_in_every_link(
    browser: Browser, ingress_drive: Drive, screenshots: Path, width: int
) -> None:
    with open_context(
        browser, width, login=False, extra_http_headers={"X-Ingress-Path": INGRESS_PATH}
    ) as context:
        page = context.new_page()
        response = page.goto(ingress_drive.page_url())
        assert response is not None and response.status == 200
        links = page.eval_on_selector_all(
            "a[href]", "links => links.map(l => l.getAttribute('href'))"
        )
        assert len(links) > BACKUP_COUNT
        assert all(link.startswith(f"{INGRESS_PATH}/") for link in links), links
        text = page.inner_text("body")
        assert f"\\\\homeassistant.local@{MAPPED_WEBDAV_PORT}\\DavWWWRoot" in text
        assert f"http://homeassistant.local:{MAPPED_WEBDAV_PORT}/" in text
        assert "The SFTP port is closed to your network" in text
        assert "sftp://" not in text
        assert "through Home Assistant only" in text
        page.screenshot(path=screenshots / f"ingress-{width}.png", full_page=True)
