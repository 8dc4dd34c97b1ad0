"""Constants for the Backup Drive integration."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.util.hass_dict import HassKey

DOMAIN: Final = "backup_drive"
LOGGER = logging.getLogger(__package__)

CONF_HOST_KEY: Final = "host_key"
CONF_PATH: Final = "path"
CONF_PRIVATE_KEY: Final = "private_key"
CONF_ADDON_SLUG: Final = "addon_slug"

DEFAULT_PORT: Final = 22
DEFAULT_PATH: Final = "/backups"

# The add-on's discovery payload (BRIEF.md section 5; a contract with the add-on: add keys, never
# rename). Each key fills the entry data key of the same name; tests/discovery_payload_contract.py
# holds the documented example both halves are tested against.
DISCOVERY_KEYS: Final = (
    CONF_HOST,
    CONF_PORT,
    CONF_USERNAME,
    CONF_PASSWORD,
    CONF_HOST_KEY,
    CONF_PATH,
)

DATA_BACKUP_AGENT_LISTENERS: HassKey[list[Callable[[], None]]] = HassKey(
    f"{DOMAIN}.backup_agent_listeners"
)

ISSUE_HOST_KEY_MISMATCH: Final = "host_key_mismatch"

# Options: days without a backup before it counts as stale (empty: follow Home Assistant's
# backup schedule), and days between verifications (0: never on a schedule).
CONF_STALE_DAYS: Final = "stale_days"
CONF_VERIFY_DAYS: Final = "verify_days"
DEFAULT_VERIFY_DAYS: Final = 7
