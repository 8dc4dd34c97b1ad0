"""Verification of stored backups through Home Assistant: damage found, repairs, uploads first."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from homeassistant.components.backup import suggested_filename
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.backup_drive.const import DOMAIN
from tests.backup_target import BackupTarget
from tests.integration.test_backup import (
    SETTLE_SECONDS,
    agent_of,
    backups_dir,
    make_backup,
    upload,
    write_core_sftp_backup,
)
from tests.integration.test_health import (
    coordinator_of,
    health_file,
    issue,
    state_of_key,
    tar_archive,
)


async def test_verification_finds_damage_and_offers_repairs(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
) -> None:
    """A flipped byte is a mismatch, a cut archive unreadable; a core backup gets its sha256."""
    assert await async_setup_component(hass, "repairs", {})
    agent = agent_of(hass, backup_entry)
    archives: dict[str, Path] = {}
    for backup_id, name in (("f1ed0001", "Flipped"), ("c0700002", "Cut"), ("600d0003", "Good")):
        data = tar_archive(3 * 1024 * 1024)
        backup = make_backup(backup_id, len(data), name=name)
        await upload(agent, backup, data)
        archives[backup_id] = backups_dir(backup_target) / suggested_filename(backup)
    core_data = tar_archive(1024 * 1024)
    write_core_sftp_backup(backup_target, make_backup("c02e0004", len(core_data)), core_data)
    backup_entry.runtime_data.client.invalidate_cache()

    with archives["f1ed0001"].open("r+b") as file:
        file.seek(2 * 1024 * 1024)
        flipped = file.read(1)[0] ^ 0x01
        file.seek(2 * 1024 * 1024)
        file.write(bytes([flipped]))
    with archives["c0700002"].open("r+b") as file:
        file.truncate(1024 * 1024)

    await hass.services.async_call(
        "button",
        "press",
        {"entity_id": state_of_key(hass, backup_entry, "button", "verify_backups").entity_id},
        blocking=True,
    )
    task = coordinator_of(backup_entry).verification
    assert task is not None
    async with asyncio.timeout(SETTLE_SECONDS):
        await task
    await hass.async_block_till_done()

    results = health_file(backup_target)["backups"]
    assert {key: value["result"] for key, value in results.items()} == {
        "f1ed0001": "mismatch",
        "c0700002": "unreadable",
        "600d0003": "ok",
        "c02e0004": "ok",
    }
    assert results["c02e0004"]["sha256"] == hashlib.sha256(core_data).hexdigest()
    assert health_file(backup_target)["last_verified"] is not None
    assert "backup_corrupted" in health_file(backup_target)["problems"]
    assert state_of_key(hass, backup_entry, "sensor", "last_verified").state != "unknown"
    assert state_of_key(hass, backup_entry, "binary_sensor", "backup_problem").state == "on"
    flipped_issue = issue(hass, f"backup_corrupted_{backup_entry.entry_id}_f1ed0001")
    assert flipped_issue is not None
    assert flipped_issue.is_fixable
    assert flipped_issue.translation_placeholders is not None
    assert flipped_issue.translation_placeholders["name"] == "Flipped"
    stored_at = dt_util.as_local(datetime.fromisoformat("2025-06-03T01:00:00+00:00"))
    assert flipped_issue.translation_placeholders["date"] == stored_at.strftime("%Y-%m-%d %H:%M")
    assert issue(hass, f"backup_corrupted_{backup_entry.entry_id}_c0700002") is not None

    client = await hass_client()
    for backup_id, choice in (("f1ed0001", "delete"), ("c0700002", "keep")):
        response = await client.post(
            "/api/repairs/issues/fix",
            json={
                "handler": DOMAIN,
                "issue_id": f"backup_corrupted_{backup_entry.entry_id}_{backup_id}",
            },
        )
        flow = await response.json()
        assert flow["type"] == "menu", flow
        response = await client.post(
            f"/api/repairs/issues/fix/{flow['flow_id']}", json={"next_step_id": choice}
        )
        assert (await response.json())["type"] == "create_entry"
    await hass.async_block_till_done()

    assert not archives["f1ed0001"].exists()
    assert archives["c0700002"].exists()
    assert issue(hass, f"backup_corrupted_{backup_entry.entry_id}_f1ed0001") is None
    assert issue(hass, f"backup_corrupted_{backup_entry.entry_id}_c0700002") is None
    assert state_of_key(hass, backup_entry, "binary_sensor", "backup_problem").state == "off"
    assert "f1ed0001" not in health_file(backup_target)["backups"]


async def test_verification_waits_for_an_upload_to_the_same_drive(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """A verification asked for during an upload reads nothing until the upload is done."""
    agent = agent_of(hass, backup_entry)
    first = tar_archive(1024 * 1024)
    await upload(agent, make_backup("0a110001", len(first), name="Stored"), first)
    second = tar_archive(2 * 1024 * 1024)
    release = asyncio.Event()
    halfway = asyncio.Event()

    async def slow_stream() -> AsyncIterator[bytes]:
        yield second[: len(second) // 2]
        halfway.set()
        await release.wait()
        yield second[len(second) // 2 :]

    async def open_stream() -> AsyncIterator[bytes]:
        return slow_stream()

    uploading = hass.async_create_task(
        agent.async_upload_backup(
            open_stream=open_stream, backup=make_backup("0a110002", len(second), name="Late")
        )
    )
    await halfway.wait()
    coordinator = coordinator_of(backup_entry)
    assert coordinator.start_verification()
    task = coordinator.verification
    assert task is not None
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()
    assert health_file(backup_target)["backups"] == {}, "nothing may be verified meanwhile"

    release.set()
    async with asyncio.timeout(SETTLE_SECONDS):
        await uploading
        await task
    results = health_file(backup_target)["backups"]
    assert {key: value["result"] for key, value in results.items()} == {
        "0a110001": "ok",
        "0a110002": "ok",
    }
