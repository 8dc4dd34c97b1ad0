"""The listing index: read on a cold start, trusted only while it matches, repaired after others."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.backup_drive.client import BackupDriveClient
from custom_components.backup_drive.listing_index import INDEX_NAME
from custom_components.backup_drive.session import ServerSettings
from custom_components.backup_drive.sidecar import StoredBackup
from tests.backup_target import HOMEASSISTANT_USER, BackupTarget
from tests.integration.entries import KeyAccount
from tests.integration.test_backup import (
    agent_of,
    backups_dir,
    make_backup,
    upload,
    write_core_sftp_backup,
)

# Metadata files written this long ago are clearly older than any index written by the test.
LONG_AGO = 3600

type ClientFactory = Callable[..., BackupDriveClient]


@pytest.fixture
async def new_client(
    backup_target: BackupTarget, hass: HomeAssistant
) -> AsyncIterator[ClientFactory]:
    """Make clients as a freshly started Home Assistant would have them: nothing in memory."""
    made: list[BackupDriveClient] = []

    def make(username: str = HOMEASSISTANT_USER, password: str | None = None) -> BackupDriveClient:
        client = BackupDriveClient(
            ServerSettings(
                host="127.0.0.1",
                port=backup_target.sftp_port,
                username=username,
                password=password or backup_target.password,
                host_key=backup_target.host_key,
                path="/backups",
            )
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def store_old_backups(target: BackupTarget, count: int, name: str = "Alpha") -> None:
    """Store backups as core's sftp_storage would, with metadata files dated long ago."""
    for index in range(count):
        write_core_sftp_backup(target, make_backup(f"01d{index:05d}", 3, name=name), b"abc")
    age_sidecars(target)


def age_sidecars(target: BackupTarget) -> None:
    """Date every metadata file LONG_AGO."""
    then = time.time() - LONG_AGO
    for sidecar in backups_dir(target).glob(".*.metadata.json"):
        os.utime(sidecar, (then, then))


def rewrite_keeping_stamp(sidecar: Path, old: str, new: str) -> None:
    """Change a metadata file's content without changing its size or modification time."""
    assert len(old) == len(new)
    stat = sidecar.stat()
    sidecar.write_text(sidecar.read_text().replace(old, new))
    os.utime(sidecar, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sidecar.stat().st_size == stat.st_size


def indexed_names(target: BackupTarget) -> set[str]:
    """Return the metadata file names the index on disk holds."""
    index = json.loads((backups_dir(target) / INDEX_NAME).read_text())
    return set(index["sidecars"])


def names_of(listing: dict[str, StoredBackup]) -> dict[str, str]:
    """Return backup id -> name of a listing."""
    return {backup_id: stored.backup.name for backup_id, stored in listing.items()}


async def test_cold_start_lists_from_the_index(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, new_client: ClientFactory
) -> None:
    """A new client takes unchanged metadata files from the index instead of reading them."""
    store_old_backups(backup_target, 20)
    first = await new_client().list_backups(fresh=True)
    assert len(first) == 20
    assert indexed_names(backup_target) == {f".01d{i:05d}.metadata.json" for i in range(20)}

    # Same size, same mtime, other content: only a listing that trusted the index misses it.
    rewrite_keeping_stamp(backups_dir(backup_target) / ".01d00007.metadata.json", "Alpha", "Omega")
    cold = await new_client().list_backups(fresh=True)
    assert set(names_of(cold).values()) == {"Alpha"}


async def test_index_is_repaired_after_other_writers(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, new_client: ClientFactory
) -> None:
    """Metadata files added, changed or removed behind our back are read, and the index follows."""
    store_old_backups(backup_target, 5)
    await new_client().list_backups(fresh=True)

    folder = backups_dir(backup_target)
    (folder / ".01d00001.metadata.json").unlink()
    write_core_sftp_backup(backup_target, make_backup("01d00002", 3, name="Changed name"), b"abc")
    write_core_sftp_backup(backup_target, make_backup("0e100001", 3, name="Added"), b"abc")
    listing = names_of(await new_client().list_backups(fresh=True))
    assert listing == {
        "01d00000": "Alpha",
        "01d00002": "Changed name",
        "01d00003": "Alpha",
        "01d00004": "Alpha",
        "0e100001": "Added",
    }
    assert indexed_names(backup_target) == {f".{backup_id}.metadata.json" for backup_id in listing}


async def test_file_rewritten_in_the_index_second_is_read_again(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, new_client: ClientFactory
) -> None:
    """A metadata file whose mtime is not older than the index is not taken from it.

    With whole-second mtimes, a file rewritten in the second the index was written could keep
    its size and mtime: the index cannot vouch for it.
    """
    store_old_backups(backup_target, 3)
    await new_client().list_backups(fresh=True)
    sidecar = backups_dir(backup_target) / ".01d00001.metadata.json"
    same_second = sidecar.stat().st_mtime
    os.utime(backups_dir(backup_target) / INDEX_NAME, (same_second, same_second))
    rewrite_keeping_stamp(sidecar, "Alpha", "Omega")
    listing = names_of(await new_client().list_backups(fresh=True))
    assert listing["01d00001"] == "Omega"
    assert set(listing.values()) == {"Alpha", "Omega"}


async def test_unreadable_index_is_rebuilt(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, new_client: ClientFactory
) -> None:
    """An index that is not ours or is damaged is ignored and written again."""
    store_old_backups(backup_target, 3)
    (backups_dir(backup_target) / INDEX_NAME).write_text('{"version": 1, "sidecars": ')
    assert len(await new_client().list_backups(fresh=True)) == 3
    assert len(indexed_names(backup_target)) == 3


async def test_index_follows_every_upload_and_delete(
    backup_target: BackupTarget, backup_entry: MockConfigEntry, hass: HomeAssistant
) -> None:
    """Our own uploads and deletes rewrite the index at once."""
    agent = agent_of(hass, backup_entry)
    backup = make_backup("1de70001", 5)
    await upload(agent, backup, b"12345")
    assert indexed_names(backup_target) == {".1de70001.metadata.json"}
    await agent.async_delete_backup("1de70001")
    assert indexed_names(backup_target) == set()


async def test_read_only_account_lists_without_an_index(
    backup_target: BackupTarget,
    backup_entry: MockConfigEntry,
    new_client: ClientFactory,
    accounts: dict[str, KeyAccount],
) -> None:
    """An account that may not write still lists every backup; the index is simply not kept."""
    store_old_backups(backup_target, 3)
    # The read-write entry's first poll already keeps an index: start the reader without one.
    (backups_dir(backup_target) / INDEX_NAME).unlink(missing_ok=True)
    reader = accounts["reader"]
    client = new_client(reader.username, reader.password)
    assert len(await client.list_backups(fresh=True)) == 3
    assert not (backups_dir(backup_target) / INDEX_NAME).exists()
