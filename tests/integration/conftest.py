"""Fixtures for the integration suite: the real backup-drive-server and Home Assistant."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from homeassistant.components.backup.const import DOMAIN as BACKUP_DOMAIN
from homeassistant.config_entries import SOURCE_HASSIO, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

# In Home Assistant 2025.4 bootstrap prepares the backup integration's data before any integration
# is set up, so a test must do the same (else setup fails with KeyError 'backup_data'). 2026.2 has
# no such helper: backup prepares itself when it is set up.
initialize_backup: Callable[[HomeAssistant], None] | None
try:
    from homeassistant.helpers.backup import async_initialize_backup as initialize_backup
except ImportError:
    initialize_backup = None

INTEGRATION_ROOT = Path(__file__).resolve().parents[2] / "integration"
# Home Assistant imports a package named custom_components from its own testing folder at the
# first hass fixture; importing ours first binds the name to our folder.
sys.path.insert(0, str(INTEGRATION_ROOT))
import custom_components.backup_drive  # noqa: E402
from tests.backup_target import BackupTarget  # noqa: E402
from tests.integration.entries import (  # noqa: E402
    KeyAccount,
    entry_data,
    make_account,
    set_up_entry,
    stop_target,
)
from tests.peers import require_root, require_tool  # noqa: E402

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
async def backup_target(
    hass: HomeAssistant, tmp_path: Path, socket_enabled: None, accounts: dict[str, KeyAccount]
) -> AsyncIterator[BackupTarget]:
    """A running backup-drive-server with its own storage, accounts and ports."""
    target = BackupTarget(
        storage=tmp_path / "storage",
        data_dir=tmp_path / "data",
        options={"users": [account.option() for account in accounts.values()]},
    )
    await hass.async_add_executor_job(target.start)
    yield target
    await stop_target(hass, target)


@pytest.fixture
async def backup_entry(backup_target: BackupTarget, hass: HomeAssistant) -> MockConfigEntry:
    """Home Assistant's backup integration with a loaded Backup Drive entry for the target."""
    if initialize_backup is not None:
        initialize_backup(hass)
    assert await async_setup_component(hass, BACKUP_DOMAIN, {BACKUP_DOMAIN: {}})
    return await set_up_entry(
        hass,
        entry_data(backup_target),
        expect=ConfigEntryState.LOADED,
        source=SOURCE_HASSIO,
        title="Backup Drive",
    )


MIB = 1024 * 1024


@pytest.fixture
def small_drive(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB ext4 filesystem on a loop device, playing a nearly full USB drive."""
    require_root("a loop-mounted filesystem plays a small USB drive")
    mkfs = require_tool("mkfs.ext4", "e2fsprogs")
    mount = require_tool("mount", "mount")
    umount = require_tool("umount", "mount")
    image = tmp_path / "drive.img"
    mountpoint = tmp_path / "drive"
    mountpoint.mkdir()
    with image.open("wb") as file:
        file.truncate(32 * MIB)
    subprocess.run([mkfs, "-q", "-F", str(image)], check=True)
    subprocess.run([mount, "-o", "loop", str(image), str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run([umount, str(mountpoint)], check=True)
