"""Config flow for Backup Drive: Supervisor discovery, any SFTP server, reauth, reconfigure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    SOURCE_IGNORE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

from . import settings_from_data
from .client import BackupDriveClient
from .const import (
    CONF_ADDON_SLUG,
    CONF_HOST_KEY,
    CONF_PATH,
    CONF_PRIVATE_KEY,
    DEFAULT_PATH,
    DEFAULT_PORT,
    DISCOVERY_KEYS,
    DOMAIN,
    LOGGER,
)
from .errors import (
    BackupDriveError,
    CannotConnect,
    InvalidPrivateKey,
    meaning_of,
)
from .options_flow import BackupDriveOptionsFlow
from .session import fetch_host_key, fingerprint, normalize_path, parse_private_key

PASSWORD_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
KEY_SELECTOR = TextSelector(TextSelectorConfig(multiline=True))
PORT_VALIDATOR = vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))

USER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_PORT): PORT_VALIDATOR,
        vol.Required(CONF_USERNAME): str,
        vol.Optional(CONF_PASSWORD): PASSWORD_SELECTOR,
        vol.Optional(CONF_PRIVATE_KEY): KEY_SELECTOR,
        vol.Required(CONF_PATH, default=DEFAULT_PATH): str,
    }
)
REAUTH_SCHEMA = vol.Schema(
    {
        vol.Optional(CONF_PASSWORD): PASSWORD_SELECTOR,
        vol.Optional(CONF_PRIVATE_KEY): KEY_SELECTOR,
    }
)
RECONFIGURE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT): PORT_VALIDATOR,
        vol.Required(CONF_PATH): str,
    }
)


async def async_check_drive(data: Mapping[str, Any]) -> str | None:
    """Connect with the pinned host key and check the folder; return an error key or None."""
    client = BackupDriveClient(settings_from_data(dict(data)))
    try:
        await client.check_folder()
    except BackupDriveError as err:
        if (key := meaning_of(err).flow_error) is not None:
            return key
        LOGGER.warning("Checking %s failed: %s", data[CONF_HOST], err)
        return "unknown"
    finally:
        await client.close()
    return None


def credentials_error(data: Mapping[str, Any]) -> str | None:
    """Return an error key unless a password or a readable private key is given."""
    if not data.get(CONF_PASSWORD) and not data.get(CONF_PRIVATE_KEY):
        return "missing_credentials"
    if data.get(CONF_PRIVATE_KEY):
        try:
            parse_private_key(data[CONF_PRIVATE_KEY])
        except InvalidPrivateKey:
            return "invalid_private_key"
    return None


def location_title(path: str, place: str, port: int = DEFAULT_PORT) -> str:
    """Return a title that tells locations apart: the folder and where it is."""
    where = place if port == DEFAULT_PORT else f"{place}:{port}"
    return f"{path} on {where}"


def same_folder(data: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Return whether two entries' data name the same folder on the same server.

    A server is the same when it presents the same host key, whichever name or address reaches
    it (the add-on's hostname in a discovered entry, an IP address in a manual one).
    """
    return normalize_path(data[CONF_PATH]) == normalize_path(other[CONF_PATH]) and (
        data[CONF_HOST_KEY] == other[CONF_HOST_KEY]
        or (data[CONF_HOST], int(data[CONF_PORT])) == (other[CONF_HOST], int(other[CONF_PORT]))
    )


class BackupDriveConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a Backup Drive."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing known."""
        self._data: dict[str, Any] = {}
        self._addon_name = "Backup Drive"

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Return the options flow (stale threshold, verification schedule)."""
        return BackupDriveOptionsFlow()

    def _abort_if_folder_configured(
        self, data: Mapping[str, Any], *, moving_entry_id: str | None = None
    ) -> None:
        """Abort when another entry already stores backups in the same folder of this server."""
        for entry in self._async_current_entries(include_ignore=False):
            if entry.entry_id != moving_entry_id and same_folder(data, entry.data):
                raise AbortFlow("already_configured")

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """Take the add-on's discovery message."""
        config = discovery_info.config
        try:
            data: dict[str, Any] = {key: str(config[key]) for key in DISCOVERY_KEYS}
            data[CONF_PORT] = int(config[CONF_PORT])
            data[CONF_PATH] = normalize_path(data[CONF_PATH])
            data[CONF_ADDON_SLUG] = discovery_info.slug
            fingerprint(data[CONF_HOST_KEY])
        except (KeyError, ValueError, TypeError, BackupDriveError):
            # Never log the message itself: it holds the password.
            LOGGER.error(
                "The discovery message of %s lacks or garbles one of %s",
                discovery_info.slug,
                ", ".join(DISCOVERY_KEYS),
            )
            return self.async_abort(reason="invalid_discovery_info")
        await self.async_set_unique_id(discovery_info.uuid)
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(
            DOMAIN, discovery_info.uuid
        )
        if entry is not None and entry.source != SOURCE_IGNORE:
            # The add-on re-sends its message after a new password or host key: apply it and
            # reload, also when the old password had left the entry failed (which
            # _abort_if_unique_id_configured would not reload).
            return self.async_update_reload_and_abort(
                entry,
                data={**entry.data, **data},
                reason="already_configured",
                reload_even_if_entry_is_unchanged=False,
            )
        self._abort_if_unique_id_configured()
        self._abort_if_folder_configured(data)
        self._data = data
        self._addon_name = discovery_info.name
        self.context["title_placeholders"] = {"name": discovery_info.name}
        self.context["configuration_url"] = (
            f"homeassistant://hassio/addon/{discovery_info.slug}/info"
        )
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask the user to confirm the discovered add-on."""
        errors: dict[str, str] = {}
        if user_input is not None:
            if (error := await async_check_drive(self._data)) is None:
                return self.async_create_entry(
                    title=location_title(self._data[CONF_PATH], self._addon_name), data=self._data
                )
            errors["base"] = error
        return self.async_show_form(
            step_id="hassio_confirm",
            description_placeholders={"addon": self._addon_name},
            errors=errors,
        )

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask where the SFTP server is and how to log in."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**user_input, CONF_HOST: user_input[CONF_HOST].strip()}
            if not str(data[CONF_PATH]).strip().startswith("/"):
                errors[CONF_PATH] = "path_not_absolute"
            elif error := credentials_error(data):
                errors["base"] = error
            else:
                data[CONF_PATH] = normalize_path(data[CONF_PATH])
                await self.async_set_unique_id(
                    f"{data[CONF_HOST]}:{data[CONF_PORT]}{data[CONF_PATH]}".lower()
                )
                self._abort_if_unique_id_configured()
                try:
                    data[CONF_HOST_KEY] = await fetch_host_key(data[CONF_HOST], data[CONF_PORT])
                except CannotConnect:
                    errors["base"] = "cannot_connect"
                else:
                    self._abort_if_folder_configured(data)
                    self._data = data
                    return await self.async_step_host_key()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(USER_SCHEMA, user_input),
            errors=errors,
        )

    async def async_step_host_key(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the server's host key fingerprint; accepting it pins the key."""
        if user_input is None:
            return self.async_show_form(
                step_id="host_key",
                description_placeholders=self._host_key_placeholders(),
            )
        if (error := await async_check_drive(self._data)) is not None:
            return self.async_show_form(
                step_id="user",
                data_schema=self.add_suggested_values_to_schema(USER_SCHEMA, self._data),
                errors={"base": error},
            )
        data = self._data
        return self.async_create_entry(
            title=location_title(data[CONF_PATH], data[CONF_HOST], data[CONF_PORT]), data=data
        )

    def _host_key_placeholders(self) -> dict[str, str]:
        """Return the placeholders that describe the server and its key."""
        return {
            "host": f"{self._data[CONF_HOST]}:{self._data[CONF_PORT]}",
            "fingerprint": fingerprint(self._data[CONF_HOST_KEY]),
            "key_type": self._data[CONF_HOST_KEY].split()[0],
        }

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start when the drive refuses the stored credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for a new password or key."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            updates = {
                CONF_PASSWORD: user_input.get(CONF_PASSWORD, ""),
                CONF_PRIVATE_KEY: user_input.get(CONF_PRIVATE_KEY, ""),
            }
            data = {**entry.data, **updates}
            if not (error := credentials_error(data)):
                error = await async_check_drive(data)
            if error is None:
                return self.async_update_reload_and_abort(entry, data_updates=updates)
            errors["base"] = error
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=REAUTH_SCHEMA,
            description_placeholders={
                "title": entry.title,
                "username": entry.data[CONF_USERNAME],
                "host": entry.data[CONF_HOST],
            },
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the host, port or folder of an entry."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, **user_input, CONF_HOST: user_input[CONF_HOST].strip()}
            if not str(data[CONF_PATH]).strip().startswith("/"):
                errors[CONF_PATH] = "path_not_absolute"
            else:
                data[CONF_PATH] = normalize_path(data[CONF_PATH])
                try:
                    offered = await fetch_host_key(data[CONF_HOST], data[CONF_PORT])
                except CannotConnect:
                    errors["base"] = "cannot_connect"
                else:
                    self._data = {**data, CONF_HOST_KEY: offered}
                    self._abort_if_folder_configured(self._data, moving_entry_id=entry.entry_id)
                    if offered != entry.data[CONF_HOST_KEY]:
                        return await self.async_step_reconfigure_host_key()
                    return await self._async_finish_reconfigure()
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                RECONFIGURE_SCHEMA, user_input or dict(entry.data)
            ),
            errors=errors,
        )

    async def async_step_reconfigure_host_key(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the new server's host key for the user to accept."""
        if user_input is None:
            return self.async_show_form(
                step_id="reconfigure_host_key",
                description_placeholders=self._host_key_placeholders(),
            )
        return await self._async_finish_reconfigure()

    async def _async_finish_reconfigure(self) -> ConfigFlowResult:
        """Check the new settings and apply them."""
        if (error := await async_check_drive(self._data)) is not None:
            return self.async_show_form(
                step_id="reconfigure",
                data_schema=self.add_suggested_values_to_schema(RECONFIGURE_SCHEMA, self._data),
                errors={"base": error},
            )
        return self.async_update_reload_and_abort(
            self._get_reconfigure_entry(), data_updates=self._data
        )
