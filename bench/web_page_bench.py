"""Measure how long the add-on's page takes with many backups on the drive; print a table.

The drive gets N backups (archives of a few bytes and their sidecars, as the integration writes
them) plus a health file. Then, against the real server started as a subprocess:

- the page on its own port (`GET /`, as under ingress) and the WebDAV port's view of
  `/backups/` for a browser are fetched over loopback HTTP, each `--repeat` times;
- in this process, the two steps of the page are timed apart: reading the folder (sidecars and
  health file) and rendering the HTML.

Target: 1,000 backups in under one second of server time. Loopback HTTP adds well under a
millisecond, so the HTTP figure is an upper bound of the server's time. This is a benchmark,
not a test: it exits 0 when the target is missed (and says so), 1 only when a request fails.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from backup_drive_server.health_file import read_health  # noqa: E402
from backup_drive_server.storage_root import StorageRoot  # noqa: E402
from backup_drive_server.web_page.backup_catalog import list_folder  # noqa: E402
from backup_drive_server.web_page.drive_status import read_drive_status  # noqa: E402
from backup_drive_server.web_page.render import render  # noqa: E402
from tests.backup_target import BackupTarget, free_port  # noqa: E402
from tests.web_page.drive_content import write_backups, write_health  # noqa: E402

TARGET_SECONDS = 1.0
TARGET_BACKUPS = 1000


def fetch(port: int, path: str, login: tuple[str, str] | None) -> tuple[float, int]:
    """GET `path`; return the seconds until the whole body arrived, and its size."""
    headers = {"Accept": "text/html"}
    if login is not None:
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}")
    return elapsed, len(body)


def timed(repeat: int, action: Callable[[], object]) -> list[float]:
    """Run `action` `repeat` times; return each run's seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times


def row(what: str, count: int, size: int | None, times: list[float]) -> str:
    """One line of the table."""
    best, median = min(times), statistics.median(times)
    verdict = ""
    if count == TARGET_BACKUPS:
        verdict = "met" if median < TARGET_SECONDS else "**missed**"
    size_text = f"{size / 1e6:.2f} MB" if size is not None else ""
    return (
        f"| {what} | {count} | {size_text} | {best * 1000:.0f} ms | {median * 1000:.0f} ms "
        f"| {verdict} |"
    )


def bench(count: int, repeat: int, workdir: Path) -> list[str]:
    """Fill a drive with `count` backups and time the page and the WebDAV view."""
    root = Path(tempfile.mkdtemp(prefix=f"page-{count}-", dir=workdir))
    backups = root / "storage" / "backups"
    written = write_backups(backups, count, archive_bytes=16)
    write_health(backups, {"version": 1, "problems": [], "backups": {
        b.backup_id: {"verified_at": b.date.isoformat(), "result": "ok"} for b in written
    }})  # fmt: skip
    (backups / "notes.txt").write_text("not a backup\n")
    rows = []
    health_times = timed(repeat, lambda: list_folder(backups, read_health(backups)))
    listing = list_folder(backups, read_health(backups))
    drive = read_drive_status(StorageRoot(root / "storage"))
    rows.append(row("read sidecars (in process)", count, None, health_times))
    render_times = timed(
        repeat,
        lambda: render("folder.html.j2", folder_name="backups", breadcrumbs=[], drive=drive,
                       listing=listing, file_href=str, folder_href=str),
    )  # fmt: skip
    rows.append(row("render HTML (in process)", count, None, render_times))
    target = BackupTarget(
        storage=root / "storage",
        data_dir=root / "data",
        ui_port=free_port(),
        options={"users": [{"username": "bench", "password": "bench-pw", "read_only": True}]},
        extra_args=["--log-level", "warning"],
    ).start()
    try:
        login = ("bench", "bench-pw")
        for what, port, path in (
            ("page, GET / (HTTP)", target.ui_port or 0, "/"),
            ("WebDAV view, GET /backups/ (HTTP)", target.webdav_port, "/backups/"),
        ):
            fetch(port, path, login)  # the first request also warms the server's caches
            results = [fetch(port, path, login) for _ in range(repeat)]
            rows.append(row(what, count, results[0][1], [t for t, _ in results]))
    finally:
        target.stop()
    return rows


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    lines = [
        f"Load average before: {os.getloadavg()[0]:.2f}, CPUs: {os.cpu_count()}",
        "",
        "| what | backups | page size | best | median | 1,000 in < 1 s |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    try:
        for count in args.counts:
            for line in bench(count, args.repeat, args.workdir):
                print(line, flush=True)
    except RuntimeError as err:
        print(f"failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
