"""Diagnostics for Backup Drive: settings (secrets redacted) and what the drive reports."""

from __future__ import annotations

from datetime import datetime
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
        "health": health_diagnostics(entry),
    }


def health_diagnostics(entry: BackupDriveConfigEntry) -> dict[str, Any]:
    """Return the last poll's view and the history on the drive (no secrets in either)."""
    coordinator = entry.runtime_data.coordinator
    health = coordinator.data
    record = coordinator.record
    return {
        "connected": health.connected,
        "unreachable_since": _iso(coordinator.unreachable_since),
        "last_upload": _iso(health.last_upload),
        "last_verified": _iso(health.last_verified),
        "problems": sorted(health.problems),
        "verification_running": coordinator.verification is not None
        and not coordinator.verification.done(),
        "backups": {key: value.as_dict() for key, value in record.backups.items()}
        if record
        else {},
    }


def _iso(moment: datetime | None) -> str | None:
    """Return a timestamp in ISO 8601, or None."""
    return moment.isoformat() if moment is not None else None
