"""Constants for the Backup Drive integration."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from homeassistant.util.hass_dict import HassKey

DOMAIN: Final = "backup_drive"
LOGGER = logging.getLogger(__package__)

CONF_HOST_KEY: Final = "host_key"
CONF_PATH: Final = "path"
CONF_PRIVATE_KEY: Final = "private_key"
CONF_ADDON_SLUG: Final = "addon_slug"

DEFAULT_PORT: Final = 22
DEFAULT_PATH: Final = "/backups"

# Keys of the add-on's discovery payload (a contract with the add-on: add keys, never rename).
DISCOVERY_KEYS: Final = ("host", "port", "username", "password", "host_key", "path")

DATA_BACKUP_AGENT_LISTENERS: HassKey[list[Callable[[], None]]] = HassKey(
    f"{DOMAIN}.backup_agent_listeners"
)

ISSUE_HOST_KEY_MISMATCH: Final = "host_key_mismatch"
