"""Fixtures for the page's tests: a server with backups on its drive, and headless Chromium."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.backup_target import BackupTarget, free_port
from tests.peers import require_tool
from tests.web_page.drive_content import WrittenBackup, write_backups, write_health

SCREENSHOTS_VARIABLE = "BACKUP_DRIVE_SCREENSHOTS"
# Debian's chromium, headless, talking to nothing but the server under test.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BACKUP_COUNT = 12
# What the sidecars claim: a spread of realistic sizes, shown as MB and GB.
CLAIMED_SIZES = [312_000_000 + 997_000_000 * i for i in range(BACKUP_COUNT)]
READY_LINE = "Backup Drive is ready"
MAPPED_WEBDAV_PORT = 18443

_screenshot_folder: list[Path] = []


@dataclass(frozen=True)
class PageAccount:
    """A login for the page and WebDAV."""

    username: str
    password: str
    read_only: bool


ALICE = PageAccount("alice", "alice-pw 1!", False)
BOB = PageAccount("bob", "bob-pw-2", True)


@dataclass
class Drive:
    """A running server and what was put on its drive."""

    target: BackupTarget
    backups: list[WrittenBackup]
    staging_name: str

    @property
    def backups_folder(self) -> Path:
        """The folder Home Assistant's backups live in."""
        return self.target.storage / "backups"

    def page_url(self, path: str = "/") -> str:
        """Address of the page port."""
        return f"http://127.0.0.1:{self.target.ui_port}{path}"

    def webdav_url(self, path: str = "/") -> str:
        """Address of the WebDAV port."""
        return f"http://127.0.0.1:{self.target.webdav_port}{path}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say once where the screenshots are, so a reviewer can look."""
    if _screenshot_folder:
        terminalreporter.write_line(f"Screenshots of the add-on's page: {_screenshot_folder[0]}")


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The folder the screenshots go to ($BACKUP_DRIVE_SCREENSHOTS or a temporary folder)."""
    folder = Path(
        os.environ.get(SCREENSHOTS_VARIABLE)
        or Path(tempfile.gettempdir()) / "backup-drive-screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    _screenshot_folder.append(folder)
    print(f"\nScreenshots of the add-on's page go to {folder}")
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; launch() gives it a fresh temporary profile."""
    chromium = require_tool("chromium", "chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def start_drive(root: Path, *extra_args: str, started: list[BackupTarget]) -> Drive:
    """Start a server with the page on, backups and clutter on its drive."""
    storage = root / "storage"
    backups = write_backups(storage / "backups", BACKUP_COUNT, sizes=CLAIMED_SIZES)
    newest = backups[-1]
    write_health(
        storage / "backups",
        {
            "version": 1,
            "last_upload": newest.date.isoformat(),
            "last_verified": newest.date.isoformat(),
            "problems": ["stale_backups"],
            "backups": {
                newest.backup_id: {"verified_at": newest.date.isoformat(), "result": "ok"},
                backups[0].backup_id: {
                    "verified_at": newest.date.isoformat(),
                    "result": "mismatch",
                },
            },
        },
    )
    (storage / "backups" / "notes.txt").write_text("not a backup\n")
    (storage / "backups" / "older").mkdir()
    target = BackupTarget(
        storage=storage,
        data_dir=root / "data",
        options={
            "users": [
                {"username": a.username, "password": a.password, "read_only": a.read_only}
                for a in (ALICE, BOB)
            ]
        },
        ui_port=free_port(),
        extra_args=list(extra_args),
    )
    started.append(target)
    target.start()
    # An upload in progress: the server removes leftovers at start, so it appears afterwards.
    staging_name = f".{backups[0].file_name}.partial-0123abcd"
    (storage / "backups" / staging_name).write_bytes(b"half an upload")
    return Drive(target=target, backups=backups, staging_name=staging_name)


@pytest.fixture(scope="module")
def start_drive_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Drive]]:
    """Start servers for a module; stop them all afterwards, expecting exit 0."""
    started: list[BackupTarget] = []

    def start(*extra_args: str) -> Drive:
        return start_drive(tmp_path_factory.mktemp("drive"), *extra_args, started=started)

    yield start
    for target in started:
        code = target.stop()
        assert code == 0, f"server exited with {code}:\n{target.log}"


@pytest.fixture(scope="module")
def local_drive(start_drive_factory: Callable[..., Drive]) -> Drive:
    """The page as ./scripts/serve.sh runs it: an account is needed."""
    return start_drive_factory()


@pytest.fixture(scope="module")
def ingress_drive(start_drive_factory: Callable[..., Drive]) -> Drive:
    """The page as under ingress, with loopback standing in for Supervisor's proxy."""
    return start_drive_factory(
        "--ui-allow-from", "127.0.0.1", "--public-host", "homeassistant.local",
        # As Supervisor reports them: WebDAV mapped to another host port, SFTP closed.
        "--public-webdav-port", str(MAPPED_WEBDAV_PORT), "--public-sftp-port", "null",
    )  # fmt: skip
