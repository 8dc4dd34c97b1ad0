"""Measure processes for the benchmarks: CPU seconds, peak resident memory, random payloads.

Both benchmarks count the same things the same way, so their figures can stand side by side:
CPU from /proc (user + system, including reaped children), RSS sampled from a thread over whole
process trees (a server may fork per connection), and payloads of random bytes that no transport
can compress.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import resource
import threading
from pathlib import Path

MIB = 1024 * 1024
SAMPLE_INTERVAL = 0.05
# Tells OpenSSL the CPU has no AES instructions (as on a Raspberry Pi 4 or Home Assistant
# Yellow's CM4); it must be in a process's environment before OpenSSL initialises there.
OPENSSL_CPU_VARIABLE = "OPENSSL_ia32cap"  # OpenSSL spells it so
NO_AES_CPU = "~0x200000200000000"
CPU_MODES = {
    "aes": "AES instructions (this machine as it is)",
    "no-aes": f"no AES instructions (emulated: {OPENSSL_CPU_VARIABLE}={NO_AES_CPU})",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Return `pid` and every process below it (children of all its threads)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    found += [int(c) for c in (task / "children").read_text().split()]
    return found


def status_kib(pid: int, key: str) -> int:
    """Return a `kB` field (VmRSS, VmHWM) of /proc/<pid>/status, 0 when the process is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """Return user+system CPU of `pid` and of the children it has reaped, in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the command name, which may itself contain spaces and parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def children_cpu() -> float:
    """Return the CPU seconds of this process's reaped children (client programs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """Count CPU seconds of this process with its reaped children, and of a server process."""

    def __init__(self, server_pid: int) -> None:
        """Remember whose CPU to count."""
        self._server_pid = server_pid
        self.client = 0.0
        self.server = 0.0

    @staticmethod
    def _client_seconds() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def __enter__(self) -> CpuMeter:
        """Start counting."""
        self._client_start = self._client_seconds()
        self._server_start = cpu_seconds(self._server_pid)
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop counting."""
        self.client = self._client_seconds() - self._client_start
        self.server = cpu_seconds(self._server_pid) - self._server_start


class RssSampler(threading.Thread):
    """Sample the resident memory of whole process trees every 50 ms and keep each one's peak."""

    def __init__(self) -> None:
        """Create a sampler that watches nothing yet."""
        super().__init__(name="rss-sampler", daemon=True)
        self._roots: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self.peak_kib: dict[str, int] = {}
        self.baseline_kib: dict[str, int] = {}
        self.samples = 0

    def watch(self, label: str, pid: int) -> None:
        """Start sampling the process tree rooted at `pid` under `label`."""
        current = self.tree_kib(pid)
        with self._lock:
            self._roots[label] = pid
            self.baseline_kib.setdefault(label, current)
            self.peak_kib[label] = max(self.peak_kib.get(label, 0), current)

    @staticmethod
    def tree_kib(pid: int) -> int:
        """Return the resident memory of `pid` and its descendants, in KiB."""
        return sum(status_kib(p, "VmRSS") for p in descendants(pid))

    def growth_kib(self, label: str) -> int:
        """Return how far the peak rose above the memory the tree had when watching began."""
        return self.peak_kib[label] - self.baseline_kib[label]

    def sample_once(self) -> None:
        """Take one sample of every watched tree."""
        with self._lock:
            roots = dict(self._roots)
        for label, pid in roots.items():
            total = self.tree_kib(pid)
            with self._lock:
                self.peak_kib[label] = max(self.peak_kib[label], total)
        self.samples += 1

    def run(self) -> None:
        """Sample until stopped."""
        while not self._stop_event.wait(SAMPLE_INTERVAL):
            self.sample_once()

    def stop(self) -> None:
        """Stop sampling, take a last sample and wait for the thread."""
        self._stop_event.set()
        if self.is_alive():
            self.join(5)
        self.sample_once()

    def __enter__(self) -> RssSampler:
        """Start sampling."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop sampling."""
        self.stop()


def write_random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path` (incompressible); return their hex sha256."""
    digest = hashlib.sha256()
    chunk = 16 * MIB
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            block = os.urandom(min(chunk, remaining))
            handle.write(block)
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def markdown_table(header: list[str], rows: list[list[str]], right_from: int = 1) -> list[str]:
    """Return a Markdown table; columns from `right_from` on are right-aligned (figures)."""
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return [f"| {' | '.join(cells)} |" for cells in (header, align, *rows)]


def openssh_cipher(verbose_log: str) -> str:
    """Return the cipher OpenSSH's client reports choosing in its `-v` output."""
    match = re.search(r"kex: client->server cipher: (\S+) MAC: (\S+)", verbose_log)
    if not match:
        return "unknown"
    cipher, mac = match.groups()
    return cipher if mac == "<implicit>" else f"{cipher} + {mac}"


# What the add-on's run script and serve.sh give jemalloc (their comments say why); the
# packaging and serve.sh tests hold them to this value.
ADDON_MALLOC_CONF = "narenas:2,tcache_max:1048576,dirty_decay_ms:1000"


def jemalloc_path() -> str | None:
    """Return Debian's libjemalloc.so.2 (package libjemalloc2) when installed."""
    found = sorted(Path("/usr/lib").glob("*-linux-gnu*/libjemalloc.so.2"))
    return str(found[0]) if found else None


def add_allocator_argument(parser: argparse.ArgumentParser, flag: str, whose: str) -> None:
    """Add `flag`: jemalloc (the default when Debian's libjemalloc2 is installed) or system."""
    parser.add_argument(
        flag,
        choices=["jemalloc", "system"],
        default="jemalloc" if jemalloc_path() else "system",
        help=f"malloc of {whose} (default jemalloc when libjemalloc2 is installed)",
    )


def add_server_allocator_argument(parser: argparse.ArgumentParser) -> None:
    """Add --server-allocator: our server on jemalloc (as the add-on runs it) or the system's."""
    add_allocator_argument(
        parser, "--server-allocator", "backup-drive-server, as the add-on's run script preloads it"
    )


def server_env(allocator: str) -> dict[str, str]:
    """Return the environment that runs our server on `allocator` (jemalloc or system)."""
    path = jemalloc_path()
    if allocator == "jemalloc":
        if path is None:
            raise SystemExit("--server-allocator jemalloc: libjemalloc2 is not installed")
        return {"LD_PRELOAD": path, "MALLOC_CONF": ADDON_MALLOC_CONF}
    return {}


def load_text() -> str:
    """Return the load averages (1, 5, 15 minutes) as text."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def set_cpu_mode(mode: str) -> None:
    """Make the processes started from now on run as on a CPU with or without AES instructions."""
    if mode == "no-aes":
        os.environ[OPENSSL_CPU_VARIABLE] = NO_AES_CPU
    else:
        os.environ.pop(OPENSSL_CPU_VARIABLE, None)
