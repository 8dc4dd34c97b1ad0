"""Options of a Backup Drive: when backups count as stale, how often they are verified."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigFlowResult, OptionsFlow
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
)

from .const import CONF_STALE_DAYS, CONF_VERIFY_DAYS, DEFAULT_VERIFY_DAYS
from .health_repairs import default_stale_days

STALE_DAYS_SELECTOR = NumberSelector(
    NumberSelectorConfig(min=1, max=365, step=1, mode=NumberSelectorMode.BOX)
)
VERIFY_DAYS_SELECTOR = NumberSelector(
    NumberSelectorConfig(min=0, max=365, step=1, mode=NumberSelectorMode.BOX)
)


class BackupDriveOptionsFlow(OptionsFlow):
    """Change the stale threshold and the verification schedule."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the two numbers; the stale threshold defaults to the backup schedule's."""
        if user_input is not None:
            return self.async_create_entry(
                data={key: int(value) for key, value in user_input.items()}
            )
        options = self.config_entry.options
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_STALE_DAYS,
                    default=options.get(CONF_STALE_DAYS) or default_stale_days(self.hass),
                ): STALE_DAYS_SELECTOR,
                vol.Required(
                    CONF_VERIFY_DAYS, default=options.get(CONF_VERIFY_DAYS, DEFAULT_VERIFY_DAYS)
                ): VERIFY_DAYS_SELECTOR,
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema)
