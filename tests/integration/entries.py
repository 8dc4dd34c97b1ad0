"""Test data for the integration suite: accounts, discovery payloads, entry data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncssh
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.backup_drive.const import CONF_ADDON_SLUG, CONF_HOST_KEY, CONF_PATH, DOMAIN
from tests.backup_target import HOMEASSISTANT_USER, BackupTarget, user_option
from tests.openssh_server import OpenSshServer

ADDON_SLUG = "a0d7b954_backup_drive"
DISCOVERY_UUID = "8b5e3c1c7b0e4a8c9d2f4e6a1b3c5d7e"


@dataclass(frozen=True)
class KeyAccount:
    """An account that logs in with a key (and can also use its password)."""

    username: str
    password: str = field(repr=False)
    private_key: str = field(repr=False)
    public_key: str
    read_only: bool = False

    def option(self) -> dict[str, Any]:
        """Return the options.json `users` entry for this account."""
        return user_option(self.username, self.password, self.public_key, read_only=self.read_only)


def make_account(username: str, *, read_only: bool = False) -> KeyAccount:
    """Generate an account with a fresh ed25519 key pair."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    return KeyAccount(
        username=username,
        password=f"{username}-secret-password",
        private_key=key.export_private_key("openssh").decode(),
        public_key=key.export_public_key("openssh").decode().strip(),
        read_only=read_only,
    )


def discovery_config(target: BackupTarget, **changes: Any) -> dict[str, Any]:
    """Return the add-on's discovery payload for a running target."""
    return {
        "host": "127.0.0.1",
        "port": target.sftp_port,
        "username": HOMEASSISTANT_USER,
        "password": target.password,
        "host_key": target.host_key,
        "path": "/backups",
        **changes,
    }


def entry_data(target: BackupTarget, **changes: Any) -> dict[str, Any]:
    """Return config entry data as the discovery flow stores it."""
    return {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: target.sftp_port,
        CONF_USERNAME: HOMEASSISTANT_USER,
        CONF_PASSWORD: target.password,
        CONF_HOST_KEY: target.host_key,
        CONF_PATH: "/backups",
        CONF_ADDON_SLUG: ADDON_SLUG,
        **changes,
    }


def other_host_key() -> str:
    """Return a valid ed25519 public key that no server of ours has."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def state_of(entry: ConfigEntry) -> ConfigEntryState:
    """Return an entry's state (a call, so that type narrowing does not stick across awaits)."""
    return entry.state


async def set_up_entry(
    hass: HomeAssistant, data: dict[str, Any], *, expect: ConfigEntryState, **fields: Any
) -> MockConfigEntry:
    """Add an entry under the discovery's unique id, set it up and check the state it reaches."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id=DISCOVERY_UUID, data=data, **fields)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert state_of(entry) is expect
    return entry


async def stop_target(hass: HomeAssistant, target: BackupTarget | OpenSshServer) -> None:
    """Unload our entries (ending their SSH sessions), then stop the server."""
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_add_executor_job(target.stop)


async def take_drive_away(hass: HomeAssistant, target: BackupTarget, entry: ConfigEntry) -> None:
    """Stop the server while the entry stays loaded, and forget the listing it had cached."""
    await hass.async_add_executor_job(target.stop)
    entry.runtime_data.client.invalidate_cache()


async def start_impostor(hass: HomeAssistant, target: BackupTarget) -> BackupTarget:
    """Stop `target` and start another server, with a host key of its own, on its port."""
    await hass.async_add_executor_job(target.stop)
    work = target.data_dir.parent
    impostor = BackupTarget(
        storage=work / "impostor", data_dir=work / "impostor-data", sftp_port=target.sftp_port
    )
    await hass.async_add_executor_job(impostor.start)
    return impostor
