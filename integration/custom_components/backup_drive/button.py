"""The button that verifies every backup on a Backup Drive now."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import BackupDriveConfigEntry
from .entity import BackupDriveEntity

# Pressing only starts a background task.
PARALLEL_UPDATES = 0

VERIFY_BACKUPS = ButtonEntityDescription(
    key="verify_backups",
    translation_key="verify_backups",
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BackupDriveConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the verify button."""
    async_add_entities([VerifyBackupsButton(entry.runtime_data.coordinator, VERIFY_BACKUPS)])


class VerifyBackupsButton(BackupDriveEntity, ButtonEntity):
    """Verify every backup on the drive now (in the background; one run at a time)."""

    async def async_press(self) -> None:
        """Start a verification unless one is running."""
        self.coordinator.start_verification()
