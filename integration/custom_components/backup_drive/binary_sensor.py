"""Binary sensors of a Backup Drive: whether it answers, whether any repair is open for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import BackupDriveConfigEntry
from .coordinator import DriveHealth
from .entity import BackupDriveEntity

# Entities only read the coordinator's data; they never call the drive.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class BackupDriveBinarySensorDescription(BinarySensorEntityDescription):
    """A yes/no about the drive."""

    is_on: Callable[[DriveHealth], bool]


BINARY_SENSORS: tuple[BackupDriveBinarySensorDescription, ...] = (
    BackupDriveBinarySensorDescription(
        key="connected",
        translation_key="connected",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        is_on=lambda health: health.connected,
    ),
    BackupDriveBinarySensorDescription(
        key="backup_problem",
        translation_key="backup_problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on=lambda health: bool(health.problems),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BackupDriveConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the drive's binary sensors."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        BackupDriveBinarySensor(coordinator, description) for description in BINARY_SENSORS
    )


class BackupDriveBinarySensor(BackupDriveEntity, BinarySensorEntity):
    """One yes/no about the drive; known also while the drive is away."""

    entity_description: BackupDriveBinarySensorDescription

    @property
    def available(self) -> bool:
        """Return whether the last poll ran; an absent drive is an answer, not an unknown."""
        return self.coordinator.last_update_success

    @property
    def is_on(self) -> bool:
        """Return the answer."""
        return self.entity_description.is_on(self.coordinator.data)
