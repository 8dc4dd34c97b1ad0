"""What a failing drive makes the integration do: the error it raises, reauth, the repair issue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.backup import BackupAgentError
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN, ISSUE_HOST_KEY_MISMATCH, LOGGER
from .errors import BackupDriveError, HostKeyMismatch, InvalidAuth, meaning_of

if TYPE_CHECKING:
    from . import BackupDriveConfigEntry


@callback
def async_handle_setup_failure(
    hass: HomeAssistant, entry: BackupDriveConfigEntry, err: BackupDriveError
) -> ConfigEntryNotReady | ConfigEntryAuthFailed:
    """Raise the repair a failure calls for; return the exception that fails the setup.

    ConfigEntryAuthFailed starts reauth by itself.
    """
    placeholders = {"title": entry.title, "host": entry.data[CONF_HOST], "error": str(err)}
    if isinstance(err, HostKeyMismatch):
        async_raise_host_key_issue(hass, entry, err)
        placeholders["offered"] = err.offered_fingerprint or "?"
    meaning = meaning_of(err)
    return meaning.setup_error(
        translation_domain=DOMAIN,
        translation_key=meaning.translation_key,
        translation_placeholders=placeholders,
    )


@callback
def async_handle_agent_failure(
    hass: HomeAssistant, entry: BackupDriveConfigEntry, err: BackupDriveError
) -> BackupAgentError:
    """Start reauth or raise the repair a failure calls for; return the agent's error."""
    meaning = meaning_of(err)
    if isinstance(err, InvalidAuth):
        entry.async_start_reauth(hass)
    elif isinstance(err, HostKeyMismatch):
        async_raise_host_key_issue(hass, entry, err)
    elif meaning.agent_error is BackupAgentError:
        # No remedy to start and no plain cause to name: keep the traceback for debugging.
        LOGGER.debug("%s failed", entry.title, exc_info=err)
    message = meaning.agent_message.format(name=entry.title, err=err)
    if meaning.agent_translation_key is None:
        return meaning.agent_error(message)
    return meaning.agent_error(
        message,
        translation_domain=DOMAIN,
        translation_key=meaning.agent_translation_key,
        translation_placeholders={"title": entry.title, "error": str(err)},
    )


def host_key_issue_id(entry: BackupDriveConfigEntry) -> str:
    """Return the id of the repair issue about an entry's changed host key."""
    return f"{ISSUE_HOST_KEY_MISMATCH}_{entry.entry_id}"


@callback
def async_raise_host_key_issue(
    hass: HomeAssistant, entry: BackupDriveConfigEntry, err: HostKeyMismatch
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


@callback
def async_clear_host_key_issue(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> None:
    """Remove the repair issue once the drive answers with the trusted key again."""
    ir.async_delete_issue(hass, DOMAIN, host_key_issue_id(entry))
