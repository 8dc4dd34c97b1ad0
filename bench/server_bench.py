"""Measure backup-drive-server against OpenSSH's sshd and rclone's WebDAV server; print a table.

One run: a random file (1 GiB by default) is uploaded (PUT) and downloaded (GET) over SFTP with
OpenSSH's `sftp` client and over WebDAV with curl, against our server and against a reference
server on loopback (OpenSSH's sshd with internal-sftp, `rclone serve webdav`). The same client
commands are used on both sides. Each transfer is repeated, the order of ours and the reference
alternates per repeat, and the best repeat counts. Our server's peak RSS is sampled throughout.

This is a benchmark, not a test: it exits 0 when a target is missed (and says so), and 1 only
when a transfer fails or returns wrong bytes, because then the figures would mean nothing.

Why one long file: it is a script people run and read top to bottom (servers under test, the
timed transfers, the report), and every part only serves this one table; what other benchmarks
share lives in process_stats.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.process_stats import (  # noqa: E402
    CPU_MODES,
    SAMPLE_INTERVAL,
    RssSampler,
    add_server_allocator_argument,
    children_cpu,
    cpu_seconds,
    descendants,
    load_text,
    markdown_table,
    openssh_cipher,
    server_env,
    set_cpu_mode,
    sha256_of,
    status_kib,
    write_random_file,
)
from tests.backup_target import BackupTarget, free_port, user_option, wait_for_port  # noqa: E402
from tests.openssh_server import OpenSshServer  # noqa: E402
from tests.ssh_keys import generate_key_pair  # noqa: E402

MIB = 1024 * 1024
MB = 1_000_000
REMOTE_NAME = "server-bench.bin"
BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password-not-secret"  # loopback only, the account lives for one run
RSS_TARGET_MIB = 150.0
TARGETS = {"SFTP": 0.8, "WebDAV": 0.9}


class BenchError(RuntimeError):
    """A transfer failed or returned wrong bytes: the run cannot produce honest figures."""


# ---------------------------------------------------------------------------------------------
# Servers under test
# ---------------------------------------------------------------------------------------------


@dataclass
class SftpEndpoint:
    """An SFTP server as the OpenSSH client sees it, and where its uploads land on disk."""

    label: str
    port: int
    user: str
    known_hosts: Path
    remote_path: str
    local_path: Path
    pid: int


@dataclass
class WebDavEndpoint:
    """A WebDAV server as curl sees it, and where its uploads land on disk."""

    label: str
    url: str
    user: str
    password: str
    auth_flag: str
    local_path: Path
    pid: int


@dataclass
class Tools:
    """Absolute paths of the external programs the benchmark runs."""

    sftp: str
    ssh: str
    ssh_keygen: str
    sshd: str
    curl: str
    rclone: str

    @classmethod
    def find(cls) -> Tools:
        """Locate every program or stop with a message naming the Debian package."""
        wanted = {
            "sftp": "openssh-client",
            "ssh": "openssh-client",
            "ssh_keygen": "openssh-client",
            "sshd": "openssh-server",
            "curl": "curl",
            "rclone": "rclone",
        }
        paths: dict[str, str] = {}
        for attr, package in wanted.items():
            name = attr.replace("_", "-")
            found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
            if not found:
                raise SystemExit(f"{name} is not installed (Debian package {package})")
            paths[attr] = found
        return cls(**paths)


def generate_ssh_key(tools: Tools, path: Path) -> str:
    """Create an ed25519 key pair without passphrase at `path`; return the public line."""
    return generate_key_pair(path, ssh_keygen=tools.ssh_keygen, comment="server-bench")


def start_sshd(
    tools: Tools, work: Path, client_public_key: str, stack: contextlib.ExitStack
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start OpenSSH's sshd on a free loopback port; return it, its port and its known_hosts."""
    if os.geteuid() != 0:
        raise SystemExit("the OpenSSH reference needs root (sshd logs in as the user running it)")
    server = OpenSshServer(
        work=work / "sshd",
        sshd=tools.sshd,
        ssh_keygen=tools.ssh_keygen,
        authorized_keys=[client_public_key],
    )
    stack.callback(server.stop)
    try:
        server.start()
    except RuntimeError as err:
        raise SystemExit(f"sshd did not start: {err}") from None
    assert server.process is not None
    known_hosts = server.work / "known_hosts"
    known_hosts.write_text(server.known_hosts_line() + "\n")
    return server.process, server.port, known_hosts


def start_rclone(
    tools: Tools, work: Path, stack: contextlib.ExitStack
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start `rclone serve webdav` on a free loopback port; return it, its port and its root."""
    root = work / "rclone-root"
    root.mkdir()
    port = free_port()
    log_path = work / "rclone.log"
    # An empty config file keeps rclone away from the user's remotes and quiet about a missing one.
    config = work / "rclone.conf"
    config.write_text("")
    command = [
        tools.rclone, "serve", "webdav", str(root),
        "--addr", f"127.0.0.1:{port}",
        "--user", BENCH_USER, "--pass", BENCH_PASSWORD,
        "--config", str(config),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    stack.callback(stop_process, process)
    wait_or_explain(process, port, log_path, "rclone serve webdav")
    return process, port, root


def wait_or_explain(process: subprocess.Popen[bytes], port: int, log: Path, name: str) -> None:
    """Wait until `port` accepts connections, or stop with the program's log."""
    try:
        wait_for_port(port, timeout=20)
    except OSError:
        raise SystemExit(f"{name} did not start:\n{log.read_text(errors='replace')}") from None
    if process.poll() is not None:
        raise SystemExit(f"{name} exited at once:\n{log.read_text(errors='replace')}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a reference server and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_ours(
    work: Path,
    client_public_key: str,
    server_args: Sequence[str],
    stack: contextlib.ExitStack,
    env: dict[str, str],
) -> BackupTarget:
    """Start backup-drive-server with an extra read-write account that accepts our key."""
    options = {"users": [user_option(BENCH_USER, BENCH_PASSWORD, client_public_key)]}
    target = BackupTarget(
        storage=work / "ours-storage",
        data_dir=work / "ours-data",
        options=options,
        extra_args=list(server_args),
        env=env,
    )
    stack.callback(target.stop)
    try:
        target.start()
    except RuntimeError as err:
        raise SystemExit(f"backup-drive-server did not start: {err}") from None
    return target


# ---------------------------------------------------------------------------------------------
# Transfers
# ---------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One timed transfer."""

    seconds: float
    server_cpu: float
    client_cpu: float


@dataclass
class Series:
    """All repeats of one transfer against one server."""

    label: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def best(self) -> Sample:
        """The fastest repeat."""
        return min(self.samples, key=lambda s: s.seconds)

    def rate(self, size: int) -> float:
        """Best throughput in MB/s (10^6 bytes per second)."""
        return size / self.best.seconds / MB

    def cpu_per_gib(self, size: int) -> float:
        """Return the server's least CPU seconds over the repeats, scaled to one GiB."""
        return min(s.server_cpu for s in self.samples) * 1024 * MIB / size

    def median_rate(self, size: int) -> float:
        """Median throughput in MB/s."""
        return size / statistics.median(s.seconds for s in self.samples) / MB


def settle(pid: int, timeout: float = 3.0) -> None:
    """Wait until a server has reaped its per-connection children, so their CPU is counted."""
    deadline = time.monotonic() + timeout
    while len(descendants(pid)) > 1 and time.monotonic() < deadline:
        time.sleep(0.02)


def timed(command: list[str], server_pid: int, timeout: float, stdin: bytes = b"") -> Sample:
    """Run a client command, failing loudly, and time it with the server's and client's CPU."""
    server_before = cpu_seconds(server_pid)
    client_before = children_cpu()
    start = time.perf_counter()
    result = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise BenchError(
            f"{' '.join(command)} exited with {result.returncode}:\n"
            f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}"
        )
    settle(server_pid)
    return Sample(
        seconds=seconds,
        server_cpu=cpu_seconds(server_pid) - server_before,
        client_cpu=children_cpu() - client_before,
    )


def sftp_command(tools: Tools, endpoint: SftpEndpoint, key: Path, *extra: str) -> list[str]:
    """Build the same OpenSSH sftp batch command line for any server."""
    return [
        tools.sftp, "-b", "-", "-F", "/dev/null", *extra,
        "-P", str(endpoint.port), "-i", str(key),
        "-o", f"UserKnownHostsFile={endpoint.known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        f"{endpoint.user}@127.0.0.1",
    ]  # fmt: skip


def curl_credentials(user: str, password: str) -> bytes:
    """Return a curl config for stdin, which keeps the credentials off the command line."""
    return f'user = "{user}:{password}"\n'.encode()


@dataclass
class Payload:
    """The random source file and what a correct copy of it looks like."""

    path: Path
    size: int
    sha256: str

    def check(self, copy: Path, what: str, *, full: bool) -> None:
        """Fail unless `copy` has the payload's size (and, when `full`, its sha256)."""
        try:
            size = copy.stat().st_size
        except OSError as err:
            raise BenchError(f"{what}: {copy} is missing after the transfer ({err})") from err
        if size != self.size:
            raise BenchError(f"{what}: {copy} has {size} bytes, expected {self.size}")
        if full and sha256_of(copy) != self.sha256:
            raise BenchError(f"{what}: {copy} has the right size but different content")


def make_payload(path: Path, size: int) -> Payload:
    """Write `size` random bytes to `path` (incompressible, so no transport can cheat)."""
    return Payload(path=path, size=size, sha256=write_random_file(path, size))


@dataclass
class Plan:
    """What to run and how often."""

    repeat: int
    timeout: float
    verbose: bool
    sftp_options: list[str] = field(default_factory=list)


def interleave(repeat: int, sides: Sequence[str]) -> Iterator[tuple[int, str]]:
    """Yield (repeat, side), reversing the order of the sides on every other repeat."""
    for index in range(repeat):
        for side in sides if index % 2 == 0 else reversed(sides):
            yield index, side


def log(plan: Plan, message: str) -> None:
    """Print progress to stderr, so stdout holds only the report."""
    if plan.verbose:
        print(message, file=sys.stderr, flush=True)


def quiesce() -> None:
    """Flush dirty pages, so no transfer is throttled by the writeback of the one before."""
    os.sync()


def run_pair(
    *,
    plan: Plan,
    payload: Payload,
    name: str,
    sides: Sequence[str],
    put: Callable[[str], Sample],
    get: Callable[[str, Path], Sample],
    landing: Callable[[str], Path],
    work: Path,
) -> dict[str, dict[str, Series]]:
    """Time PUT then GET for both sides of one protocol; return series per direction and side."""
    results: dict[str, dict[str, Series]] = {
        "PUT": {s: Series(s) for s in sides},
        "GET": {s: Series(s) for s in sides},
    }
    for index, side in interleave(plan.repeat, sides):
        landing(side).unlink(missing_ok=True)
        quiesce()
        sample = put(side)
        payload.check(landing(side), f"{name} PUT to {side}", full=index == 0)
        results["PUT"][side].samples.append(sample)
        log(plan, f"  {name} PUT {side:9} #{index + 1}: {rate_text(payload.size, sample)}")
    for index, side in interleave(plan.repeat, sides):
        destination = work / f"get-{side}.bin"
        destination.unlink(missing_ok=True)
        quiesce()
        sample = get(side, destination)
        payload.check(destination, f"{name} GET from {side}", full=index == 0)
        destination.unlink()
        results["GET"][side].samples.append(sample)
        log(plan, f"  {name} GET {side:9} #{index + 1}: {rate_text(payload.size, sample)}")
    for side in sides:
        landing(side).unlink(missing_ok=True)
    return results


def rate_text(size: int, sample: Sample) -> str:
    """Format one sample for the progress log."""
    return (
        f"{size / sample.seconds / MB:8.1f} MB/s  {sample.seconds:6.2f} s  "
        f"server CPU {sample.server_cpu:5.2f} s  client CPU {sample.client_cpu:5.2f} s"
    )


def bench_sftp(
    *,
    plan: Plan,
    tools: Tools,
    payload: Payload,
    key: Path,
    endpoints: dict[str, SftpEndpoint],
    work: Path,
) -> dict[str, dict[str, Series]]:
    """Time OpenSSH sftp put/get against each SFTP endpoint."""

    def transfer(side: str, verb: str, source: Path | str, destination: Path | str) -> Sample:
        """Run one sftp batch command (put or get) against a side."""
        endpoint = endpoints[side]
        batch = f'{verb} "{source}" "{destination}"\n'.encode()
        command = sftp_command(tools, endpoint, key, *plan.sftp_options)
        return timed(command, endpoint.pid, plan.timeout, batch)

    def put(side: str) -> Sample:
        return transfer(side, "put", payload.path, endpoints[side].remote_path)

    def get(side: str, destination: Path) -> Sample:
        return transfer(side, "get", endpoints[side].remote_path, destination)

    return run_pair(
        plan=plan,
        payload=payload,
        name="SFTP",
        sides=list(endpoints),
        put=put,
        get=get,
        landing=lambda side: endpoints[side].local_path,
        work=work,
    )


def bench_webdav(
    *,
    plan: Plan,
    tools: Tools,
    payload: Payload,
    endpoints: dict[str, WebDavEndpoint],
    work: Path,
) -> dict[str, dict[str, Series]]:
    """Time curl PUT/GET against each WebDAV endpoint."""

    def curl(side: str, *args: str) -> Sample:
        """Run curl with these transfer arguments against a side's URL."""
        endpoint = endpoints[side]
        command = [tools.curl, "-sS", "-f", "-K", "-", endpoint.auth_flag, *args, endpoint.url]
        credentials = curl_credentials(endpoint.user, endpoint.password)
        return timed(command, endpoint.pid, plan.timeout, credentials)

    def put(side: str) -> Sample:
        return curl(side, "-T", str(payload.path), "-o", "/dev/null")

    def get(side: str, destination: Path) -> Sample:
        return curl(side, "-o", str(destination))

    return run_pair(
        plan=plan,
        payload=payload,
        name="WebDAV",
        sides=list(endpoints),
        put=put,
        get=get,
        landing=lambda side: endpoints[side].local_path,
        work=work,
    )


def negotiated_cipher(
    tools: Tools, endpoint: SftpEndpoint, key: Path, options: Sequence[str]
) -> str:
    """Return the cipher OpenSSH's client picks with this server (from `sftp -v`)."""
    result = subprocess.run(
        sftp_command(tools, endpoint, key, "-v", *options),
        input=b"pwd\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    return openssh_cipher(result.stderr.decode(errors="replace"))


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def program_version(command: list[str]) -> str:
    """Return the first line a program prints about its version."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(command, capture_output=True, timeout=30, check=False)
        text = (result.stdout or result.stderr).decode(errors="replace").strip()
        return text.splitlines()[0] if text else "unknown"
    return "unknown"


def python_versions() -> str:
    """Return the versions of the Python pieces of our server."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    parts = [f"Python {platform.python_version()}"]
    for package in ("asyncssh", "wsgidav", "cheroot", "cryptography"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package} missing")
    return ", ".join(parts)


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@dataclass
class Report:
    """Everything measured in one run, ready to print."""

    size: int
    repeat: int
    tools: Tools
    results: dict[str, dict[str, dict[str, Series]]] = field(default_factory=dict)
    reference_names: dict[str, str] = field(default_factory=dict)
    ciphers: dict[str, str] = field(default_factory=dict)
    sftp_options: list[str] = field(default_factory=list)
    server_allocator: str = "system"
    peak_rss_kib: dict[str, int] = field(default_factory=dict)
    ours_hwm_kib: int = 0
    rss_samples: int = 0
    loads: list[tuple[str, str]] = field(default_factory=list)

    def rows(self) -> Iterator[tuple[str, float | None, float, float]]:
        """Yield (transfer, ours MB/s or None, reference MB/s, target ratio) per transfer."""
        for protocol, directions in self.results.items():
            for direction, series in directions.items():
                ours = series["ours"].rate(self.size) if "ours" in series else None
                reference = series["reference"].rate(self.size)
                yield f"{protocol} {direction}", ours, reference, TARGETS[protocol]

    def peak_rss_mib(self) -> float | None:
        """Our server's peak RSS in MiB, or None when it did not run."""
        if "ours" not in self.peak_rss_kib:
            return None
        return max(self.peak_rss_kib["ours"], self.ours_hwm_kib) / 1024

    def missed(self) -> list[str]:
        """Describe every target that was measured and missed."""
        missed = [
            f"{name} {ours / reference:.2f} < {target}"
            for name, ours, reference, target in self.rows()
            if ours is not None and ours / reference < target
        ]
        peak = self.peak_rss_mib()
        if peak is not None and peak >= RSS_TARGET_MIB:
            missed.append(f"server RSS {peak:.1f} MiB >= {RSS_TARGET_MIB:.0f} MiB")
        return missed

    def table(self) -> list[str]:
        """Return the main table as Markdown lines."""
        rows = []
        for name, ours, reference, target in self.rows():
            if ours is None:
                rows.append([name, "-", f"{reference:.0f}", "-", f">= {target}", "not run"])
                continue
            ratio = ours / reference
            met = "yes" if ratio >= target else "**NO**"
            rows.append(
                [name, f"{ours:.0f}", f"{reference:.0f}", f"{ratio:.2f}", f">= {target}", met]
            )
        header = ["transfer", "ours MB/s", "reference MB/s", "ratio", "target", "met"]
        return markdown_table(header, rows)

    def cpu_table(self) -> list[str]:
        """Return server CPU per GiB side by side: steadier than throughput on a busy machine."""
        rows = []
        for protocol, directions in self.results.items():
            for direction, series in directions.items():
                if "ours" not in series:
                    continue
                ours = series["ours"].cpu_per_gib(self.size)
                reference = series["reference"].cpu_per_gib(self.size)
                ratio = f"{reference / ours:.2f}" if ours > 0 else "-"
                rows.append([f"{protocol} {direction}", f"{ours:.2f}", f"{reference:.2f}", ratio])
        header = ["transfer", "ours CPU s/GiB", "reference CPU s/GiB", "reference/ours"]
        return markdown_table(header, rows)

    def details(self) -> list[str]:
        """Return every repeat with CPU seconds, for profiling and for judging the noise."""
        rows = []
        for protocol, directions in self.results.items():
            for direction, series_by_side in directions.items():
                for side, series in series_by_side.items():
                    best = series.best
                    rows.append(
                        [
                            f"{protocol} {direction}",
                            "ours" if side == "ours" else self.reference_names[protocol],
                            f"{series.rate(self.size):.0f}",
                            f"{series.median_rate(self.size):.0f}",
                            " ".join(f"{s.seconds:.2f}" for s in series.samples),
                            f"{best.server_cpu:.2f}",
                            f"{best.client_cpu:.2f}",
                        ]
                    )
        header = [
            "transfer", "server", "best MB/s", "median MB/s", "all runs (s)",
            "server CPU s", "client CPU s",
        ]  # fmt: skip
        return markdown_table(header, rows, right_from=2)

    def rss_lines(self) -> list[str]:
        """Return the memory lines."""
        lines = []
        peak = self.peak_rss_mib()
        if peak is not None:
            sampled = self.peak_rss_kib["ours"] / 1024
            met = "met" if peak < RSS_TARGET_MIB else "**MISSED**"
            lines.append(
                f"Our server's peak RSS: {peak:.1f} MiB (target < {RSS_TARGET_MIB:.0f} MiB: "
                f"{met}; sampled max {sampled:.1f} MiB over {self.rss_samples} samples every "
                f"{SAMPLE_INTERVAL * 1000:.0f} ms, VmHWM {self.ours_hwm_kib / 1024:.1f} MiB)"
            )
        references = [
            f"{label} {kib / 1024:.1f} MiB"
            for label, kib in self.peak_rss_kib.items()
            if label != "ours"
        ]
        if references:
            lines.append(
                "Reference peak RSS (sampled, whole process tree; sshd forks per connection and "
                "counts its privileged monitor too): " + ", ".join(references)
            )
        return lines

    def render(self) -> str:
        """Return the full report as Markdown."""
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        out = [
            f"## backup-drive-server benchmark, {now}",
            "",
            f"Payload {self.size / MIB:.0f} MiB of random bytes; best of {self.repeat} "
            "(the order of ours and the reference alternates); MB/s = 10^6 bytes per second.",
            "",
            *self.table(),
            "",
            *self.rss_lines(),
            "",
        ]
        missed = self.missed()
        if missed:
            out += ["Targets MISSED: " + "; ".join(missed) + ".", ""]
        elif "ours" in self.peak_rss_kib:
            out += ["All measured targets met.", ""]
        if "ours" in self.peak_rss_kib and self.results:
            out += [
                "Server CPU per GiB (least over the repeats; steadier than MB/s under load, and "
                "reference/ours estimates the throughput ratio where the server's CPU is the "
                "bottleneck):",
                "",
                *self.cpu_table(),
                "",
            ]
        out += ["Details:", "", *self.details(), ""]
        if self.ciphers:
            out.append(
                "SFTP cipher chosen by OpenSSH's client: "
                + ", ".join(f"{k} {v}" for k, v in self.ciphers.items())
                + (
                    f" (extra sftp options: {' '.join(self.sftp_options)})"
                    if self.sftp_options
                    else ""
                )
            )
        tools = self.tools
        out += [
            "References: " + ", ".join(f"{k}: {v}" for k, v in self.reference_names.items()),
            f"Our server's allocator: {self.server_allocator} (the add-on preloads jemalloc); "
            "the references run on the system's",
            f"Versions: {python_versions()}; {program_version([tools.ssh, '-V'])}; "
            f"{program_version([tools.rclone, 'version'])}; "
            f"{program_version([tools.curl, '--version']).split(' (')[0]}",
            f"Machine: nproc {os.cpu_count()}, {cpu_model()}, {platform.system()} "
            f"{platform.release()}",
            "Load average (1/5/15 min): " + "; ".join(f"{w} {v}" for w, v in self.loads),
            "Notes: all files are in the page cache for every server (dropping caches is not "
            "reliable here); dirty pages are flushed (sync) before each transfer; GETs write to "
            "a local file on both sides; server CPU includes the reference's reaped "
            "per-connection children; client CPU is sftp+ssh or curl.",
        ]
        return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=1024, help="payload size (default 1024)")
    parser.add_argument("--repeat", type=int, default=2, help="repeats per transfer (default 2)")
    parser.add_argument(
        "--protocols",
        choices=["both", "sftp", "webdav"],
        default="both",
        help="which protocols to measure (default both)",
    )
    parser.add_argument(
        "--references-only",
        action="store_true",
        help="measure only OpenSSH and rclone (to check the harness without our server)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="parent of the temporary directory (default: the system temp dir; must be on disk)",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra argument for backup-drive-server, e.g. --server-arg=--log-level=WARNING",
    )
    parser.add_argument(
        "--sftp-cipher",
        default=None,
        help="make OpenSSH's client use this cipher on both sides (default: its own choice), "
        "e.g. aes128-gcm@openssh.com",
    )
    parser.add_argument(
        "--sftp-option",
        action="append",
        default=[],
        help="extra option for every sftp command on both sides, e.g. --sftp-option=-R128",
    )
    parser.add_argument(
        "--cpu",
        choices=["both", *CPU_MODES],
        default="both",
        help="measure as on a CPU with AES instructions, without them (emulated), or both "
        "(default both, one after the other)",
    )
    add_server_allocator_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.size_mib < 1 or args.repeat < 1:
        parser.error("--size-mib and --repeat must be at least 1")
    return args


def check_free_space(work: Path, size: int) -> None:
    """Stop unless the work dir holds the payload, three uploads and one download, with room."""
    needed = size * 5 + 256 * MIB
    free = shutil.disk_usage(work).free
    if free < needed:
        raise SystemExit(
            f"{work} has {free / MIB:.0f} MiB free; the benchmark needs {needed / MIB:.0f} MiB "
            "(choose another place with --workdir or a smaller --size-mib)"
        )


def raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so that every cleanup runs."""
    print("terminated; cleaning up", file=sys.stderr)
    raise SystemExit(128 + signum)


def sftp_endpoints(
    *,
    tools: Tools,
    work: Path,
    public_key: str,
    ours: BackupTarget | None,
    sampler: RssSampler,
    stack: contextlib.ExitStack,
) -> dict[str, SftpEndpoint]:
    """Start sshd and describe it and our server as SFTP endpoints."""
    endpoints: dict[str, SftpEndpoint] = {}
    if ours is not None:
        assert ours.process is not None
        known_hosts = work / "ours_known_hosts"
        known_hosts.write_text(ours.known_hosts_line() + "\n")
        endpoints["ours"] = SftpEndpoint(
            label="ours",
            port=ours.sftp_port,
            user=BENCH_USER,
            known_hosts=known_hosts,
            remote_path=f"/backups/{REMOTE_NAME}",
            local_path=ours.storage / "backups" / REMOTE_NAME,
            pid=ours.process.pid,
        )
    sshd, port, known_hosts = start_sshd(tools, work, public_key, stack)
    sampler.watch("sshd", sshd.pid)
    landing = work / "sshd-root" / REMOTE_NAME
    landing.parent.mkdir()
    endpoints["reference"] = SftpEndpoint(
        label="OpenSSH sshd",
        port=port,
        user="root",
        known_hosts=known_hosts,
        remote_path=str(landing),
        local_path=landing,
        pid=sshd.pid,
    )
    return endpoints


def webdav_endpoints(
    tools: Tools,
    work: Path,
    ours: BackupTarget | None,
    sampler: RssSampler,
    stack: contextlib.ExitStack,
) -> dict[str, WebDavEndpoint]:
    """Start rclone and describe it and our server as WebDAV endpoints."""
    # rclone only speaks Basic; ours offers both, so Basic on both sides keeps one recipe.
    endpoints: dict[str, WebDavEndpoint] = {}
    if ours is not None:
        assert ours.process is not None
        endpoints["ours"] = WebDavEndpoint(
            label="ours",
            url=f"http://127.0.0.1:{ours.webdav_port}/backups/{REMOTE_NAME}",
            user=BENCH_USER,
            password=BENCH_PASSWORD,
            auth_flag="--basic",
            local_path=ours.storage / "backups" / REMOTE_NAME,
            pid=ours.process.pid,
        )
    rclone, port, root = start_rclone(tools, work, stack)
    sampler.watch("rclone", rclone.pid)
    endpoints["reference"] = WebDavEndpoint(
        label="rclone",
        url=f"http://127.0.0.1:{port}/{REMOTE_NAME}",
        user=BENCH_USER,
        password=BENCH_PASSWORD,
        auth_flag="--basic",
        local_path=root / REMOTE_NAME,
        pid=rclone.pid,
    )
    return endpoints


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> Report:
    """Set everything up, measure, and return the report (cleanup is left to `stack`)."""
    sftp_options = list(args.sftp_option)
    if args.sftp_cipher:
        sftp_options += ["-c", args.sftp_cipher]
    plan = Plan(
        repeat=args.repeat,
        timeout=max(120.0, args.size_mib * 0.6),
        verbose=not args.quiet,
        sftp_options=sftp_options,
    )
    tools = Tools.find()
    work = Path(tempfile.mkdtemp(prefix="server-bench-", dir=args.workdir))
    stack.callback(shutil.rmtree, work, ignore_errors=True)
    check_free_space(work, args.size_mib * MIB)
    report = Report(
        size=args.size_mib * MIB,
        repeat=args.repeat,
        tools=tools,
        sftp_options=sftp_options,
        server_allocator=args.server_allocator,
    )
    report.loads.append(("start", load_text()))

    log(plan, f"writing {args.size_mib} MiB of random data in {work}")
    payload = make_payload(work / "payload.bin", args.size_mib * MIB)
    key = work / "client_ed25519_key"
    public_key = generate_ssh_key(tools, key)

    sampler = RssSampler()
    stack.callback(sampler.stop)
    ours: BackupTarget | None = None
    if not args.references_only:
        log(plan, "starting backup-drive-server")
        ours = start_ours(
            work, public_key, args.server_arg, stack, server_env(args.server_allocator)
        )
        assert ours.process is not None
        sampler.watch("ours", ours.process.pid)
    sampler.start()

    if args.protocols in {"both", "sftp"}:
        log(plan, "starting OpenSSH sshd")
        endpoints = sftp_endpoints(
            tools=tools, work=work, public_key=public_key, ours=ours, sampler=sampler, stack=stack
        )
        report.reference_names["SFTP"] = "OpenSSH sshd (internal-sftp)"
        report.ciphers = {
            side: negotiated_cipher(tools, endpoint, key, plan.sftp_options)
            for side, endpoint in endpoints.items()
        }
        report.results["SFTP"] = bench_sftp(
            plan=plan, tools=tools, payload=payload, key=key, endpoints=endpoints, work=work
        )
        report.loads.append(("after SFTP", load_text()))

    if args.protocols in {"both", "webdav"}:
        log(plan, "starting rclone serve webdav")
        dav_endpoints = webdav_endpoints(tools, work, ours, sampler, stack)
        report.reference_names["WebDAV"] = "rclone serve webdav"
        report.results["WebDAV"] = bench_webdav(
            plan=plan, tools=tools, payload=payload, endpoints=dav_endpoints, work=work
        )
        report.loads.append(("after WebDAV", load_text()))

    sampler.sample_once()
    sampler.stop()
    report.peak_rss_kib = dict(sampler.peak_kib)
    report.rss_samples = sampler.samples
    if ours is not None and ours.process is not None:
        report.ours_hwm_kib = status_kib(ours.process.pid, "VmHWM")
        exit_code = ours.stop()
        if exit_code != 0:
            log(plan, f"note: backup-drive-server exited with {exit_code} on SIGTERM")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; 1 only when a transfer went wrong."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    for mode in CPU_MODES if args.cpu == "both" else [args.cpu]:
        # Every process of the run (our server, sshd, rclone, the clients) inherits it; this
        # process itself does no cryptography.
        set_cpu_mode(mode)
        with contextlib.ExitStack() as stack:
            try:
                report = run(args, stack)
            except BenchError as err:
                print(f"benchmark failed, no figures: {err}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print("interrupted; cleaned up", file=sys.stderr)
                return 130
        print(f"# CPU mode: {CPU_MODES[mode]}\n")
        print(report.render(), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
