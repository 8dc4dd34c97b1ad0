"""What core's sftp_storage does, for comparison: its upload pattern and its listing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
from homeassistant.components.backup import AgentBackup, suggested_filename

from bench.agent_report import MIB, SIDECARS
from custom_components.backup_drive.client import BackupDriveClient
from custom_components.backup_drive.sidecar import sidecar_name
from tests.backup_target import HOMEASSISTANT_USER, BackupTarget

MANAGER_CHUNK = MIB  # Home Assistant's manager reads local backups in 1 MiB chunks
CORE_CHUNK = 64 * 1024


async def file_stream(path: Path, chunk: int = MANAGER_CHUNK) -> AsyncIterator[bytes]:
    """Read a file as Home Assistant's manager does: 1 MiB reads in the executor."""
    loop = asyncio.get_running_loop()
    file = await loop.run_in_executor(None, path.open, "rb")
    try:
        while data := await loop.run_in_executor(None, file.read, chunk):
            yield data
    finally:
        await loop.run_in_executor(None, file.close)


def agent_backup(backup_id: str, size: int) -> AgentBackup:
    """Return metadata for a benchmark backup."""
    return AgentBackup(
        addons=[],
        backup_id=backup_id,
        date="2025-06-03T01:00:00.000000+00:00",
        database_included=True,
        extra_metadata={},
        folders=[],
        homeassistant_included=True,
        homeassistant_version="2025.4.4",
        name=f"Bench {backup_id}",
        protected=False,
        size=size,
    )


@asynccontextmanager
async def core_sftp(target: BackupTarget) -> AsyncIterator[asyncssh.SFTPClient]:
    """Open an SFTP session as core's sftp_storage does: asyncssh defaults, password login."""
    async with (
        asyncssh.connect(
            "127.0.0.1",
            target.sftp_port,
            username=HOMEASSISTANT_USER,
            password=target.password,
            known_hosts=([asyncssh.import_public_key(target.host_key)], [], []),
            client_keys=[],
            agent_path=None,
            config=None,
        ) as connection,
        connection.start_sftp_client() as sftp,
    ):
        yield sftp


async def core_pattern_upload(target: BackupTarget, source: Path, remote: str) -> float:
    """Upload as core's sftp_storage does: default options, one awaited write per chunk."""
    async with core_sftp(target) as sftp:
        start = time.perf_counter()
        async with sftp.open(remote, "wb") as file:
            async for block in file_stream(source):
                for offset in range(0, len(block), CORE_CHUNK):
                    await file.write(block[offset : offset + CORE_CHUNK])
        return time.perf_counter() - start


async def sequential_sidecars(client: BackupDriveClient, target: BackupTarget) -> float:
    """List as core's sftp_storage does: read the sidecars one after another."""
    async with core_sftp(target) as sftp:
        start = time.perf_counter()
        names = [n for n in await sftp.listdir(client.path) if n.endswith(".metadata.json")]
        found = []
        for name in names:
            async with sftp.open(f"{client.path}/{name}", "r") as file:
                found.append(AgentBackup.from_dict(json.loads(await file.read())["metadata"]))
        elapsed = time.perf_counter() - start
    assert len(found) == SIDECARS, len(found)
    return elapsed


def write_sidecars(folder: Path) -> None:
    """Store SIDECARS small backups in core's layout, each with its sidecar."""
    for index in range(SIDECARS):
        backup = agent_backup(f"list{index:05d}", 10)
        name = suggested_filename(backup)
        (folder / name).write_bytes(b"0123456789")
        sidecar = {"file_path": f"/backups/{name}", "metadata": backup.as_dict(), "size": 10}
        (folder / sidecar_name(backup.backup_id)).write_text(json.dumps(sidecar))
