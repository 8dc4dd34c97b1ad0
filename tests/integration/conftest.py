"""Fixtures for the integration suite: the real backup-drive-server and Home Assistant."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

INTEGRATION_ROOT = Path(__file__).resolve().parents[2] / "integration"
# Home Assistant imports a package named custom_components from its own testing folder at the
# first hass fixture; importing ours first binds the name to our folder.
sys.path.insert(0, str(INTEGRATION_ROOT))
import custom_components.backup_drive  # noqa: E402
from tests.backup_target import BackupTarget  # noqa: E402
from tests.integration.entries import KeyAccount, make_account  # noqa: E402

assert custom_components.backup_drive.__file__
assert custom_components.backup_drive.__file__.startswith(str(INTEGRATION_ROOT))


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components.backup_drive."""


@pytest.fixture
def accounts() -> dict[str, KeyAccount]:
    """A writer with a key and a read-only account."""
    return {"writer": make_account("writer"), "reader": make_account("reader", read_only=True)}


@pytest.fixture
def backup_target(
    tmp_path: Path, socket_enabled: None, accounts: dict[str, KeyAccount]
) -> Iterator[BackupTarget]:
    """A running backup-drive-server with its own storage, accounts and ports."""
    target = BackupTarget(
        storage=tmp_path / "storage",
        data_dir=tmp_path / "data",
        options={"users": [account.option() for account in accounts.values()]},
    ).start()
    yield target
    target.stop()
