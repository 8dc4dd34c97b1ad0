"""A real Home Assistant core, a config entry and a client, for benchmarks of the integration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.backup_drive import BackupDriveConfigEntry, BackupDriveData
from custom_components.backup_drive.client import BackupDriveClient
from custom_components.backup_drive.const import DOMAIN
from custom_components.backup_drive.coordinator import BackupDriveCoordinator
from custom_components.backup_drive.session import ServerSettings
from tests.backup_target import HOMEASSISTANT_USER, BackupTarget


def bench_client(target: BackupTarget) -> BackupDriveClient:
    """Return a client for the target's backups folder, logged in as Home Assistant is."""
    return BackupDriveClient(
        ServerSettings(
            host="127.0.0.1",
            port=target.sftp_port,
            username=HOMEASSISTANT_USER,
            password=target.password,
            host_key=target.host_key,
            path="/backups",
        )
    )


@asynccontextmanager
async def drive_entry(
    client: BackupDriveClient,
) -> AsyncIterator[tuple[HomeAssistant, BackupDriveConfigEntry]]:
    """Yield Home Assistant and an entry whose runtime data holds `client` and its coordinator."""
    async with async_test_home_assistant() as hass:
        mock_entry = MockConfigEntry(domain=DOMAIN, title="Backup Drive")
        mock_entry.add_to_hass(hass)
        entry = cast(BackupDriveConfigEntry, mock_entry)
        entry.runtime_data = BackupDriveData(
            client=client, coordinator=BackupDriveCoordinator(hass, entry, client)
        )
        try:
            yield hass, entry
        finally:
            await hass.async_stop(force=True)
