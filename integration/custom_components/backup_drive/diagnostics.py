"""Diagnostics for Backup Drive: settings (secrets redacted) and what the drive reports."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant

from . import BackupDriveConfigEntry
from .const import CONF_HOST_KEY, CONF_PRIVATE_KEY
from .errors import BackupDriveError
from .session import fingerprint

TO_REDACT = {CONF_PASSWORD, CONF_PRIVATE_KEY, CONF_USERNAME}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: BackupDriveConfigEntry
) -> dict[str, Any]:
    """Return the entry's settings and the drive's state, without secrets."""
    client = entry.runtime_data.client
    drive: dict[str, Any] = {}
    try:
        backups = await client.list_backups()
        drive["backups"] = len(backups)
        drive["backups_with_checksum"] = sum(1 for b in backups.values() if b.sha256)
        if usage := await client.disk_usage():
            drive["free_bytes"], drive["total_bytes"] = usage
    except BackupDriveError as err:
        drive["error"] = str(err)
    return {
        "entry": {
            "title": entry.title,
            "source": entry.source,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
        },
        "host_key_fingerprint": fingerprint(entry.data[CONF_HOST_KEY]),
        "connection": {
            "connected": client.connected,
            "server_version": client.server_version,
            "path": client.path,
        },
        "drive": drive,
    }
