"""Config flow against the real server: discovery, user step, reauth, reconfigure, errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import (
    SOURCE_HASSIO,
    SOURCE_USER,
    ConfigEntryState,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.backup_drive.const import CONF_HOST_KEY, CONF_PATH, CONF_PRIVATE_KEY, DOMAIN
from custom_components.backup_drive.session import fingerprint
from tests.backup_target import HOMEASSISTANT_USER, BackupTarget
from tests.integration.entries import (
    ADDON_SLUG,
    DISCOVERY_UUID,
    KeyAccount,
    discovery_config,
    entry_data,
    other_host_key,
    set_up_entry,
    start_impostor,
    state_of,
    stop_target,
)


def placeholders(result: Mapping[str, Any]) -> Mapping[str, str]:
    """Return the description placeholders of a form."""
    found = result["description_placeholders"]
    assert found is not None
    return dict(found)


def discovery(config: dict[str, Any]) -> HassioServiceInfo:
    """Return the discovery info Supervisor hands to the flow."""
    return HassioServiceInfo(
        config=config, name="Backup Drive", slug=ADDON_SLUG, uuid=DISCOVERY_UUID
    )


def user_input(target: BackupTarget, **changes: Any) -> dict[str, Any]:
    """Return a complete user step form for the built-in account."""
    return {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: target.sftp_port,
        CONF_USERNAME: HOMEASSISTANT_USER,
        CONF_PASSWORD: target.password,
        CONF_PATH: "/backups",
        **changes,
    }


async def test_discovery_creates_entry(backup_target: BackupTarget, hass: HomeAssistant) -> None:
    """The add-on's discovery, confirmed once, creates a loaded entry holding its payload."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=discovery(discovery_config(backup_target))
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"] == {"addon": "Backup Drive"}

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "/backups on Backup Drive"
    entry = result["result"]
    assert entry.unique_id == DISCOVERY_UUID
    assert entry.data[CONF_HOST_KEY] == backup_target.host_key
    assert entry.data[CONF_PASSWORD] == backup_target.password
    assert entry.data[CONF_PATH] == "/backups"
    assert state_of(entry) is ConfigEntryState.LOADED


async def test_discovery_update_reloads_entry(
    backup_target: BackupTarget, hass: HomeAssistant
) -> None:
    """A new password from the add-on updates the failed entry and reloads it, without asking."""
    entry = await set_up_entry(
        hass,
        entry_data(backup_target, password="an-old-password"),
        expect=ConfigEntryState.SETUP_ERROR,
        source=SOURCE_HASSIO,
        title="Backup Drive",
    )

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=discovery(discovery_config(backup_target))
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_PASSWORD] == backup_target.password
    assert state_of(entry) is ConfigEntryState.LOADED


async def test_discovery_unchanged_keeps_entry(
    backup_target: BackupTarget, hass: HomeAssistant
) -> None:
    """The same discovery message again (Home Assistant restarts replay it) changes nothing."""
    entry = await set_up_entry(
        hass, entry_data(backup_target), expect=ConfigEntryState.LOADED, source=SOURCE_HASSIO
    )
    client = entry.runtime_data.client

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=discovery(discovery_config(backup_target))
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert state_of(entry) is ConfigEntryState.LOADED
    assert entry.runtime_data.client is client, "an unchanged message must not reload the entry"


@pytest.mark.parametrize(
    "config",
    [
        {"host": "backup-drive", "port": 2222},
        {
            "host": "backup-drive",
            "port": "not a port",
            "username": "homeassistant",
            "password": "secret-in-a-bad-message",
            "host_key": "ssh-ed25519 AAAA",
            "path": "/backups",
        },
        {
            "host": "backup-drive",
            "port": 2222,
            "username": "homeassistant",
            "password": "secret-in-a-bad-message",
            "host_key": "not a key",
            "path": "/backups",
        },
    ],
)
async def test_discovery_bad_payload_aborts(
    hass: HomeAssistant, config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A payload without the contract's keys, or with garbage in them, is refused unlogged."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=discovery(config)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"
    assert "secret-in-a-bad-message" not in caplog.text


async def test_discovery_host_key_mismatch(
    backup_target: BackupTarget, hass: HomeAssistant
) -> None:
    """A server presenting another key than the add-on announced is refused."""
    config = discovery_config(backup_target, host_key=other_host_key())
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=discovery(config)
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "host_key_changed"}
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_discovery_cannot_connect_then_recovers(
    hass: HomeAssistant, tmp_path: Path, socket_enabled: None
) -> None:
    """Confirming while the add-on is down shows cannot_connect; once it runs, the entry is made."""
    target = BackupTarget(storage=tmp_path / "storage", data_dir=tmp_path / "data")
    await hass.async_add_executor_job(target.start)
    config = discovery_config(target)
    await hass.async_add_executor_job(target.stop)
    try:
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_HASSIO}, data=discovery(config)
        )
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
        assert result["errors"] == {"base": "cannot_connect"}

        await hass.async_add_executor_job(target.start)
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
        await hass.async_block_till_done()
        assert result["type"] is FlowResultType.CREATE_ENTRY
    finally:
        await stop_target(hass, target)


async def user_flow_to_host_key(
    hass: HomeAssistant, form: dict[str, Any], flow_id: str | None = None
) -> dict[str, Any]:
    """Submit the user step and return the result (host key form or error)."""
    if flow_id is None:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        assert result["step_id"] == "user"
        flow_id = result["flow_id"]
    return dict(await hass.config_entries.flow.async_configure(flow_id, form))


async def test_user_with_password(backup_target: BackupTarget, hass: HomeAssistant) -> None:
    """The user step shows the server's fingerprint; accepting it pins that key."""
    result = await user_flow_to_host_key(hass, user_input(backup_target))
    assert result["step_id"] == "host_key"
    assert placeholders(result)["fingerprint"] == fingerprint(backup_target.host_key)
    assert placeholders(result)["key_type"] == "ssh-ed25519"

    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_HOST_KEY] == backup_target.host_key
    assert result["result"].state is ConfigEntryState.LOADED
    assert result["title"] == f"/backups on 127.0.0.1:{backup_target.sftp_port}"


async def test_two_folders_of_one_server_have_different_titles(
    backup_target: BackupTarget, hass: HomeAssistant
) -> None:
    """Each entry's title names its folder, so two locations on one server differ."""
    (backup_target.storage / "backups" / "second").mkdir()
    titles = []
    for path in ("/backups", "/backups/second"):
        result = await user_flow_to_host_key(hass, user_input(backup_target, path=path))
        result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
        titles.append(result["title"])
    await hass.async_block_till_done()
    assert titles == [
        f"/backups on 127.0.0.1:{backup_target.sftp_port}",
        f"/backups/second on 127.0.0.1:{backup_target.sftp_port}",
    ]


async def test_user_with_private_key(
    backup_target: BackupTarget, hass: HomeAssistant, accounts: dict[str, KeyAccount]
) -> None:
    """An account can log in with a pasted private key and no password."""
    writer = accounts["writer"]
    form = user_input(
        backup_target, username=writer.username, password="", private_key=writer.private_key
    )
    form[CONF_PATH] = "/"
    result = await user_flow_to_host_key(hass, form)
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_PRIVATE_KEY] == writer.private_key
    assert result["result"].state is ConfigEntryState.LOADED


@pytest.mark.parametrize(
    ("breakage", "field", "error"),
    [
        ({CONF_PATH: "backups"}, CONF_PATH, "path_not_absolute"),
        ({CONF_PASSWORD: ""}, "base", "missing_credentials"),
        (
            {CONF_PRIVATE_KEY: "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n"},
            "base",
            "invalid_private_key",
        ),
        ({CONF_PORT: 1}, "base", "cannot_connect"),
    ],
)
async def test_user_form_errors_recover(
    backup_target: BackupTarget,
    hass: HomeAssistant,
    breakage: dict[str, Any],
    field: str,
    error: str,
) -> None:
    """Errors found before the host key step re-show the form; fixed input goes on."""
    result = await user_flow_to_host_key(hass, user_input(backup_target, **breakage))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}

    result = await user_flow_to_host_key(hass, user_input(backup_target), result["flow_id"])
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("breakage", "error"),
    [
        ({CONF_PASSWORD: "wrong-password"}, "invalid_auth"),
        ({CONF_PATH: "/no-such-folder"}, "folder_missing"),
        # What no form field can fix is "unknown", and the log names it (File name too long).
        ({CONF_PATH: "/" + "a" * 5000}, "unknown"),
        ({CONF_USERNAME: "reader", CONF_PASSWORD: "reader-secret-password"}, "permission_denied"),
    ],
)
async def test_user_login_errors_recover(
    backup_target: BackupTarget, hass: HomeAssistant, breakage: dict[str, Any], error: str
) -> None:
    """Errors found when logging in after the key was accepted return to the form, then recover."""
    result = await user_flow_to_host_key(hass, user_input(backup_target, **breakage))
    assert result["step_id"] == "host_key"
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": error}

    result = await user_flow_to_host_key(hass, user_input(backup_target), result["flow_id"])
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_host_key_changes_before_accept(
    backup_target: BackupTarget, hass: HomeAssistant
) -> None:
    """If another server answers after the user saw the fingerprint, nothing is sent to it."""
    result = await user_flow_to_host_key(hass, user_input(backup_target))
    assert result["step_id"] == "host_key"

    impostor = await start_impostor(hass, backup_target)
    try:
        assert impostor.host_key != backup_target.host_key
        result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
        assert result["errors"] == {"base": "host_key_changed"}
        assert "login" not in impostor.log.lower()

        result = await user_flow_to_host_key(
            hass, user_input(backup_target, password=impostor.password), result["flow_id"]
        )
        assert placeholders(result)["fingerprint"] == fingerprint(impostor.host_key)
        result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"][CONF_HOST_KEY] == impostor.host_key
    finally:
        await stop_target(hass, impostor)


async def test_user_already_configured(backup_target: BackupTarget, hass: HomeAssistant) -> None:
    """The same server and folder cannot be added twice."""
    result = await user_flow_to_host_key(hass, user_input(backup_target))
    await hass.config_entries.flow.async_configure(result["flow_id"], {})
    result = await user_flow_to_host_key(hass, user_input(backup_target))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


def add_entry(hass: HomeAssistant, data: dict[str, Any], unique_id: str) -> MockConfigEntry:
    """Add an entry without setting it up: flows only compare what entries hold."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id=unique_id, data=data)
    entry.add_to_hass(hass)
    return entry


async def test_discovered_drive_cannot_be_added_again_by_hand(
    backup_target: BackupTarget, hass: HomeAssistant
) -> None:
    """The add-on's folder, known by its hostname, is the same folder under an IP address."""
    add_entry(hass, entry_data(backup_target, host="a0d7b954-backup-drive"), DISCOVERY_UUID)
    result = await user_flow_to_host_key(hass, user_input(backup_target, path="/backups/"))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"

    # Another folder of the same server is another location.
    (backup_target.storage / "backups" / "other").mkdir()
    result = await user_flow_to_host_key(hass, user_input(backup_target, path="/backups/other"))
    assert result["step_id"] == "host_key"


async def test_drive_added_by_hand_is_not_discovered_again(
    backup_target: BackupTarget, hass: HomeAssistant
) -> None:
    """Discovery of a server and folder an entry made by hand already uses aborts."""
    add_entry(hass, entry_data(backup_target), f"127.0.0.1:{backup_target.sftp_port}/backups")
    config = discovery_config(backup_target, host="a0d7b954-backup-drive", port=2222)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=discovery(config)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_reconfigure_onto_another_entrys_folder_aborts(
    backup_target: BackupTarget, hass: HomeAssistant
) -> None:
    """Reconfigure cannot point an entry at the folder another entry stores backups in."""
    (backup_target.storage / "backups" / "second").mkdir()
    add_entry(hass, entry_data(backup_target, host="a0d7b954-backup-drive"), DISCOVERY_UUID)
    entry = add_entry(hass, entry_data(backup_target, path="/backups/second"), "second")
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: "127.0.0.1", CONF_PORT: backup_target.sftp_port, CONF_PATH: "/backups"},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_PATH] == "/backups/second"


async def test_reauth(backup_target: BackupTarget, hass: HomeAssistant) -> None:
    """A refused login starts reauth; a wrong password is refused again, the right one works."""
    entry = await set_up_entry(
        hass,
        entry_data(backup_target, password="an-old-password"),
        expect=ConfigEntryState.SETUP_ERROR,
    )
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]
    flow_id = flows[0]["flow_id"]

    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_PASSWORD: "still-wrong"})
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_PASSWORD: backup_target.password}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_PASSWORD] == backup_target.password
    assert state_of(entry) is ConfigEntryState.LOADED


async def test_reconfigure_folder(backup_target: BackupTarget, hass: HomeAssistant) -> None:
    """Reconfigure moves the entry to another folder on the same server."""
    (backup_target.storage / "backups" / "elsewhere").mkdir()
    entry = await set_up_entry(hass, entry_data(backup_target), expect=ConfigEntryState.LOADED)

    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    form = {CONF_HOST: "127.0.0.1", CONF_PORT: backup_target.sftp_port}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**form, CONF_PATH: "/backups/missing"}
    )
    assert result["errors"] == {"base": "folder_missing"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**form, CONF_PATH: "/backups/elsewhere/"}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_PATH] == "/backups/elsewhere"
    assert state_of(entry) is ConfigEntryState.LOADED


@pytest.mark.parametrize(
    ("form", "field", "error"),
    [
        ({CONF_HOST: "127.0.0.1", CONF_PATH: "backups"}, CONF_PATH, "path_not_absolute"),
        ({CONF_HOST: "127.0.0.1", CONF_PORT: 1, CONF_PATH: "/backups"}, "base", "cannot_connect"),
    ],
)
async def test_reconfigure_errors_recover(
    backup_target: BackupTarget,
    hass: HomeAssistant,
    form: dict[str, Any],
    field: str,
    error: str,
) -> None:
    """A relative folder or an unreachable port re-shows the form; fixed input goes on."""
    entry = await set_up_entry(hass, entry_data(backup_target), expect=ConfigEntryState.LOADED)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PORT: backup_target.sftp_port, **form}
    )
    assert result["errors"] == {field: error}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: "127.0.0.1", CONF_PORT: backup_target.sftp_port, CONF_PATH: "/backups"},
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"


async def test_reconfigure_new_server_asks_for_key(
    backup_target: BackupTarget, hass: HomeAssistant, tmp_path: Path
) -> None:
    """Moving to a server with another host key shows its fingerprint before trusting it."""
    entry = await set_up_entry(hass, entry_data(backup_target), expect=ConfigEntryState.LOADED)
    second = BackupTarget(storage=tmp_path / "second", data_dir=tmp_path / "second-data")
    await hass.async_add_executor_job(second.start)
    try:
        # The same account name exists on both; give the entry the second server's password.
        hass.config_entries.async_update_entry(
            entry, data={**entry.data, CONF_PASSWORD: second.password}
        )
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {CONF_HOST: "127.0.0.1", CONF_PORT: second.sftp_port, CONF_PATH: "/backups"},
        )
        assert result["step_id"] == "reconfigure_host_key"
        assert placeholders(result)["fingerprint"] == fingerprint(second.host_key)

        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
        await hass.async_block_till_done()
        assert result["reason"] == "reconfigure_successful"
        assert entry.data[CONF_HOST_KEY] == second.host_key
        assert entry.data[CONF_PORT] == second.sftp_port
        assert state_of(entry) is ConfigEntryState.LOADED
    finally:
        await stop_target(hass, second)
