"""Downloads through the agent: abandoned streams let go of the file, damaged bytes are refused."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from homeassistant.components.backup import AgentBackup, BackupAgentError, suggested_filename
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.backup_drive.backup import BackupDriveAgent
from custom_components.backup_drive.const import DOMAIN
from tests.backup_target import BackupTarget
from tests.integration.test_backup import (
    agent_id_of,
    agent_of,
    backups_dir,
    make_backup,
    upload,
)

MIB = 1024 * 1024


def handles_on(pid: int, path: Path) -> list[str]:
    """Return the descriptors of process `pid` that have `path` open."""
    found = []
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(descriptor) == str(path):
                found.append(descriptor.name)
    return found


async def test_closing_a_download_releases_the_file(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """aclose() on a half-read download closes the server's handle on the archive at once."""
    agent = agent_of(hass, backup_entry)
    # Larger than the reads in flight, so that reads are still outstanding when it is closed.
    data = os.urandom(24 * MIB)
    backup = make_backup("c105e001", len(data))
    await upload(agent, backup, data)
    archive = backups_dir(backup_target) / suggested_filename(backup)
    assert backup_target.process is not None
    server_pid = backup_target.process.pid

    stream = await agent.async_download_backup(backup.backup_id)
    first = await anext(aiter(stream))
    assert first == data[: len(first)]
    assert handles_on(server_pid, archive), "the download should hold the archive open"
    await stream.aclose()  # type: ignore[attr-defined]
    # Checked before this task yields to the loop again: the handle must be closed by aclose()
    # itself (the server closes the file before it answers the close request), not by the
    # finalizer that the loop runs later for an abandoned generator.
    assert handles_on(server_pid, archive) == []


async def store_random_backup(
    agent: BackupDriveAgent, target: BackupTarget, size: int
) -> tuple[AgentBackup, bytes, Path]:
    """Upload `size` random bytes through the agent; return the backup, the bytes, the archive."""
    data = os.urandom(size)
    backup = make_backup("da3a9e01", size)
    await upload(agent, backup, data)
    return backup, data, backups_dir(target) / suggested_filename(backup)


def flip_byte(path: Path, offset: int) -> None:
    """Invert one byte of a file in place, keeping its size."""
    with path.open("r+b") as file:
        file.seek(offset)
        original = file.read(1)
        file.seek(offset)
        file.write(bytes([original[0] ^ 0xFF]))


def cut_short(path: Path, offset: int) -> None:
    """Truncate a file to `offset` bytes."""
    os.truncate(path, offset)


@pytest.mark.parametrize(
    ("damage", "offset"),
    [
        (flip_byte, 7 * MIB + 3),  # deep inside a middle block
        (flip_byte, 10 * MIB + 100),  # in the last block
        (cut_short, 5 * MIB),
    ],
)
async def test_damaged_archive_is_refused(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    damage: Callable[[Path, int], None],
    offset: int,
) -> None:
    """Bytes that differ from the recorded sha256 or size end the download with a clear error."""
    agent = agent_of(hass, backup_entry)
    backup, data, archive = await store_random_backup(agent, backup_target, 10 * MIB + 4321)
    damage(archive, offset)

    received = 0
    with pytest.raises(BackupAgentError) as caught:
        stream = await agent.async_download_backup(backup.backup_id)
        async for chunk in stream:
            received += len(chunk)
    assert received < len(data), "a damaged backup must never look complete"
    assert caught.value.translation_domain == DOMAIN
    assert caught.value.translation_key == "backup_damaged"
    assert caught.value.translation_placeholders is not None
    assert caught.value.translation_placeholders["title"] == "Backup Drive"
    assert suggested_filename(backup) in str(caught.value)


async def test_damaged_archive_over_http_is_not_served_whole(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
) -> None:
    """Home Assistant's download view never hands out a damaged backup as a complete file."""
    backup, data, archive = await store_random_backup(
        agent_of(hass, backup_entry), backup_target, 3 * MIB + 5
    )
    flip_byte(archive, 2 * MIB)

    client = await hass_client()
    received = b""
    with contextlib.suppress(Exception):
        response = await client.get(
            f"/api/backup/download/{backup.backup_id}?agent_id={agent_id_of(backup_entry)}"
        )
        received = await response.read()
    assert len(received) < len(data)
