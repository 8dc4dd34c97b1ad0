"""The Backup Drive integration: keep Home Assistant's backups on a Backup Drive over SFTP."""

from __future__ import annotations

import asyncio
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
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import issue_registry as ir

from .client import BackupDriveClient
from .const import (
    CONF_HOST_KEY,
    CONF_PATH,
    CONF_PRIVATE_KEY,
    DATA_BACKUP_AGENT_LISTENERS,
    DOMAIN,
    ISSUE_HOST_KEY_MISMATCH,
    LOGGER,
)
from .errors import AccessDenied, BackupDriveError, FolderMissing, HostKeyMismatch, InvalidAuth
from .session import ServerSettings


@dataclass(kw_only=True)
class BackupDriveData:
    """What a loaded entry holds at runtime."""

    client: BackupDriveClient
    keep_awake: asyncio.Task[None] | None = field(default=None, repr=False)


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


def host_key_issue_id(entry: ConfigEntry) -> str:
    """Return the id of the repair issue about an entry's changed host key."""
    return f"{ISSUE_HOST_KEY_MISMATCH}_{entry.entry_id}"


async def async_setup_entry(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> bool:
    """Connect to the drive and check the backup folder."""
    client = BackupDriveClient(settings_from_data(entry.data))
    placeholders = {"title": entry.title, "host": entry.data[CONF_HOST]}
    try:
        await client.check_folder()
    except InvalidAuth as err:
        await client.close()
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="invalid_auth",
            translation_placeholders=placeholders,
        ) from err
    except HostKeyMismatch as err:
        await client.close()
        async_raise_host_key_issue(hass, entry, err)
        # Not a permanent error: an add-on update or restored key brings the entry back by itself.
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="host_key_changed",
            translation_placeholders={**placeholders, "offered": err.offered_fingerprint or "?"},
        ) from err
    except (FolderMissing, AccessDenied) as err:
        await client.close()
        # A drive that is not mounted yet looks the same: retry rather than give up.
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="folder_unusable",
            translation_placeholders={**placeholders, "error": str(err)},
        ) from err
    except BackupDriveError as err:
        await client.close()
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={**placeholders, "error": str(err)},
        ) from err
    ir.async_delete_issue(hass, DOMAIN, host_key_issue_id(entry))
    entry.runtime_data = BackupDriveData(client=client)

    @callback
    def notify_backup_listeners() -> None:
        for listener in hass.data.get(DATA_BACKUP_AGENT_LISTENERS, []):
            listener()

    entry.async_on_unload(entry.async_on_state_change(notify_backup_listeners))

    async def close_on_stop(event: Event) -> None:
        await client.close()

    # Home Assistant does not unload entries when it stops; the SSH session must still end.
    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, close_on_stop))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> bool:
    """Close the connection to the drive."""
    data = entry.runtime_data
    if data.keep_awake is not None:
        data.keep_awake.cancel()
    await data.client.close()
    return True


async def async_remove_entry(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> None:
    """Remove the entry's repair issue."""
    ir.async_delete_issue(hass, DOMAIN, host_key_issue_id(entry))


@callback
def async_raise_host_key_issue(
    hass: HomeAssistant, entry: ConfigEntry, err: HostKeyMismatch
) -> None:
    """Tell the user the server's host key changed and how to accept the new one."""
    LOGGER.error("Refusing to connect to %s: %s", entry.title, err)
    ir.async_create_issue(
        hass,
        DOMAIN,
        host_key_issue_id(entry),
        is_fixable=err.offered_key is not None,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_HOST_KEY_MISMATCH,
        translation_placeholders={
            "title": entry.title,
            "host": f"{entry.data[CONF_HOST]}:{entry.data[CONF_PORT]}",
            "expected": err.expected_fingerprint,
            "offered": err.offered_fingerprint or "unknown",
        },
        data={"entry_id": entry.entry_id, "host_key": err.offered_key or ""},
    )
