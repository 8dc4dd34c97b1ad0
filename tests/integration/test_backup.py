"""End to end through Home Assistant's backup manager, onto the real server's disk and back."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.backup import (
    AgentBackup,
    BackupAgentError,
    BackupNotFound,
    suggested_filename,
)
from homeassistant.components.backup.const import DATA_MANAGER
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.backup_drive import backup as backup_platform
from custom_components.backup_drive.backup import BackupDriveAgent
from custom_components.backup_drive.const import DOMAIN
from custom_components.backup_drive.health_record import HEALTH_FILE_NAME
from custom_components.backup_drive.keep_awake import KEEP_AWAKE_CEILING, DriveKeeper
from custom_components.backup_drive.listing_index import INDEX_NAME
from tests.backup_target import BackupTarget

# How long a test waits for Home Assistant to finish a backup in the background. Generous on
# purpose: tests never fail on timing.
SETTLE_SECONDS = 60.0


def agent_id_of(entry: MockConfigEntry) -> str:
    """Return the backup agent id of an entry."""
    return f"{DOMAIN}.{entry.entry_id}"


def agent_of(hass: HomeAssistant, entry: MockConfigEntry) -> BackupDriveAgent:
    """Return our agent as the backup manager holds it."""
    agent = hass.data[DATA_MANAGER].backup_agents[agent_id_of(entry)]
    assert isinstance(agent, BackupDriveAgent)
    return agent


def make_backup(backup_id: str, size: int, name: str = "Drive test") -> AgentBackup:
    """Return metadata for a backup of `size` bytes."""
    return AgentBackup(
        addons=[],
        backup_id=backup_id,
        date="2025-06-03T01:00:00.000000+00:00",
        database_included=False,
        extra_metadata={},
        folders=[],
        homeassistant_included=True,
        homeassistant_version="2025.4.4",
        name=name,
        protected=False,
        size=size,
    )


async def chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    """Yield `data` in chunks, as the backup manager does."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def upload(agent: BackupDriveAgent, backup: AgentBackup, data: bytes, **kwargs: Any) -> None:
    """Upload bytes through the agent."""

    async def open_stream() -> AsyncIterator[bytes]:
        return chunks(data)

    await agent.async_upload_backup(open_stream=open_stream, backup=backup, **kwargs)


async def ws_call(ws: Any, message: dict[str, Any]) -> Any:
    """Send a websocket command and return its result, failing on an error reply."""
    await ws.send_json_auto_id(message)
    reply = await ws.receive_json()
    assert reply["success"], reply
    return reply["result"]


async def wait_for_backup_done(ws: Any) -> dict[str, Any]:
    """Poll backup/info until the manager is idle after a backup; return the info."""
    async with asyncio.timeout(SETTLE_SECONDS):
        while True:
            info: dict[str, Any] = await ws_call(ws, {"type": "backup/info"})
            event = info["last_action_event"]
            if info["state"] == "idle" and event and event.get("state") in ("completed", "failed"):
                return info
            await asyncio.sleep(0.2)


def backups_dir(target: BackupTarget) -> Path:
    """Return the folder Home Assistant's backups land in on the server's disk."""
    return target.storage / "backups"


def visible_files(target: BackupTarget) -> list[str]:
    """Return the names in the backups folder but the health file and listing index, sorted."""
    ours = {HEALTH_FILE_NAME, INDEX_NAME}
    return sorted(path.name for path in backups_dir(target).iterdir() if path.name not in ours)


async def test_backup_round_trip(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
) -> None:
    """generate puts a backup on the drive; info lists it; download returns it; delete empties."""
    agent_id = agent_id_of(backup_entry)
    ws = await hass_ws_client(hass)

    agents = await ws_call(ws, {"type": "backup/agents/info"})
    assert {"agent_id": agent_id, "name": "Backup Drive"} in agents["agents"]

    await ws_call(
        ws,
        {
            "type": "backup/generate",
            "agent_ids": [agent_id],
            "name": "Drive round trip",
            "include_database": False,
        },
    )
    info = await wait_for_backup_done(ws)
    assert info["last_action_event"]["state"] == "completed", info
    assert info["agent_errors"] == {}
    [listed] = [b for b in info["backups"] if b["name"] == "Drive round trip"]
    assert agent_id in listed["agents"]
    backup_id = listed["backup_id"]

    # On disk: the archive under its suggested name, and core's sidecar with our additions.
    sidecar = json.loads((backups_dir(backup_target) / f".{backup_id}.metadata.json").read_text())
    backup = AgentBackup.from_dict(sidecar["metadata"])
    archive = backups_dir(backup_target) / suggested_filename(backup)
    assert sidecar["file_path"] == f"/backups/{archive.name}"
    archive_bytes = archive.read_bytes()
    assert sidecar["size"] == len(archive_bytes) == backup.size
    assert sidecar["sha256"] == hashlib.sha256(archive_bytes).hexdigest()
    assert visible_files(backup_target) == sorted([archive.name, f".{backup_id}.metadata.json"])

    client = await hass_client()
    response = await client.get(f"/api/backup/download/{backup_id}?agent_id={agent_id}")
    assert response.status == 200
    assert await response.read() == archive_bytes

    await ws_call(ws, {"type": "backup/delete", "backup_id": backup_id})
    assert visible_files(backup_target) == []
    info = await ws_call(ws, {"type": "backup/info"})
    assert all(b["backup_id"] != backup_id for b in info["backups"])


def write_core_sftp_backup(target: BackupTarget, backup: AgentBackup, data: bytes) -> Path:
    """Store a backup exactly as core's sftp_storage writes it (no sha256, no size)."""
    name = suggested_filename(backup)
    archive = backups_dir(target) / name
    archive.write_bytes(data)
    sidecar = {"file_path": f"/backups/{name}", "metadata": backup.as_dict()}
    (backups_dir(target) / f".{backup.backup_id}.metadata.json").write_text(json.dumps(sidecar))
    return archive


async def test_lists_and_downloads_core_sftp_storage_backup(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
) -> None:
    """A backup left by core's sftp_storage in the same folder is listed and downloadable."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    backup = make_backup("c0ffee01", len(data), name="Left by sftp_storage")
    write_core_sftp_backup(backup_target, backup, data)
    backup_entry.runtime_data.client.invalidate_cache()

    ws = await hass_ws_client(hass)
    info = await ws_call(ws, {"type": "backup/info"})
    assert info["agent_errors"] == {}
    [listed] = [b for b in info["backups"] if b["backup_id"] == "c0ffee01"]
    assert listed["name"] == "Left by sftp_storage"
    assert agent_id_of(backup_entry) in listed["agents"]

    client = await hass_client()
    response = await client.get(
        f"/api/backup/download/c0ffee01?agent_id={agent_id_of(backup_entry)}"
    )
    assert response.status == 200
    assert await response.read() == data


async def test_corrupted_sidecar_is_skipped_and_logged(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One unreadable metadata file hides only itself; the others are listed; the log names it."""
    good = make_backup("600d0001", 5, name="Good one")
    write_core_sftp_backup(backup_target, good, b"12345")
    (backups_dir(backup_target) / ".bad00001.metadata.json").write_text('{"file_path": "/b')
    (backups_dir(backup_target) / ".bad00002.metadata.json").write_text('{"metadata": {}}')
    backup_entry.runtime_data.client.invalidate_cache()

    ws = await hass_ws_client(hass)
    with caplog.at_level(logging.ERROR):
        info = await ws_call(ws, {"type": "backup/info"})
    assert info["agent_errors"] == {}
    ours = [b["backup_id"] for b in info["backups"] if agent_id_of(backup_entry) in b["agents"]]
    assert ours == ["600d0001"]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "/backups/.bad00001.metadata.json" in logged
    assert "/backups/.bad00002.metadata.json" in logged


async def test_listing_follows_changes_on_the_drive(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sidecars added, rewritten or removed behind our back show in the next fresh listing."""
    client = backup_entry.runtime_data.client
    first = make_backup("11110001", 3, name="First")
    write_core_sftp_backup(backup_target, first, b"abc")
    (backups_dir(backup_target) / ".bad00003.metadata.json").write_text("{")
    with caplog.at_level(logging.ERROR):
        assert set(await client.list_backups(fresh=True)) == {"11110001"}
        assert set(await client.list_backups(fresh=True)) == {"11110001"}
    assert caplog.text.count(".bad00003.metadata.json") == 1, "an unchanged bad file logs once"

    write_core_sftp_backup(backup_target, make_backup("11110001", 3, name="Renamed"), b"abc")
    write_core_sftp_backup(backup_target, make_backup("22220002", 4, name="Second"), b"abcd")
    listed = await client.list_backups(fresh=True)
    assert {k: v.backup.name for k, v in listed.items()} == {
        "11110001": "Renamed",
        "22220002": "Second",
    }

    (backups_dir(backup_target) / ".11110001.metadata.json").unlink()
    assert set(await client.list_backups(fresh=True)) == {"22220002"}


async def test_unknown_backup_id(
    backup_entry: MockConfigEntry, hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    """get, download and delete raise BackupNotFound for an id the drive does not hold."""
    agent = agent_of(hass, backup_entry)
    for backup_id in ("0123abcd", "../etc", ".hidden"):
        with pytest.raises(BackupNotFound):
            await agent.async_get_backup(backup_id)
        with pytest.raises(BackupNotFound):
            await agent.async_download_backup(backup_id)
        with pytest.raises(BackupNotFound):
            await agent.async_delete_backup(backup_id)
    client = await hass_client()
    response = await client.get(
        f"/api/backup/download/0123abcd?agent_id={agent_id_of(backup_entry)}"
    )
    assert response.status == 404


async def test_upload_reports_progress_and_checksum(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """on_progress (Home Assistant 2026.4+) sees growing byte counts up to the size."""
    data = os.urandom(40 * 1024 * 1024 + 5)
    backup = make_backup("9a0c0001", len(data))
    seen: list[int] = []
    await upload(
        agent_of(hass, backup_entry),
        backup,
        data,
        on_progress=lambda *, bytes_uploaded: seen.append(bytes_uploaded),
    )
    assert seen == sorted(seen)
    assert seen[-1] == len(data)
    assert len(seen) > 1
    archive = backups_dir(backup_target) / suggested_filename(backup)
    assert archive.read_bytes() == data
    assert (await agent_of(hass, backup_entry).async_get_backup("9a0c0001")) == backup


async def test_upload_shorter_than_announced_keeps_nothing(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """A stream that ends early is an error and leaves no file behind."""
    backup = make_backup("5407e001", 10 * 1024 * 1024)
    with pytest.raises(BackupAgentError, match="were expected"):
        await upload(agent_of(hass, backup_entry), backup, os.urandom(6 * 1024 * 1024))
    assert visible_files(backup_target) == []


async def test_renaming_the_entry_renames_the_location(
    backup_entry: MockConfigEntry, hass: HomeAssistant, hass_ws_client: WebSocketGenerator
) -> None:
    """A new title reaches the backup settings page, and the manager is told to reload agents."""
    calls: list[None] = []
    remove = backup_platform.async_register_backup_agents_listener(
        hass, listener=lambda: calls.append(None)
    )
    hass.config_entries.async_update_entry(backup_entry, title="Garage NAS")
    await hass.async_block_till_done()
    remove()

    assert calls, "the backup manager's listeners were not told"
    ws = await hass_ws_client(hass)
    agents = await ws_call(ws, {"type": "backup/agents/info"})
    assert {"agent_id": agent_id_of(backup_entry), "name": "Garage NAS"} in agents["agents"]
    assert agent_of(hass, backup_entry).name == "Garage NAS"


async def test_drive_kept_awake_until_its_upload_starts(
    backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """pre-backup wakes the drive; it stays awake after post-backup, until the upload starts."""
    client = backup_entry.runtime_data.client
    await client.close()
    await backup_platform.async_pre_backup(hass)
    await backup_platform.async_post_backup(hass)
    keeper = backup_entry.runtime_data.keep_awake
    assert keeper is not None
    assert keeper.active
    async with asyncio.timeout(SETTLE_SECONDS):
        while not client.connected:  # the first wake reconnects
            await asyncio.sleep(0.05)

    data = os.urandom(1024)
    await upload(agent_of(hass, backup_entry), make_backup("a3a4e001", len(data)), data)
    assert not keeper.active


async def test_a_wake_stopped_midway_leaves_no_probe_file(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """An upload starting while the drive is being woken finds no probe file left in the folder."""
    keeper = DriveKeeper(hass, backup_entry)
    # Stopped at staggered moments, so that some stops land inside a wake's write and remove.
    for attempt in range(40):
        keeper.start()
        await asyncio.sleep(attempt * 0.0005)
        await keeper.async_stop()
    assert visible_files(backup_target) == []


async def test_keeping_awake_ends_at_the_ceiling(
    backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """A backup that never uploads to the drive (another location's) lets it rest after all."""
    await backup_platform.async_pre_backup(hass)
    await backup_platform.async_post_backup(hass)
    keeper = backup_entry.runtime_data.keep_awake
    assert keeper is not None
    assert keeper.active
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=KEEP_AWAKE_CEILING + 1))
    await hass.async_block_till_done()
    assert not keeper.active


async def test_pre_backup_never_waits_for_a_hanging_drive(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A drive that accepts connections but never answers does not hold up the backup."""
    await hass.async_add_executor_job(backup_target.stop)
    with socket.socket() as hanging:
        # Connections queue in the backlog and then wait for an SSH banner that never comes.
        hanging.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hanging.bind(("127.0.0.1", backup_target.sftp_port))
        hanging.listen()
        await backup_platform.async_pre_backup(hass)
        assert "did not wake up" not in caplog.text, "pre-backup waited for the drive"
        async with asyncio.timeout(SETTLE_SECONDS):
            while "did not wake up" not in caplog.text:
                await asyncio.sleep(0.1)
    assert caplog.text.count("did not wake up") == 1
    keeper = backup_entry.runtime_data.keep_awake
    assert keeper is not None
    keeper.stop()


async def test_one_connection_serves_every_call(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """Upload, list, get, download and delete share the session opened at setup."""
    agent = agent_of(hass, backup_entry)
    data = os.urandom(3 * 1024 * 1024)
    backup = make_backup("c0de0001", len(data))
    await upload(agent, backup, data)
    backup_entry.runtime_data.client.invalidate_cache()
    assert [b.backup_id for b in await agent.async_list_backups()] == ["c0de0001"]
    assert await agent.async_get_backup("c0de0001") == backup
    stream = await agent.async_download_backup("c0de0001")
    assert b"".join([chunk async for chunk in stream]) == data
    await agent.async_delete_backup("c0de0001")
    assert backup_target.log.count("SFTP login as") == 1, backup_target.log


async def test_diagnostics_redact_secrets(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
) -> None:
    """Diagnostics describe the drive without its password."""
    write_core_sftp_backup(backup_target, make_backup("d1a90001", 3), b"abc")
    backup_entry.runtime_data.client.invalidate_cache()
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, backup_entry)
    text = json.dumps(diagnostics)
    assert backup_target.password not in text
    assert diagnostics["entry"]["data"]["password"] == "**REDACTED**"
    assert diagnostics["drive"]["backups"] == 1
    assert diagnostics["connection"]["connected"] is True
    assert diagnostics["host_key_fingerprint"].startswith("SHA256:")
