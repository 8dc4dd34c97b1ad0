"""Benchmark the backup_drive agent against OpenSSH's sftp and core sftp_storage's write pattern.

Runs against a real backup-drive-server on loopback and prints a table; it is not a test.

    .venv/bin/python bench/agent_bench.py                 # 1 GiB and 4 GiB, 1,000 sidecars
    .venv/bin/python bench/agent_bench.py --sizes 1       # only 1 GiB

Plain asyncio without debug mode, as Home Assistant runs. Needs OpenSSH's sftp and ssh-keygen,
and free disk under --work-dir for the source file plus one copy on the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "integration")]

import asyncssh  # noqa: E402
from homeassistant.components.backup import AgentBackup, suggested_filename  # noqa: E402

from bench.ha_instance import bench_client, drive_entry  # noqa: E402
from bench.process_stats import CpuMeter, RssSampler, markdown_table, write_random_file  # noqa: E402
from custom_components.backup_drive.backup import BackupDriveAgent  # noqa: E402
from custom_components.backup_drive.client import BackupDriveClient  # noqa: E402
from custom_components.backup_drive.sidecar import sidecar_name  # noqa: E402
from tests.backup_target import HOMEASSISTANT_USER, BackupTarget, user_option  # noqa: E402
from tests.ssh_keys import generate_key_pair  # noqa: E402

MIB = 1024 * 1024
GIB = 1024 * MIB
MANAGER_CHUNK = MIB  # Home Assistant's manager reads local backups in 1 MiB chunks
CORE_CHUNK = 64 * 1024
SIDECARS = 1000
BENCH_USER = "bench"


@dataclass
class Row:
    """One line of the result table: wall time and the CPU both ends spent."""

    what: str
    size: int
    seconds: float
    client_cpu: float = 0.0
    server_cpu: float = 0.0

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10^6 bytes)."""
        return self.size / self.seconds / 1e6 if self.size else 0.0


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


def openssh_sftp(target: BackupTarget, key: Path, known_hosts: Path, batch: str) -> float:
    """Run OpenSSH's sftp with a batch of commands; return the seconds it took."""
    batch_file = key.parent / "batch"
    batch_file.write_text(batch)
    args = [
        "sftp", "-q", "-b", str(batch_file), "-i", str(key),
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-P", str(target.sftp_port), f"{BENCH_USER}@127.0.0.1",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


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


def make_key(directory: Path) -> tuple[Path, str]:
    """Generate an ed25519 key for OpenSSH's client; return its path and public line."""
    key = directory / "id_ed25519"
    return key, generate_key_pair(key, ssh_keygen="ssh-keygen")


async def timed(coro: Coroutine[Any, Any, Any]) -> float:
    """Await a coroutine; return the seconds it took."""
    start = time.perf_counter()
    await coro
    return time.perf_counter() - start


async def drain(stream: AsyncIterator[bytes]) -> int:
    """Consume a download; return its length."""
    total = 0
    async for chunk in stream:
        total += len(chunk)
    return total


async def run(sizes: list[int], work_dir: Path) -> list[str]:
    """Run every measurement and return the table's lines."""
    key, public = make_key(work_dir)
    target = BackupTarget(
        storage=work_dir / "storage",
        data_dir=work_dir / "data",
        options={"users": [user_option(BENCH_USER, "bench-password-unused", public)]},
    ).start()
    known_hosts = work_dir / "known_hosts"
    known_hosts.write_text(target.known_hosts_line() + "\n")
    client = bench_client(target)
    async with drive_entry(client) as (hass, entry):
        agent = BackupDriveAgent(hass, entry)
        return await measure(
            sizes,
            work_dir=work_dir,
            target=target,
            openssh_login=(key, known_hosts),
            client=client,
            agent=agent,
        )


async def measure(
    sizes: list[int],
    *,
    work_dir: Path,
    target: BackupTarget,
    openssh_login: tuple[Path, Path],
    client: BackupDriveClient,
    agent: BackupDriveAgent,
) -> list[str]:
    """Time the agent (with its health tracking, as Home Assistant runs it) and the references."""
    key, known_hosts = openssh_login
    rows: dict[str, Row] = {}
    rss_growth: dict[int, int] = {}
    folder = target.storage / "backups"
    assert target.process is not None
    server_pid = target.process.pid

    def record(key: str, what: str, size: int, seconds: float, cpu: CpuMeter) -> None:
        rows[key] = Row(what, size, seconds, cpu.client, cpu.server)

    try:
        for gib in sizes:
            size = gib * GIB
            source = work_dir / f"source-{gib}g"
            write_random_file(source, size)
            label = f"{gib} GiB"

            backup = agent_backup(f"bench{gib}", size)
            remote_name = suggested_filename(backup)

            async def open_stream(source: Path = source) -> AsyncIterator[bytes]:
                return file_stream(source)

            rss = RssSampler()
            rss.watch("agent", os.getpid())
            with rss, CpuMeter(server_pid) as cpu:
                seconds = await timed(
                    agent.async_upload_backup(open_stream=open_stream, backup=backup)
                )
            rss_growth[gib] = rss.growth_kib("agent") * 1024
            assert (folder / remote_name).stat().st_size == size
            record(f"agent put {label}", f"agent upload {label}", size, seconds, cpu)

            with CpuMeter(server_pid) as cpu:
                stream = await agent.async_download_backup(backup.backup_id)
                start = time.perf_counter()
                assert await drain(stream) == size
                seconds = time.perf_counter() - start
            record(f"agent get {label}", f"agent download {label}", size, seconds, cpu)
            await agent.async_delete_backup(backup.backup_id)

            with CpuMeter(server_pid) as cpu:
                seconds = openssh_sftp(
                    target, key, known_hosts, f"put {source} /backups/openssh.tar\n"
                )
            record(f"openssh put {label}", f"OpenSSH sftp put {label}", size, seconds, cpu)
            with CpuMeter(server_pid) as cpu:
                seconds = openssh_sftp(
                    target, key, known_hosts, "get /backups/openssh.tar /dev/null\n"
                )
            record(f"openssh get {label}", f"OpenSSH sftp get {label}", size, seconds, cpu)
            (folder / "openssh.tar").unlink()

            if gib == min(sizes):
                with CpuMeter(server_pid) as cpu:
                    seconds = await core_pattern_upload(target, source, "/backups/core.tar")
                record("core put", f"one await per 64 KiB {label}", size, seconds, cpu)
                (folder / "core.tar").unlink()
            source.unlink()

        write_sidecars(folder)
        client.invalidate_cache()
        listed = 0

        async def list_fresh() -> None:
            nonlocal listed
            listed = len(await client.list_backups(fresh=True))

        with CpuMeter(server_pid) as cpu:
            seconds = await timed(list_fresh())
        assert listed == SIDECARS, listed
        record("agent list", f"agent list {SIDECARS} backups", 0, seconds, cpu)
        with CpuMeter(server_pid) as cpu:
            seconds = await timed(list_fresh())
        record("agent relist", "agent list again, none changed", 0, seconds, cpu)
        with CpuMeter(server_pid) as cpu:
            seconds = await sequential_sidecars(client, target)
        record("core list", f"sequential sidecars {SIDECARS}", 0, seconds, cpu)
    finally:
        await client.close()
        target.stop()
    return table(rows, rss_growth, sizes)


def table(rows: dict[str, Row], rss_growth: dict[int, int], sizes: list[int]) -> list[str]:
    """Format the measurements and the targets they are held against."""
    header = ["measurement", "seconds", "MB/s", "client CPU s", "server CPU s"]
    measured = [
        [
            row.what,
            f"{row.seconds:.2f}",
            f"{row.mb_per_s:.1f}",
            f"{row.client_cpu:.2f}",
            f"{row.server_cpu:.2f}",
        ]
        for row in rows.values()
    ]
    targets: list[list[str]] = []

    def check(what: str, value: float, goal: float, unit: str = "x", lower: bool = False) -> None:
        ok = value <= goal if lower else value >= goal
        targets.append([what, f"{value:.2f}{unit}", "yes" if ok else "**NO**"])

    for gib in sizes:
        label = f"{gib} GiB"

        def speed(key: str, label: str = label) -> float:
            return rows[f"{key} {label}"].mb_per_s

        check(
            f"agent upload / OpenSSH put ({label}) >= 0.9",
            speed("agent put") / speed("openssh put"),
            0.9,
        )
        check(
            f"agent download / OpenSSH get ({label}) >= 1.3",
            speed("agent get") / speed("openssh get"),
            1.3,
        )
        check(
            f"agent upload RSS growth ({label}) < 64 MiB",
            rss_growth[gib] / MIB,
            64,
            " MiB",
            lower=True,
        )
    smallest = f"{min(sizes)} GiB"
    check(
        f"agent upload / one await per 64 KiB ({smallest}) >= 3",
        rows[f"agent put {smallest}"].mb_per_s / rows["core put"].mb_per_s,
        3,
    )
    check(
        f"listing {SIDECARS} (first time): sequential / agent >= 5",
        rows["core list"].seconds / rows["agent list"].seconds,
        5,
    )
    check(
        f"listing {SIDECARS} (again): sequential / agent >= 5",
        rows["core list"].seconds / rows["agent relist"].seconds,
        5,
    )
    return [
        *markdown_table(header, measured),
        "",
        *markdown_table(["target", "measured", "met"], targets),
    ]


def main() -> None:
    """Parse arguments, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4", help="GiB sizes to transfer (default 1,4)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    sizes = sorted(int(size) for size in args.sizes.split(","))
    for program in ("sftp", "ssh-keygen"):
        if shutil.which(program) is None:
            sys.exit(f"{program} is not installed (Debian package openssh-client)")
    free = shutil.disk_usage(args.work_dir).free
    if free < 2 * max(sizes) * GIB + GIB:
        sys.exit(f"{args.work_dir} has {free / GIB:.1f} GiB free; need {2 * max(sizes) + 1} GiB")
    with tempfile.TemporaryDirectory(prefix="backup-drive-bench-", dir=args.work_dir) as work:
        lines = asyncio.run(run(sizes, Path(work)), debug=False)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
