"""Repair flow for a backup whose bytes failed verification: delete it, or keep it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow
from homeassistant.config_entries import ConfigEntryState
from homeassistant.helpers import issue_registry as ir

from .errors import BackupDriveError, BackupFileMissing

if TYPE_CHECKING:
    from . import BackupDriveConfigEntry


class CorruptedBackupFlow(RepairsFlow):
    """Offer to delete the damaged backup, or to keep it and stop warning about it."""

    def __init__(self, entry_id: str, backup_id: str) -> None:
        """Remember which entry and which backup."""
        self._entry_id = entry_id
        self._backup_id = backup_id

    def _placeholders(self) -> dict[str, str] | None:
        """Return the issue's placeholders (the backup's name and date)."""
        issue = ir.async_get(self.hass).async_get_issue(self.handler, self.issue_id)
        return dict(issue.translation_placeholders or {}) if issue else None

    def _entry(self) -> BackupDriveConfigEntry | None:
        """Return the entry while it is loaded."""
        entry: BackupDriveConfigEntry | None = self.hass.config_entries.async_get_entry(
            self._entry_id
        )
        return entry if entry is not None and entry.state is ConfigEntryState.LOADED else None

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Ask what to do with the backup."""
        return self.async_show_menu(
            menu_options=["delete", "keep"], description_placeholders=self._placeholders()
        )

    async def async_step_delete(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Delete the backup and its metadata file from the drive."""
        if (entry := self._entry()) is None:
            return self.async_abort(reason="entry_removed")
        data = entry.runtime_data
        try:
            await data.client.delete(await data.client.find_backup(self._backup_id))
        except BackupFileMissing:
            pass  # already gone: what the user asked for
        except BackupDriveError:
            return self.async_abort(reason="cannot_connect")
        await data.coordinator.async_refresh()
        return self.async_create_entry(data={})

    async def async_step_keep(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Keep the backup as it is and close the repair until it changes."""
        if (entry := self._entry()) is None:
            return self.async_abort(reason="entry_removed")
        coordinator = entry.runtime_data.coordinator
        if coordinator.record and (result := coordinator.record.backups.get(self._backup_id)):
            result.kept = True
            await coordinator.async_save_record()
        await coordinator.async_refresh()
        return self.async_create_entry(data={})
