"""Repair flows: accept a Backup Drive's new host key; decide about a damaged backup."""

from __future__ import annotations

import voluptuous as vol
from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import CONF_HOST_KEY
from .corrupted_backup_flow import CorruptedBackupFlow
from .errors import CannotConnect
from .session import fetch_host_key


class AcceptHostKeyFlow(RepairsFlow):
    """Show the new fingerprint; on confirmation store the new key and reload."""

    def __init__(self, entry_id: str, offered_key: str) -> None:
        """Remember which entry and which key."""
        self._entry_id = entry_id
        self._offered_key = offered_key

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Go to the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Accept the key the server presented when the mismatch was found."""
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
            return self.async_abort(reason="entry_removed")
        if user_input is not None:
            # The key must still be the one the user saw; anything else is a new surprise.
            try:
                current = await fetch_host_key(entry.data["host"], entry.data["port"])
            except CannotConnect:
                return self.async_abort(reason="cannot_connect")
            if current != self._offered_key:
                return self.async_abort(reason="host_key_changed_again")
            self.hass.config_entries.async_update_entry(
                entry, data={**entry.data, CONF_HOST_KEY: current}
            )
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
            return self.async_create_entry(data={})
        issue = ir.async_get(self.hass).async_get_issue(self.handler, self.issue_id)
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema({}),
            description_placeholders=issue.translation_placeholders if issue else None,
        )


async def async_create_fix_flow(
    hass: HomeAssistant,
    issue_id: str,
    data: dict[str, str | int | float | None] | None,
) -> RepairsFlow:
    """Create the flow for a host key issue or a damaged backup."""
    data = data or {}
    if "backup_id" in data:
        return CorruptedBackupFlow(str(data.get("entry_id")), str(data.get("backup_id")))
    return AcceptHostKeyFlow(str(data.get("entry_id")), str(data.get("host_key")))
