"""Measure how long backup-drive-server takes to exit after SIGTERM, idle and busy; print a table.

Each scenario starts a fresh server, sets up its clients (none; a WebDAV download whose client
stopped reading; an SFTP upload holding its file open; both), sends SIGTERM and times the exit
with `time.perf_counter()`. The add-on's container is killed 10 s after SIGTERM and the server
allows transfers 4 s (SHUTDOWN_GRACE_SECONDS), so every figure should stay well below 10 s.

A benchmark, not a test: it exits 0 when a figure is over the target (and says so), 1 only when
the server did not exit by itself or exited with a failure status.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Run as a script: the repository root makes `bench` and `tests` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backup_drive_server.settings import SHUTDOWN_GRACE_SECONDS
from bench.process_stats import markdown_table
from tests.backup_target import HOMEASSISTANT_USER, BackupTarget
from tests.stop_clients import (
    UploadInFlight,
    stalled_webdav_download,
    start_sftp_upload,
)

SCENARIOS = ("idle", "stalled-download", "upload", "both")
CONTAINER_KILL_SECONDS = 10.0
GIVE_UP_SECONDS = 60.0
DOWNLOAD_BYTES = 256 * 1024 * 1024


async def measure_stop(workdir: Path, scenario: str) -> tuple[float, int]:
    """Run one scenario on a fresh server; return seconds from SIGTERM to exit and the status."""
    target = BackupTarget(storage=workdir / "storage", data_dir=workdir / "data").start()
    download: socket.socket | None = None
    upload: UploadInFlight | None = None
    try:
        with (target.storage / "backups" / "big.bin").open("wb") as big:
            big.truncate(DOWNLOAD_BYTES)
        if scenario in ("stalled-download", "both"):
            download = await asyncio.to_thread(
                stalled_webdav_download,
                target, HOMEASSISTANT_USER, target.password, "/backups/big.bin",
            )  # fmt: skip
        if scenario in ("upload", "both"):
            upload = await start_sftp_upload(
                target, HOMEASSISTANT_USER, target.password, "/backups/upload.bin"
            )
        assert target.process is not None
        started = time.perf_counter()
        target.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(target.process.wait, GIVE_UP_SECONDS)
        return time.perf_counter() - started, code
    finally:
        target.stop()
        if download is not None:
            download.close()
        if upload is not None:
            upload.connection.abort()


async def run(repeat: int) -> int:
    """Measure every scenario `repeat` times and print the table; return the exit status."""
    rows, failed, over = [], False, []
    for scenario in SCENARIOS:
        seconds = []
        for number in range(repeat):
            with tempfile.TemporaryDirectory(prefix="shutdown-bench-") as workdir:
                elapsed, code = await measure_stop(Path(workdir) / str(number), scenario)
            seconds.append(elapsed)
            failed |= code != 0
        worst = max(seconds)
        if worst >= CONTAINER_KILL_SECONDS:
            over.append(scenario)
        rows.append([
            scenario,
            f"{statistics.median(seconds):.2f}",
            f"{worst:.2f}",
            " ".join(f"{s:.2f}" for s in seconds),
        ])  # fmt: skip
    print(f"Stop after SIGTERM (grace {SHUTDOWN_GRACE_SECONDS} s, container killed at "
          f"{CONTAINER_KILL_SECONDS:.0f} s), {repeat} runs each:\n")  # fmt: skip
    print("\n".join(markdown_table(["scenario", "median s", "worst s", "runs"], rows)))
    if over:
        print(f"\nOver the {CONTAINER_KILL_SECONDS:.0f} s target: {', '.join(over)}")
    if failed:
        print("\nThe server exited with a failure status or had to be killed")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (default 3)")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.repeat))


if __name__ == "__main__":
    sys.exit(main())
