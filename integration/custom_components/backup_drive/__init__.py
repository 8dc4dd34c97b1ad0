"""The Backup Drive integration: keep Home Assistant's backups on a Backup Drive over SFTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_USERNAME,
    EVENT_HOMEASSISTANT_STOP,
    Platform,
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir

from .client import BackupDriveClient
from .const import (
    CONF_HOST_KEY,
    CONF_PATH,
    CONF_PRIVATE_KEY,
    DATA_BACKUP_AGENT_LISTENERS,
    DOMAIN,
    LOGGER,
)
from .coordinator import BackupDriveCoordinator
from .errors import BackupDriveError, CannotConnect
from .failures import async_clear_host_key_issue, async_handle_setup_failure, host_key_issue_id
from .health_repairs import async_clear_health_issues
from .keep_awake import DriveKeeper
from .session import ServerSettings

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.BUTTON, Platform.SENSOR]


@dataclass(kw_only=True)
class BackupDriveData:
    """What a loaded entry holds at runtime."""

    client: BackupDriveClient
    coordinator: BackupDriveCoordinator
    keep_awake: DriveKeeper | None = field(default=None, repr=False)


type BackupDriveConfigEntry = ConfigEntry[BackupDriveData]


def settings_from_data(data: MappingProxyType[str, Any] | dict[str, Any]) -> ServerSettings:
    """Build client settings from config entry (or flow) data."""
    return ServerSettings(
        host=data[CONF_HOST],
        port=int(data[CONF_PORT]),
        username=data[CONF_USERNAME],
        password=data.get(CONF_PASSWORD) or None,
        private_key=data.get(CONF_PRIVATE_KEY) or None,
        host_key=data[CONF_HOST_KEY],
        path=data[CONF_PATH],
    )


async def async_setup_entry(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> bool:
    """Connect to the drive and check the backup folder; start watching its health."""
    client = BackupDriveClient(settings_from_data(entry.data))
    try:
        await client.check_folder()
    except CannotConnect as err:
        if not was_set_up_before(hass, entry):
            await client.close()
            raise async_handle_setup_failure(hass, entry, err) from err
        # Retrying setup would drop the location from the backup settings, as if its
        # configuration were lost; loaded, it reports the drive as away instead.
        LOGGER.warning("Setting up %s while it is away: %s", entry.title, err)
    except BackupDriveError as err:
        await client.close()
        raise async_handle_setup_failure(hass, entry, err) from err
    else:
        async_clear_host_key_issue(hass, entry)
    coordinator = BackupDriveCoordinator(hass, entry, client)
    entry.runtime_data = BackupDriveData(client=client, coordinator=coordinator)
    await coordinator.async_config_entry_first_refresh()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)

    @callback
    def notify_backup_listeners() -> None:
        for listener in hass.data.get(DATA_BACKUP_AGENT_LISTENERS, []):
            listener()

    async def notify_on_update(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> None:
        # A renamed entry is a renamed backup location; new options (thresholds) take effect at
        # once, not at the next poll.
        notify_backup_listeners()
        await coordinator.async_request_refresh()

    entry.async_on_unload(entry.async_on_state_change(notify_backup_listeners))
    entry.async_on_unload(entry.add_update_listener(notify_on_update))

    async def close_on_stop(event: Event) -> None:
        await client.close()

    # Home Assistant does not unload entries when it stops; the SSH session must still end.
    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, close_on_stop))
    return True


def was_set_up_before(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> bool:
    """Return whether the entry has been loaded before: its device exists."""
    devices = dr.async_get(hass)
    return devices.async_get_device(identifiers={(DOMAIN, entry.entry_id)}) is not None


async def async_unload_entry(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> bool:
    """Close the connection to the drive."""
    if not await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        return False
    data = entry.runtime_data
    if data.keep_awake is not None:
        data.keep_awake.stop()
    await data.client.close()
    return True


async def async_remove_entry(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> None:
    """Remove the entry's repair issues."""
    ir.async_delete_issue(hass, DOMAIN, host_key_issue_id(entry))
    async_clear_health_issues(hass, entry)
