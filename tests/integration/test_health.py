"""The drive's health in Home Assistant: entities, the health file, repairs, verification."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import tarfile
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.backup import BackupAgentError
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.backup_drive.backup import BackupDriveAgent
from custom_components.backup_drive.const import CONF_STALE_DAYS, CONF_VERIFY_DAYS, DOMAIN
from custom_components.backup_drive.coordinator import BackupDriveCoordinator
from custom_components.backup_drive.health_record import HEALTH_FILE_NAME
from tests.backup_target import BackupTarget
from tests.integration.entries import entry_data, set_up_entry, stop_target, take_drive_away
from tests.integration.test_backup import (
    agent_id_of,
    agent_of,
    backups_dir,
    chunks,
    make_backup,
    upload,
    wait_for_backup_done,
    ws_call,
)
from tests.peers import require_tool

GB = 1000**3
MIB = 1024 * 1024
ENTITY_KEYS = {
    "sensor": ("free_space", "total_space", "backups_stored", "backups_size"),
    "sensor ": ("last_upload", "last_verified"),
    "binary_sensor": ("connected", "backup_problem"),
    "button": ("verify_backups",),
}


def coordinator_of(entry: MockConfigEntry) -> BackupDriveCoordinator:
    """Return the entry's coordinator."""
    coordinator: BackupDriveCoordinator = entry.runtime_data.coordinator
    return coordinator


def state_of_key(hass: HomeAssistant, entry: MockConfigEntry, platform: str, key: str) -> State:
    """Return the state of the entry's entity with translation key `key`."""
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{entry.entry_id}_{key}")
    assert entity_id is not None, key
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


async def refresh(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Poll the drive now, as the coordinator does every few minutes."""
    await coordinator_of(entry).async_refresh()
    await hass.async_block_till_done()


def tar_archive(member_size: int) -> bytes:
    """Return a small real tar archive, shaped like a backup: a JSON file and a payload."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (
            ("backup.json", b'{"slug": "test"}'),
            ("data.tar", os.urandom(member_size)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def health_file(target: BackupTarget) -> dict[str, Any]:
    """Return the health file as the add-on's page reads it."""
    content: dict[str, Any] = json.loads((backups_dir(target) / HEALTH_FILE_NAME).read_text())
    return content


def issue(hass: HomeAssistant, issue_id: str) -> ir.IssueEntry | None:
    """Return one of our repair issues, if open."""
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id)


def assert_problem(
    hass: HomeAssistant, entry: MockConfigEntry, issue_id: str, *, shown: bool
) -> None:
    """Assert a repair is open (or not), and backup_problem with it (when it is the only one)."""
    assert (issue(hass, issue_id) is not None) is shown, issue_id
    problem = state_of_key(hass, entry, "binary_sensor", "backup_problem").state
    assert problem == ("on" if shown else "off")


async def test_entities_follow_the_drive(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
) -> None:
    """Every entity exists by key; after a backup they show the folder's space and contents."""
    # Before the first client starts the web server, whose routes are then frozen.
    assert await async_setup_component(hass, "diagnostics", {})
    registry = er.async_get(hass)
    for platform, keys in ENTITY_KEYS.items():
        for key in keys:
            entity_id = registry.async_get_entity_id(
                platform.strip(), DOMAIN, f"{backup_entry.entry_id}_{key}"
            )
            assert entity_id is not None, key
            entity = registry.async_get(entity_id)
            assert entity is not None
            assert entity.translation_key == key
            assert entity.has_entity_name
    assert state_of_key(hass, backup_entry, "sensor", "backups_stored").state == "0"
    assert state_of_key(hass, backup_entry, "binary_sensor", "connected").state == "on"
    assert state_of_key(hass, backup_entry, "binary_sensor", "backup_problem").state == "off"
    assert state_of_key(hass, backup_entry, "sensor", "last_upload").state == "unknown"

    # Timestamp states are whole seconds.
    before = dt_util.utcnow().replace(microsecond=0)
    ws = await hass_ws_client(hass)
    agent_id = agent_id_of(backup_entry)
    await ws_call(ws, {"type": "backup/generate", "agent_ids": [agent_id], "name": "Health"})
    info = await wait_for_backup_done(ws)
    assert info["last_action_event"]["state"] == "completed", info
    assert [b["name"] for b in info["backups"]] == ["Health"], "the health file is no backup"
    [archive] = backups_dir(backup_target).glob("*.tar")

    await refresh(hass, backup_entry)
    vfs = os.statvfs(backups_dir(backup_target))
    free = float(state_of_key(hass, backup_entry, "sensor", "free_space").state) * GB
    total = float(state_of_key(hass, backup_entry, "sensor", "total_space").state) * GB
    # Other programs write on the same disk meanwhile: free space agrees within a margin.
    assert abs(free - vfs.f_bavail * vfs.f_frsize) < 64 * 1024 * 1024
    assert total == round(vfs.f_blocks * vfs.f_frsize / GB, 6) * GB or (
        abs(total - vfs.f_blocks * vfs.f_frsize) < 0.01 * GB
    )
    assert state_of_key(hass, backup_entry, "sensor", "backups_stored").state == "1"
    size = float(state_of_key(hass, backup_entry, "sensor", "backups_size").state) * GB
    assert abs(size - archive.stat().st_size) < 0.01 * GB

    last_upload = state_of_key(hass, backup_entry, "sensor", "last_upload").state
    assert before <= datetime.fromisoformat(last_upload) <= dt_util.utcnow()
    history = health_file(backup_target)
    assert history["version"] == 1
    recorded = datetime.fromisoformat(history["last_upload"]).replace(microsecond=0)
    assert recorded == datetime.fromisoformat(last_upload)
    assert history["problems"] == []

    await hass.config_entries.async_reload(backup_entry.entry_id)
    await hass.async_block_till_done()
    assert state_of_key(hass, backup_entry, "sensor", "last_upload").state == last_upload

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, backup_entry)
    assert diagnostics["health"]["last_upload"] == history["last_upload"]
    assert diagnostics["health"]["connected"] is True
    assert backup_target.password not in json.dumps(diagnostics)


async def test_stale_backups_follow_the_schedule(
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    freezer: FrozenDateTimeFactory,
) -> None:
    """With daily backups, 3 days without one raise stale_backups; the next backup clears it."""
    ws = await hass_ws_client(hass)
    await ws_call(ws, {"type": "backup/config/update", "schedule": {"recurrence": "daily"}})
    form = await hass.config_entries.options.async_init(backup_entry.entry_id)
    schema = form["data_schema"]
    assert schema is not None
    defaults = {str(key): key.default() for key in schema.schema}
    assert defaults == {CONF_STALE_DAYS: 3, CONF_VERIFY_DAYS: 7}
    # These uploads are no tar archives; a scheduled verification would find them damaged.
    await hass.config_entries.options.async_configure(
        form["flow_id"], {CONF_STALE_DAYS: 3, CONF_VERIFY_DAYS: 0}
    )
    # Time travel below expires the client's token, and no schedule timer may outlive the test.
    await ws_call(ws, {"type": "backup/config/update", "schedule": {"recurrence": "never"}})

    agent = agent_of(hass, backup_entry)
    await upload(agent, make_backup("57a1e001", 10), b"0123456789")
    stale_id = f"stale_backups_{backup_entry.entry_id}"
    await refresh(hass, backup_entry)
    assert issue(hass, stale_id) is None

    freezer.tick(timedelta(days=2, hours=23))
    await refresh(hass, backup_entry)
    assert issue(hass, stale_id) is None
    freezer.tick(timedelta(hours=2))
    await refresh(hass, backup_entry)
    raised = issue(hass, stale_id)
    assert raised is not None
    assert raised.translation_placeholders is not None
    assert raised.translation_placeholders["days"] == "3"
    assert_problem(hass, backup_entry, stale_id, shown=True)

    await upload(agent, make_backup("57a1e002", 10), b"0123456789")
    await hass.async_block_till_done()
    assert_problem(hass, backup_entry, stale_id, shown=False)


async def test_drive_away_raises_unreachable_only_after_grace_and_a_due_backup(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
) -> None:
    """connected goes off at once; the repair waits for the grace time and a failed backup."""
    unreachable_id = f"drive_unreachable_{backup_entry.entry_id}"
    await take_drive_away(hass, backup_target, backup_entry)
    await refresh(hass, backup_entry)
    assert state_of_key(hass, backup_entry, "binary_sensor", "connected").state == "off"
    assert state_of_key(hass, backup_entry, "sensor", "free_space").state == "unavailable"

    # With time frozen the backup manager's own waits never end: upload through the agent.
    with pytest.raises(BackupAgentError) as unreachable:
        await upload(agent_of(hass, backup_entry), make_backup("a3a70001", 10), b"0123456789")
    assert unreachable.value.translation_key == "cannot_connect"
    await refresh(hass, backup_entry)
    assert issue(hass, unreachable_id) is None, "a short blip raises nothing"

    freezer.tick(timedelta(minutes=6))
    await refresh(hass, backup_entry)
    assert_problem(hass, backup_entry, unreachable_id, shown=True)

    await hass.async_add_executor_job(backup_target.start)
    await refresh(hass, backup_entry)
    assert_problem(hass, backup_entry, unreachable_id, shown=False)
    assert state_of_key(hass, backup_entry, "binary_sensor", "connected").state == "on"


async def test_drive_away_without_a_due_backup_raises_nothing(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Hours away with no backup due or failed: connected is off, and no repair nags."""
    await take_drive_away(hass, backup_target, backup_entry)
    await refresh(hass, backup_entry)
    freezer.tick(timedelta(hours=2))
    await refresh(hass, backup_entry)
    assert state_of_key(hass, backup_entry, "binary_sensor", "connected").state == "off"
    assert issue(hass, f"drive_unreachable_{backup_entry.entry_id}") is None


async def test_location_stays_while_the_drive_is_away(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """An entry set up before loads without its drive: still a location, reporting it away."""
    await hass.config_entries.async_unload(backup_entry.entry_id)
    await hass.async_add_executor_job(backup_target.stop)
    await hass.config_entries.async_setup(backup_entry.entry_id)
    await hass.async_block_till_done()
    assert backup_entry.state is ConfigEntryState.LOADED
    assert state_of_key(hass, backup_entry, "binary_sensor", "connected").state == "off"
    assert state_of_key(hass, backup_entry, "sensor", "backups_stored").state == "unavailable"

    ws = await hass_ws_client(hass)
    agents = await ws_call(ws, {"type": "backup/agents/info"})
    assert agent_id_of(backup_entry) in [agent["agent_id"] for agent in agents["agents"]]
    info = await ws_call(ws, {"type": "backup/info"})
    assert "unreachable" in info["agent_errors"][agent_id_of(backup_entry)]

    await hass.async_add_executor_job(backup_target.start)
    await refresh(hass, backup_entry)
    assert state_of_key(hass, backup_entry, "binary_sensor", "connected").state == "on"
    assert state_of_key(hass, backup_entry, "sensor", "backups_stored").state == "0"


@pytest.mark.root
async def test_backup_that_cannot_fit_writes_nothing(
    small_drive: Path, hass: HomeAssistant, tmp_path: Path, socket_enabled: None
) -> None:
    """Pre-flight: refused before a byte is written, translated; not_enough_space comes and goes."""
    inotifywait = require_tool("inotifywait", "inotify-tools")
    target = BackupTarget(storage=small_drive, data_dir=tmp_path / "data")
    await hass.async_add_executor_job(target.start)
    try:
        entry = await set_up_entry(
            hass, entry_data(target), expect=ConfigEntryState.LOADED, title="Small drive"
        )
        agent = BackupDriveAgent(hass, entry)
        kept = make_backup("0005aaaa", 8 * MIB, name="Kept")
        await upload(agent, kept, os.urandom(kept.size))
        space_id = f"not_enough_space_{entry.entry_id}"
        assert issue(hass, space_id) is None

        # Watch the folder from outside the server: any file created there would show.
        watcher = await asyncio.create_subprocess_exec(
            inotifywait, "-m", "-e", "create,moved_to", "--format", "%f", str(backups_dir(target)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert watcher.stderr is not None
        assert watcher.stdout is not None
        assert b"Watches established" in await watcher.stderr.readline() + (
            await watcher.stderr.readline()
        )
        opened: list[bool] = []

        async def open_stream() -> AsyncIterator[bytes]:
            opened.append(True)
            return chunks(os.urandom(12 * MIB))

        too_big = make_backup("0006bbbb", 12 * MIB, name="Too big")
        with pytest.raises(BackupAgentError) as refused:
            await agent.async_upload_backup(open_stream=open_stream, backup=too_big)
        watcher.terminate()
        created, _ = await watcher.communicate()
        # Only the health file changes (it records the new problem).
        backup_files = [n for n in created.decode().split() if HEALTH_FILE_NAME not in n]
        assert backup_files == [], "no backup file, not even a temporary one, may appear"
        assert opened == [], "the backup stream must not even be opened"
        assert re.fullmatch(
            r"The backup needs 1[0-9]\.[0-9] MB, [0-9.]+ MB free on Small drive\. "
            r"Nothing was written; free some space or delete old backups\.?",
            str(refused.value),
        ), str(refused.value)
        assert issue(hass, space_id) is not None

        await agent.async_delete_backup("0005aaaa")
        await refresh(hass, entry)
        assert issue(hass, space_id) is None
        await upload(agent, too_big, os.urandom(too_big.size))
    finally:
        await stop_target(hass, target)
