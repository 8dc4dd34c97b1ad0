"""Faults against the real server: it stops mid-upload, refuses logins, fills up, is away."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from homeassistant.components.backup import (
    BackupAgentError,
    BackupNotFound,
    suggested_filename,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.backup_drive.backup import BackupDriveAgent
from custom_components.backup_drive.const import CONF_HOST_KEY, DOMAIN
from custom_components.backup_drive.failures import ISSUES_TAKE_CONFIG_ENTRY
from custom_components.backup_drive.session import fingerprint
from tests.backup_target import BackupTarget
from tests.integration.entries import (
    DISCOVERY_UUID,
    KeyAccount,
    entry_data,
    other_host_key,
    set_up_entry,
    start_impostor,
    state_of,
    stop_target,
    take_drive_away,
)
from tests.integration.test_backup import (
    SETTLE_SECONDS,
    agent_id_of,
    agent_of,
    backups_dir,
    chunks,
    make_backup,
    upload,
    visible_files,
    ws_call,
)

MIB = 1024 * 1024


async def test_server_stops_mid_upload(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """Nothing is left under the final name, the error says so, and the next call reconnects."""
    agent = agent_of(hass, backup_entry)
    kept = make_backup("0001aaaa", 2 * MIB, name="Already there")
    kept_data = os.urandom(kept.size)
    await upload(agent, kept, kept_data)
    before = visible_files(backup_target)

    doomed = make_backup("0002bbbb", 64 * MIB, name="Interrupted")

    async def stream_then_stop_server() -> AsyncIterator[bytes]:
        async for chunk in chunks(os.urandom(16 * MIB)):
            yield chunk
        await hass.async_add_executor_job(backup_target.stop)
        async for chunk in chunks(os.urandom(48 * MIB)):
            yield chunk

    async def open_stream() -> AsyncIterator[bytes]:
        return stream_then_stop_server()

    with pytest.raises(BackupAgentError) as caught:
        await agent.async_upload_backup(open_stream=open_stream, backup=doomed)
    # Home Assistant 2026.4+ shows the translation; older releases show str(), rendered from it.
    assert caught.value.translation_domain == DOMAIN
    assert caught.value.translation_key == "cannot_connect"
    assert str(caught.value).startswith("Backup Drive is unreachable: ")
    assert "connection to the drive was lost" in str(caught.value)
    assert visible_files(backup_target) == before
    assert not (backups_dir(backup_target) / suggested_filename(doomed)).exists()

    await hass.async_add_executor_job(backup_target.start)
    backup_entry.runtime_data.client.invalidate_cache()
    listed = await agent.async_list_backups()
    assert [b.backup_id for b in listed] == ["0001aaaa"]
    stream = await agent.async_download_backup("0001aaaa")
    assert b"".join([chunk async for chunk in stream]) == kept_data


async def test_folder_gone_while_loaded(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """An upload into a folder that vanished (drive unmounted) says so; it is no 'not found'."""
    # Gone with what the integration keeps in it (listing index, health file), as on unmount.
    shutil.rmtree(backups_dir(backup_target))
    agent = agent_of(hass, backup_entry)
    with pytest.raises(BackupAgentError, match="does not exist") as caught:
        await upload(agent, make_backup("0005eeee", 10), b"0123456789")
    assert not isinstance(caught.value, BackupNotFound)
    with pytest.raises(BackupAgentError, match="does not exist"):
        await agent.async_list_backups()


async def test_unreachable_while_loaded_is_reported(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """With the drive away, backup/info names our agent's error; the others still work."""
    await take_drive_away(hass, backup_target, backup_entry)
    ws = await hass_ws_client(hass)
    info = await ws_call(ws, {"type": "backup/info"})
    assert agent_id_of(backup_entry) in info["agent_errors"]
    assert "unreachable" in info["agent_errors"][agent_id_of(backup_entry)]


async def test_password_changed_starts_reauth(
    backup_target: BackupTarget,
    accounts: dict[str, KeyAccount],
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """When the drive starts refusing the password, the agent fails clearly and reauth starts."""
    writer = accounts["writer"]
    hass.config_entries.async_update_entry(
        backup_entry,
        data={**backup_entry.data, CONF_USERNAME: writer.username, CONF_PASSWORD: writer.password},
    )
    await hass.config_entries.async_reload(backup_entry.entry_id)
    await hass.async_block_till_done()
    assert state_of(backup_entry) is ConfigEntryState.LOADED

    await hass.async_add_executor_job(backup_target.stop)
    changed = {**writer.option(), "password": "a-new-password-nobody-told-ha"}
    backup_target.options = {"users": [changed]}
    await hass.async_add_executor_job(backup_target.start)
    backup_entry.runtime_data.client.invalidate_cache()

    ws = await hass_ws_client(hass)
    info = await ws_call(ws, {"type": "backup/info"})
    assert "login was refused" in info["agent_errors"][agent_id_of(backup_entry)]
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]


async def test_unreachable_at_startup_retries_and_recovers(
    hass: HomeAssistant, tmp_path: Path, socket_enabled: None
) -> None:
    """Setup does not wait for an absent drive: it retries, and loads once the drive is back."""
    target = BackupTarget(storage=tmp_path / "storage", data_dir=tmp_path / "data")
    await hass.async_add_executor_job(target.start)
    await hass.async_add_executor_job(target.stop)
    entry = MockConfigEntry(domain=DOMAIN, unique_id=DISCOVERY_UUID, data=entry_data(target))
    entry.add_to_hass(hass)
    try:
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert state_of(entry) is ConfigEntryState.SETUP_RETRY
        assert "Cannot connect" in str(entry.reason)

        await hass.async_add_executor_job(target.start)
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=5))
        # The retry runs as a background task that talks to the server: wait for its outcome.
        async with asyncio.timeout(SETTLE_SECONDS):
            while state_of(entry) in (
                ConfigEntryState.SETUP_RETRY,
                ConfigEntryState.SETUP_IN_PROGRESS,
            ):
                await asyncio.sleep(0.1)
        assert state_of(entry) is ConfigEntryState.LOADED
    finally:
        await stop_target(hass, target)


async def test_host_key_mismatch_raises_repair_that_accepts_new_key(
    backup_target: BackupTarget, hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    """A changed host key refuses the connection and raises a fixable repair issue."""
    assert await async_setup_component(hass, "repairs", {})
    entry = await set_up_entry(
        hass,
        entry_data(backup_target, host_key=other_host_key()),
        expect=ConfigEntryState.SETUP_RETRY,
        title="Backup Drive",
    )
    assert "login" not in backup_target.log.lower(), "credentials must not reach the impostor"

    issue_id = f"host_key_mismatch_{entry.entry_id}"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["offered"] == fingerprint(backup_target.host_key)
    assert issue.translation_placeholders["expected"] == fingerprint(entry.data[CONF_HOST_KEY])
    # Feature detection: releases whose issues know their config entry get told which one.
    linked = getattr(issue, "config_entry_id", None)
    assert linked == (entry.entry_id if ISSUES_TAKE_CONFIG_ENTRY else None)

    client = await hass_client()
    response = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert response.status == 200
    flow = await response.json()
    assert flow["step_id"] == "confirm"
    response = await client.post(f"/api/repairs/issues/fix/{flow['flow_id']}", json={})
    assert (await response.json())["type"] == "create_entry"
    await hass.async_block_till_done()

    assert entry.data[CONF_HOST_KEY] == backup_target.host_key
    assert state_of(entry) is ConfigEntryState.LOADED
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_refused_host_key_is_logged_once_when_it_starts_and_once_when_it_ends(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An impostor answering for the drive is one ERROR line however often the page asks."""
    agent = agent_of(hass, backup_entry)
    impostor = await start_impostor(hass, backup_target)
    try:
        ws = await hass_ws_client(hass)
        for _page_load in range(3):
            backup_entry.runtime_data.client.invalidate_cache()
            info = await ws_call(ws, {"type": "backup/info"})
            assert agent_id_of(backup_entry) in info["agent_errors"]
        with pytest.raises(BackupAgentError):
            await upload(agent, make_backup("0006ffff", 3), b"abc")
    finally:
        await hass.async_add_executor_job(impostor.stop)
    issue_id = f"host_key_mismatch_{backup_entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    refusals = [r for r in caplog.records if r.getMessage().startswith("Refusing to connect")]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]

    await hass.async_add_executor_job(backup_target.start)
    backup_entry.runtime_data.client.invalidate_cache()
    for _page_load in range(2):
        await agent.async_list_backups()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert caplog.text.count("presents its trusted host key again") == 1


async def test_full_drive(
    small_drive: Path, hass: HomeAssistant, tmp_path: Path, socket_enabled: None
) -> None:
    """A backup that does not fit fails with 'full'; nothing partial stays; older ones survive."""
    target = BackupTarget(storage=small_drive, data_dir=tmp_path / "data")
    await hass.async_add_executor_job(target.start)
    try:
        entry = await set_up_entry(hass, entry_data(target), expect=ConfigEntryState.LOADED)
        agent = BackupDriveAgent(hass, entry)
        kept = make_backup("0003cccc", 4 * MIB, name="Fits")
        kept_data = os.urandom(kept.size)
        await upload(agent, kept, kept_data)
        before = visible_files(target)

        # Announced small enough to pass the pre-flight space check: the disk fills anyway
        # (another writer, or a wrong size), and the upload must still leave nothing behind.
        too_big = make_backup("0004dddd", 8 * MIB, name="Too big")
        with pytest.raises(BackupAgentError, match="full"):
            await upload(agent, too_big, os.urandom(64 * MIB))

        assert visible_files(target) == before
        stream = await agent.async_download_backup("0003cccc")
        assert b"".join([chunk async for chunk in stream]) == kept_data
    finally:
        await stop_target(hass, target)
