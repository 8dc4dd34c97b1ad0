"""Benchmark the backup_drive agent against OpenSSH's sftp, with and without AES instructions.

Runs against a real backup-drive-server on loopback and prints tables; it is not a test.

    .venv/bin/python bench/agent_bench.py                  # 1 GiB, both CPU modes, listing
    .venv/bin/python bench/agent_bench.py --big-gib 8      # and an 8 GiB upload (memory, time)
    .venv/bin/python bench/agent_bench.py --size-mib 256 --modes aes   # quick, while developing

Each CPU mode runs in a child process of this script, with OPENSSL_ia32cap set for the
"no-aes" mode, so that the agent, the server and OpenSSH's client all see the same CPU. Plain
asyncio without debug mode, as Home Assistant runs. Needs OpenSSH's sftp and ssh-keygen, and
free disk under --work-dir for the source file plus one copy on the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "integration")]

from homeassistant.components.backup import AgentBackup, suggested_filename  # noqa: E402

from bench.agent_report import GIB, MIB, SIDECARS, Row, mode_table, net_of_handshake, targets  # noqa: E402
from bench.core_patterns import (  # noqa: E402
    agent_backup,
    core_pattern_upload,
    file_stream,
    sequential_sidecars,
    write_sidecars,
)
from bench.ha_instance import bench_client, drive_entry  # noqa: E402
from bench.process_stats import (  # noqa: E402
    CPU_MODES,
    CpuMeter,
    RssSampler,
    add_allocator_argument,
    add_server_allocator_argument,
    load_text,
    openssh_cipher,
    server_env,
    set_cpu_mode,
    write_random_file,
)
from custom_components.backup_drive.backup import BackupDriveAgent  # noqa: E402
from custom_components.backup_drive.client import BackupDriveClient  # noqa: E402
from tests.backup_target import BackupTarget, user_option  # noqa: E402
from tests.ssh_keys import generate_key_pair  # noqa: E402

BENCH_USER = "bench"
# Home Assistant's container image preloads jemalloc, and so does the add-on's run script for
# the server. With glibc's malloc instead, asyncssh's 256 KiB packet buffers are mapped and
# unmapped again for every packet (about 8x the CPU of encrypting one), which neither pays.


def openssh_sftp(
    target: BackupTarget, key: Path, known_hosts: Path, batch: str, *, verbose: bool = False
) -> tuple[float, str]:
    """Run OpenSSH's sftp with a batch of commands; return the seconds it took and its log."""
    batch_file = key.parent / "batch"
    batch_file.write_text(batch)
    args = [
        "sftp", "-v" if verbose else "-q", "-b", str(batch_file), "-i", str(key),
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-P", str(target.sftp_port), f"{BENCH_USER}@127.0.0.1",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start, done.stderr.decode(errors="replace")


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


class Measurements:
    """The rows and facts of one CPU mode, measured against one server."""

    def __init__(self, target: BackupTarget, agent: BackupDriveAgent) -> None:
        """Measure against `target` through `agent`."""
        assert target.process is not None
        self.target = target
        self.agent = agent
        self.server_pid = target.process.pid
        self.rows: dict[str, Row] = {}
        self.facts: dict[str, Any] = {}

    def record(self, key: str, what: str, size: int, seconds: float, cpu: CpuMeter) -> None:
        """Keep one measurement: the fastest of the repeats, with the CPU it took."""
        best = self.rows.get(key)
        if best is None or seconds < best.seconds:
            self.rows[key] = Row(what, size, seconds, cpu.client, cpu.server)

    async def upload(self, key: str, source: Path, backup: AgentBackup) -> None:
        """Upload through the agent as Home Assistant's manager does; note RSS and progress."""
        progress: list[int] = []

        async def open_stream() -> AsyncIterator[bytes]:
            return file_stream(source)

        def on_progress(*, bytes_uploaded: int) -> None:
            progress.append(bytes_uploaded)

        rss = RssSampler()
        rss.watch("agent", os.getpid())
        with rss, CpuMeter(self.server_pid) as cpu:
            seconds = await timed(
                self.agent.async_upload_backup(
                    open_stream=open_stream, backup=backup, on_progress=on_progress
                )
            )
        stored = self.target.storage / "backups" / suggested_filename(backup)
        assert stored.stat().st_size == backup.size
        assert progress[-1] == backup.size, progress[-1:]
        label = f"{backup.size / GIB:g} GiB"
        self.record(key, f"agent upload {label}", backup.size, seconds, cpu)
        growth = f"RSS growth uploading {label} (MiB)"
        self.facts[growth] = max(self.facts.get(growth, 0.0), rss.growth_kib("agent") / 1024)
        self.facts[f"progress reports uploading {label}"] = len(progress)


async def measure_listing(m: Measurements, client: BackupDriveClient) -> None:
    """List 1,000 backups another writer stored: repair, cold start from the index, again."""
    write_sidecars(m.target.storage / "backups")
    listed = 0

    async def list_fresh(lister: BackupDriveClient) -> None:
        nonlocal listed
        listed = len(await lister.list_backups(fresh=True))

    client.invalidate_cache()
    with CpuMeter(m.server_pid) as cpu:
        seconds = await timed(list_fresh(client))
    assert listed == SIDECARS, listed
    m.record(
        "list repair", f"agent list {SIDECARS} new (reads each, writes index)", 0, seconds, cpu
    )
    cold = bench_client(m.target)
    try:
        await cold.check_folder()  # connected at setup in Home Assistant, before any listing
        with CpuMeter(m.server_pid) as cpu:
            seconds = await timed(list_fresh(cold))
        assert listed == SIDECARS, listed
        m.record("list cold", f"agent list {SIDECARS}, cold start (index)", 0, seconds, cpu)
        with CpuMeter(m.server_pid) as cpu:
            seconds = await timed(list_fresh(cold))
        m.record("list again", "agent list again, none changed", 0, seconds, cpu)
    finally:
        await cold.close()
    with CpuMeter(m.server_pid) as cpu:
        seconds = await sequential_sidecars(client, m.target)
    m.record("list core", f"sequential sidecars {SIDECARS} (core)", 0, seconds, cpu)


def agent_allocator() -> str:
    """Return which malloc this process runs on, and keep it from the processes it starts.

    The parent preloads jemalloc into this child as Home Assistant's container image does for
    its own process; the server gets its own (--server-allocator), OpenSSH the system's.
    """
    os.environ.pop("LD_PRELOAD", None)
    maps = Path("/proc/self/maps").read_text()
    return "jemalloc (as in Home Assistant's image)" if "jemalloc" in maps else "glibc malloc"


async def measure(
    mode: str, *, size: int, big_gib: int, work_dir: Path, server_allocator: str, repeat: int
) -> dict[str, Any]:
    """Run every measurement of one CPU mode; return rows and facts as JSON-ready data."""
    load_before = load_text()
    allocator = agent_allocator()
    key, public = make_key(work_dir)
    target = BackupTarget(
        storage=work_dir / "storage",
        data_dir=work_dir / "data",
        options={"users": [user_option(BENCH_USER, "bench-password-unused", public)]},
        env=server_env(server_allocator),
    ).start()
    known_hosts = work_dir / "known_hosts"
    known_hosts.write_text(target.known_hosts_line() + "\n")
    folder = target.storage / "backups"
    client = bench_client(target)
    # The agent's upload asks the entry's coordinator for free space first, as in Home Assistant.
    home_assistant = contextlib.AsyncExitStack()
    hass, entry = await home_assistant.enter_async_context(drive_entry(client))
    agent = BackupDriveAgent(hass, entry)
    m = Measurements(target, agent)
    label = f"{size / GIB:g} GiB"
    try:
        # Home Assistant connects at setup; no transfer below pays for the agent's handshake.
        await client.check_folder()
        m.facts["agent cipher"] = client.cipher
        m.facts["agent's allocator"] = allocator
        m.facts["server's allocator"] = server_allocator
        source = work_dir / "source"
        write_random_file(source, size)
        # The agent and OpenSSH take turns, each transfer `repeat` times; the fastest counts.
        for attempt in range(repeat):
            backup = agent_backup(f"bench{attempt:04d}", size)
            await m.upload("agent put", source, backup)
            with CpuMeter(m.server_pid) as cpu:
                start = time.perf_counter()
                assert await drain(await agent.async_download_backup(backup.backup_id)) == size
                seconds = time.perf_counter() - start
            m.record("agent get", f"agent download {label} (sha256 checked)", size, seconds, cpu)
            await agent.async_delete_backup(backup.backup_id)

            # OpenSSH's sftp starts a process and an SSH session per run: time that alone, so
            # that the transfer rows can be compared without it.
            with CpuMeter(m.server_pid) as cpu:
                seconds, log = openssh_sftp(target, key, known_hosts, "pwd\n", verbose=True)
            m.record("openssh handshake", "OpenSSH sftp start + login only", 0, seconds, cpu)
            m.facts["OpenSSH cipher"] = openssh_cipher(log)
            for verb, batch in (
                ("put", f"put {source} /backups/openssh.tar\n"),
                ("get", "get /backups/openssh.tar /dev/null\n"),
            ):
                with CpuMeter(m.server_pid) as cpu:
                    seconds, _log = openssh_sftp(target, key, known_hosts, batch)
                m.record(f"openssh {verb}", f"OpenSSH sftp {verb} {label}", size, seconds, cpu)
            (folder / "openssh.tar").unlink()

        if mode == "aes":
            with CpuMeter(m.server_pid) as cpu:
                seconds = await core_pattern_upload(target, source, "/backups/core.tar")
            m.record("core put", f"one await per 64 KiB {label} (core)", size, seconds, cpu)
            (folder / "core.tar").unlink()
        source.unlink()
        if mode == "aes":
            await measure_listing(m, client)
        if big_gib and mode == "aes":
            write_random_file(source, big_gib * GIB)
            big = agent_backup("bench0008", big_gib * GIB)
            await m.upload("agent put big", source, big)
            await agent.async_delete_backup(big.backup_id)
            source.unlink()
    finally:
        await client.close()
        await home_assistant.aclose()
        target.stop()
    m.facts["load average before, after"] = f"{load_before}; {load_text()}"
    return {"rows": {k: asdict(row) for k, row in m.rows.items()}, "facts": m.facts}


def run_modes(args: argparse.Namespace) -> list[str]:
    """Run each CPU mode in a child process of this script; return the report's lines."""
    modes: dict[str, dict[str, Row]] = {}
    facts: dict[str, dict[str, Any]] = {}
    out = [f"load average before the run: {load_text()} on {os.cpu_count()} CPUs", ""]
    for mode in args.modes.split(","):
        set_cpu_mode(mode)
        if args.allocator == "jemalloc":
            os.environ["LD_PRELOAD"] = server_env("jemalloc")["LD_PRELOAD"]
        result_file = args.work_dir / f"agent-bench-{os.getpid()}-{mode}.json"
        command = [sys.executable, __file__, "--child", mode, "--result-file", str(result_file)]
        command += ["--size-mib", str(args.size_mib), "--big-gib", str(args.big_gib)]
        command += ["--server-allocator", args.server_allocator, "--repeat", str(args.repeat)]
        subprocess.run([*command, "--work-dir", str(args.work_dir)], check=True)
        result = json.loads(result_file.read_text())
        result_file.unlink()
        modes[mode] = {key: Row(**row) for key, row in result["rows"].items()}
        net_of_handshake(modes[mode])
        facts[mode] = result["facts"]
        out += [f"### CPU mode {mode}: {CPU_MODES[mode]}", "", *mode_table(modes[mode]), ""]
        out += [
            f"- {fact}: {value:.1f}" if isinstance(value, float) else f"- {fact}: {value}"
            for fact, value in facts[mode].items()
        ]
        out.append("")
    out += ["### Targets", "", *targets(modes, facts), ""]
    out.append(
        "Included in each timing: the agent's upload from the first chunk read until the "
        "archive and its sidecar are in place and the listing index is rewritten (connected "
        "beforehand, as at Home Assistant's setup); the agent's download until the last byte "
        "and its sha256 check; OpenSSH rows raw and without their process start + login (the "
        "targets use those). Same bytes from the page cache on both sides; gets go to nothing."
    )
    return out


def main() -> None:
    """Parse arguments, run, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="payload (default 1024)")
    parser.add_argument("--big-gib", type=int, default=0, help="also upload this many GiB")
    parser.add_argument(
        "--repeat", type=int, default=3, help="transfers of each kind, the fastest counts (3)"
    )
    parser.add_argument("--modes", default="aes,no-aes", help="CPU modes (default aes,no-aes)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()))
    add_allocator_argument(
        parser, "--allocator", "the agent's process, as in Home Assistant's image"
    )
    add_server_allocator_argument(parser)
    parser.add_argument("--child", choices=list(CPU_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size_mib * MIB
    if args.child:
        with tempfile.TemporaryDirectory(prefix="backup-drive-bench-", dir=args.work_dir) as work:
            run = measure(
                args.child,
                size=size,
                big_gib=args.big_gib,
                work_dir=Path(work),
                server_allocator=args.server_allocator,
                repeat=args.repeat,
            )
            result = asyncio.run(run, debug=False)
        args.result_file.write_text(json.dumps(result))
        return
    for program in ("sftp", "ssh-keygen"):
        if shutil.which(program) is None:
            sys.exit(f"{program} is not installed (Debian package openssh-client)")
    needed = 2 * max(size, args.big_gib * GIB) + GIB
    if (free := shutil.disk_usage(args.work_dir).free) < needed:
        sys.exit(f"{args.work_dir} has {free / GIB:.1f} GiB free; need {needed / GIB:.1f} GiB")
    print("\n".join(run_modes(args)))


if __name__ == "__main__":
    main()
