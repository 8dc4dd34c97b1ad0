"""The base of Backup Drive's entities: one device per entry, fed by its coordinator."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import BackupDriveCoordinator


class BackupDriveEntity(CoordinatorEntity[BackupDriveCoordinator]):
    """An entity of one drive's device, available while the drive answers."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: BackupDriveCoordinator, description: EntityDescription) -> None:
        """Name the entity by its key and attach it to the entry's device."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        self.entity_description = description
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="Backup Drive",
            model="SFTP backup folder",
            entry_type=DeviceEntryType.SERVICE,
        )

    @property
    def available(self) -> bool:
        """Return whether the drive answered the last poll."""
        return super().available and self.coordinator.data.connected
