"""Benchmark the drive's health checks: verification throughput and the cost of one poll.

Runs against a real backup-drive-server on loopback and prints a table; it is not a test.

    .venv/bin/python bench/health_bench.py                # 1 GiB archive, 1,000 backups polled
    .venv/bin/python bench/health_bench.py --size-mib 256

Verification reads the archive over SFTP, hashes it on a worker thread and walks its tar
headers; `sha256sum` of the same file on the same machine, page cache warm for both, is the
reference (target: at least half its speed). A poll lists the folder (1,000 backups) and reads
the free space; its CPU is counted on both ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "integration")]

from bench.agent_report import SIDECARS  # noqa: E402
from bench.core_patterns import agent_backup, write_sidecars  # noqa: E402
from bench.ha_instance import bench_client, drive_entry  # noqa: E402
from bench.process_stats import MIB, CpuMeter, markdown_table, sha256_of  # noqa: E402
from custom_components.backup_drive.health_record import RESULT_OK  # noqa: E402
from custom_components.backup_drive.sidecar import sidecar_content, sidecar_name  # noqa: E402
from custom_components.backup_drive.verification import verify_backup  # noqa: E402
from tests.backup_target import BackupTarget  # noqa: E402

POLLS = 5
TARGET_RATIO = 0.5


class RandomBytes:
    """A file-like source of incompressible bytes for tarfile to copy."""

    def read(self, size: int = -1) -> bytes:
        """Return `size` random bytes."""
        return os.urandom(max(size, 0))


def write_backup(folder: Path, size: int) -> str:
    """Store a tar archive of one random member with its sidecar; return its backup id."""
    backup_id = "bench0001"
    archive = folder / "bench.tar"
    with tarfile.open(archive, "w") as tar:
        member = tarfile.TarInfo("homeassistant.tar.gz")
        member.size = size
        tar.addfile(member, RandomBytes())
    backup = agent_backup(backup_id, archive.stat().st_size)
    content = sidecar_content(backup, str(archive), sha256_of(archive), backup.size)
    (folder / sidecar_name(backup_id)).write_bytes(content)
    return backup_id


def sha256sum_seconds(path: Path) -> float:
    """Time `sha256sum` of a file."""
    start = time.perf_counter()
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
    return time.perf_counter() - start


async def run(size: int, work_dir: Path) -> list[str]:
    """Measure verification and polling; return the table's lines."""
    target = BackupTarget(storage=work_dir / "storage", data_dir=work_dir / "data").start()
    folder = target.storage / "backups"
    backup_id = write_backup(folder, size)
    archive = folder / "bench.tar"
    assert target.process is not None
    server_pid = target.process.pid
    client = bench_client(target)
    rows: list[list[str]] = []
    try:
        async with drive_entry(client) as (_hass, entry):
            coordinator = entry.runtime_data.coordinator
            stored = await client.find_backup(backup_id)
            sha256sum_seconds(archive)  # warm the page cache for both
            start = time.perf_counter()
            with CpuMeter(server_pid) as cpu:
                result = await verify_backup(coordinator, stored, None)
            verify_s = time.perf_counter() - start
            if result.result != RESULT_OK:
                sys.exit(f"verification found {result.result}: the bench is broken")
            reference_s = min(sha256sum_seconds(archive) for _ in range(2))
            mb = archive.stat().st_size / 1e6
            ratio = reference_s / verify_s
            rows.append(
                [
                    f"verify {mb:.0f} MB over SFTP",
                    f"{verify_s:.2f}",
                    f"{mb / verify_s:.0f}",
                    f"{cpu.client * 1000:.0f}",
                    f"{cpu.server * 1000:.0f}",
                ]
            )
            rows.append([f"sha256sum {mb:.0f} MB", f"{reference_s:.2f}", f"{mb / reference_s:.0f}"])
            rows[-1] += ["", ""]

            write_sidecars(folder)
            client.invalidate_cache()
            with CpuMeter(server_pid) as cpu:
                await coordinator.async_refresh()
            assert coordinator.data.backups_stored == SIDECARS + 1, coordinator.data
            rows.append(poll_row(f"first poll, {SIDECARS + 1} backups", cpu, 1))
            with CpuMeter(server_pid) as cpu:
                for _ in range(POLLS):
                    # Polls are minutes apart, longer than the listing is cached.
                    client.invalidate_cache()
                    await coordinator.async_refresh()
            rows.append(poll_row(f"later polls, {SIDECARS + 1} backups, each", cpu, POLLS))
    finally:
        await client.close()
        target.stop()
    header = ["measurement", "seconds", "MB/s", "HA CPU ms", "server CPU ms"]
    verdict = "yes" if ratio >= TARGET_RATIO else "**NO**"
    return [
        *markdown_table(header, rows),
        "",
        f"verification / sha256sum: {ratio:.2f}x (target >= {TARGET_RATIO}x): {verdict}",
    ]


def poll_row(what: str, cpu: CpuMeter, polls: int) -> list[str]:
    """Format the CPU one poll costs on both ends."""
    return [what, "", "", f"{cpu.client * 1000 / polls:.1f}", f"{cpu.server * 1000 / polls:.1f}"]


def main() -> None:
    """Parse arguments, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="archive size (default 1024)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    if shutil.which("sha256sum") is None:
        sys.exit("sha256sum is not installed (Debian package coreutils)")
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="backup-drive-bench-", dir=args.work_dir) as work:
        lines = asyncio.run(run(args.size_mib * MIB, Path(work)), debug=False)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
