"""Sensors of a Backup Drive: space, what is stored, when it was last written and verified."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfInformation
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import BackupDriveConfigEntry
from .coordinator import DriveHealth
from .entity import BackupDriveEntity

# Entities only read the coordinator's data; they never call the drive.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class BackupDriveSensorDescription(SensorEntityDescription):
    """A sensor and the part of the drive's health it shows."""

    value: Callable[[DriveHealth], int | datetime | None]
    # Timestamps come from the history on the drive and stay known while it is away.
    needs_drive: bool = True


def _size(key: str, value: Callable[[DriveHealth], int | None]) -> BackupDriveSensorDescription:
    """Describe a byte count shown in GB."""
    return BackupDriveSensorDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.DATA_SIZE,
        native_unit_of_measurement=UnitOfInformation.BYTES,
        suggested_unit_of_measurement=UnitOfInformation.GIGABYTES,
        suggested_display_precision=1,
        state_class=SensorStateClass.MEASUREMENT,
        value=value,
    )


SENSORS: tuple[BackupDriveSensorDescription, ...] = (
    _size("free_space", lambda health: health.free_bytes),
    _size("total_space", lambda health: health.total_bytes),
    BackupDriveSensorDescription(
        key="backups_stored",
        translation_key="backups_stored",
        state_class=SensorStateClass.MEASUREMENT,
        value=lambda health: health.backups_stored,
    ),
    _size("backups_size", lambda health: health.backups_size),
    BackupDriveSensorDescription(
        key="last_upload",
        translation_key="last_upload",
        device_class=SensorDeviceClass.TIMESTAMP,
        value=lambda health: health.last_upload,
        needs_drive=False,
    ),
    BackupDriveSensorDescription(
        key="last_verified",
        translation_key="last_verified",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value=lambda health: health.last_verified,
        needs_drive=False,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BackupDriveConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the drive's sensors."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(BackupDriveSensor(coordinator, description) for description in SENSORS)


class BackupDriveSensor(BackupDriveEntity, SensorEntity):
    """One figure about the drive."""

    entity_description: BackupDriveSensorDescription

    @property
    def available(self) -> bool:
        """Return whether the figure is known: space needs statvfs on the server."""
        if not self.entity_description.needs_drive:
            return self.coordinator.last_update_success
        value = self.entity_description.value(self.coordinator.data)
        return super().available and value is not None

    @property
    def native_value(self) -> int | datetime | None:
        """Return the figure."""
        return self.entity_description.value(self.coordinator.data)
