"""Soak backup-drive-server: real clients keep working while attacks run at once; print a table.

For `--duration` seconds (60 by default), on loopback: 20 WebDAV clients download in a loop and 4
SFTP clients upload in a loop (from 127.0.0.1), while attackers from 127.0.0.2 on hold 300
slow-loris WebDAV connections, send large unauthenticated WebDAV bodies, replay a captured Digest
request, keep idle sockets open on the SFTP port and flood SFTP sessions with open handles. Every
two seconds Home Assistant's login (asyncssh, as `homeassistant`) is timed.

The table: errors the real clients saw (target 0), the login latency (target < 2 s), the server's
peak RSS (target < 150 MiB) and its open files before and after. Not a test: it exits 0 when a
target is missed (and says which), 1 only when the server could not be started.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import http.client
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.process_stats import (  # noqa: E402
    RssSampler,
    add_server_allocator_argument,
    cpu_seconds,
    markdown_table,
    server_env,
)
from tests.backup_target import HOMEASSISTANT_USER, BackupTarget  # noqa: E402

MIB = 1024 * 1024
SOAK_USER = "soak"
SOAK_PASSWORD = "soak-password-not-secret"  # loopback only, the account lives for one run
ATTACK_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 12)]
SLOW_LORIS = 300
WEBDAV_CLIENTS = 20
SFTP_UPLOADERS = 4
# The uploaders stand for other machines on the LAN: 127.0.0.21 and up (attackers use 2 to 11).
UPLOADER_FIRST_ADDRESS = 21
IDLE_SFTP_SOCKETS = 50
HANDLES_PER_FLOOD = 200
LOGIN_TARGET_SECONDS = 2.0
RSS_TARGET_MIB = 150.0
SETTLE_SECONDS = 20.0


@dataclass
class Tally:
    """Counts shared by the client and attacker threads."""

    ok: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)
    logins: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str, error: BaseException | None = None) -> None:
        """Record one success (or one error) of `what`."""
        with self.lock:
            book = self.ok if error is None else self.errors
            book[what] = book.get(what, 0) + 1
            if error is not None:
                self.last_error[what] = repr(error)[:200]


def open_files(pid: int) -> int:
    """Count the file descriptors a process holds."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def basic_header(user: str, password: str) -> str:
    """Return a Basic Authorization value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def webdav_client(
    target: BackupTarget, stop: threading.Event, tally: Tally, payload: bytes
) -> None:
    """Download the payload over WebDAV in a loop, as a file manager would; count errors."""
    auth = basic_header(SOAK_USER, SOAK_PASSWORD)
    while not stop.is_set():
        connection = http.client.HTTPConnection("127.0.0.1", target.webdav_port, timeout=30)
        try:
            connection.request("GET", "/backups/soak-payload.bin", headers={"Authorization": auth})
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as err:
            tally.count("WebDAV GET", err)
            continue
        finally:
            connection.close()
        if response.status == 200 and body == payload:
            tally.count("WebDAV GET")
        else:
            tally.count("WebDAV GET", RuntimeError(f"{response.status}, {len(body)} bytes"))


def open_slow_connection(target: BackupTarget, index: int) -> socket.socket:
    """Open a WebDAV connection from an attacker's address and send half a request head."""
    sock = socket.create_connection(
        ("127.0.0.1", target.webdav_port), timeout=5,
        source_address=(ATTACK_ADDRESSES[index % len(ATTACK_ADDRESSES)], 0),
    )  # fmt: skip
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    return sock


def slow_loris(target: BackupTarget, stop: threading.Event, tally: Tally) -> None:
    """Keep SLOW_LORIS connections sending one header line every 5 s, reopening dropped ones."""
    sockets: list[socket.socket | None] = [None] * SLOW_LORIS
    while not stop.is_set():
        for index, held in enumerate(sockets):
            try:
                if held is None:
                    sockets[index] = open_slow_connection(target, index)
                    tally.count("slow-loris connections opened")
                else:
                    held.sendall(b"X-Slow: 1\r\n")
            except OSError:
                if held is not None:
                    held.close()
                sockets[index] = None
        stop.wait(5)
    for sock in sockets:
        if sock is not None:
            sock.close()


def big_unauthenticated_bodies(target: BackupTarget, stop: threading.Event, tally: Tally) -> None:
    """Send 300 MiB unauthenticated PROPFIND bodies, one after another."""
    chunk = b"<" * MIB
    while not stop.is_set():
        try:
            with socket.create_connection(
                ("127.0.0.1", target.webdav_port), timeout=10, source_address=("127.0.0.2", 0)
            ) as sock:
                sock.sendall(b"PROPFIND / HTTP/1.1\r\nHost: x\r\nContent-Length: 314572800\r\n\r\n")
                for _ in range(300):
                    if stop.is_set():
                        break
                    sock.sendall(chunk)
        except OSError:
            pass  # the server closes the connection after its 401: that is the point
        tally.count("big unauthenticated bodies sent")


def digest_replays(target: BackupTarget, stop: threading.Event, tally: Tally) -> None:
    """Capture one valid Digest PUT, then replay it with other bodies as fast as answers come."""
    path = "/backups/replayed.txt"
    connection = http.client.HTTPConnection("127.0.0.1", target.webdav_port, timeout=10)
    connection.request("PUT", path)
    challenge = connection.getresponse()
    challenge.read()
    nonce = re.search(r'nonce="([^"]+)"', challenge.headers.get("WWW-Authenticate", ""))
    connection.close()
    if nonce is None:
        tally.count("digest replays", RuntimeError("no Digest challenge"))
        return

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    ha1 = md5(f"{SOAK_USER}:Backup Drive:{SOAK_PASSWORD}")
    response = md5(f"{ha1}:{nonce.group(1)}:00000001:c0ffee:auth:{md5(f'PUT:{path}')}")
    header = (
        f'Digest username="{SOAK_USER}", realm="Backup Drive", nonce="{nonce.group(1)}", '
        f'uri="{path}", qop=auth, nc=00000001, cnonce="c0ffee", response="{response}"'
    )
    number = 0
    while not stop.is_set():
        number += 1
        connection = http.client.HTTPConnection(
            "127.0.0.1", target.webdav_port, timeout=10, source_address=("127.0.0.3", 0)
        )
        try:
            connection.request(
                "PUT", path, body=f"replay {number}", headers={"Authorization": header}
            )
            status = connection.getresponse().status
            if number == 1:
                tally.count("digest request captured (its one valid use)")
            else:
                tally.count("digest replays accepted" if status < 300 else "digest replays refused")
        except (OSError, http.client.HTTPException):
            tally.count("digest replays refused")
        finally:
            connection.close()
        stop.wait(0.2)


def known_hosts(target: BackupTarget) -> asyncssh.SSHKnownHosts:
    """Trust exactly the target's host key."""
    return asyncssh.import_known_hosts(target.known_hosts_line() + "\n")


async def ssh_connect(
    target: BackupTarget, user: str, password: str, address: str = "127.0.0.1"
) -> asyncssh.SSHClientConnection:
    """Log in over SSH with a password."""
    return await asyncssh.connect(
        "127.0.0.1", target.sftp_port, username=user, password=password,
        known_hosts=known_hosts(target), agent_path=None, config=None,
        preferred_auth="password", local_addr=(address, 0), connect_timeout=30,
    )  # fmt: skip


async def sftp_uploader(
    target: BackupTarget, stop: threading.Event, tally: Tally, number: int
) -> None:
    """Upload 8 MiB files over SFTP in a loop, as Home Assistant's backups do; count errors.

    Each uploader is another machine on the LAN (its own address): five logins at once from one
    address are more than the four the server lets wait per address (DOCS.md), by design.
    """
    payload = bytes(range(256)) * (8 * MIB // 256)
    address = f"127.0.0.{UPLOADER_FIRST_ADDRESS + number}"
    while not stop.is_set():
        try:
            async with (
                await ssh_connect(target, HOMEASSISTANT_USER, target.password, address) as conn,
                conn.start_sftp_client() as sftp,
                sftp.open(f"/backups/soak-upload-{number}.tar", "wb") as handle,
            ):
                await handle.write(payload)
            tally.count("SFTP upload")
        except (OSError, asyncssh.Error) as err:
            tally.count("SFTP upload", err)


async def login_prober(target: BackupTarget, stop: threading.Event, tally: Tally) -> None:
    """Time Home Assistant's login every two seconds."""
    while not stop.is_set():
        started = time.perf_counter()
        try:
            async with await ssh_connect(target, HOMEASSISTANT_USER, target.password):
                pass
            with tally.lock:
                tally.logins.append(time.perf_counter() - started)
        except (OSError, asyncssh.Error) as err:
            tally.count("Home Assistant login", err)
        await asyncio.sleep(2)


async def idle_sftp_sockets(target: BackupTarget, stop: threading.Event, tally: Tally) -> None:
    """Hold sockets open on the SFTP port that never send a byte."""
    writers = []
    for index in range(IDLE_SFTP_SOCKETS):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(
                "127.0.0.1", target.sftp_port, local_addr=(ATTACK_ADDRESSES[index % 10], 0)
            )
            writers.append(writer)
    tally.count("idle SFTP sockets opened")
    await asyncio.to_thread(stop.wait)
    for writer in writers:
        writer.close()


async def handle_flood(target: BackupTarget, stop: threading.Event, tally: Tally) -> None:
    """Log in as the soak user and open files without closing them, session after session."""
    while not stop.is_set():
        try:
            async with (
                await ssh_connect(target, SOAK_USER, SOAK_PASSWORD, "127.0.0.4") as conn,
                conn.start_sftp_client() as sftp,
            ):
                for _ in range(HANDLES_PER_FLOOD):
                    await sftp.open("/backups/soak-payload.bin", "rb")
            tally.count("handle floods")
        except (OSError, asyncssh.Error):
            tally.count("handle floods refused")


def run_async_parts(target: BackupTarget, stop: threading.Event, tally: Tally) -> None:
    """Run the SFTP clients and attacks on one event loop until `stop`."""

    async def main() -> None:
        await asyncio.gather(
            *(sftp_uploader(target, stop, tally, n) for n in range(SFTP_UPLOADERS)),
            login_prober(target, stop, tally),
            idle_sftp_sockets(target, stop, tally),
            handle_flood(target, stop, tally),
        )

    asyncio.run(main())


def legitimate_client_lines(log: str) -> list[str]:
    """Return the server's log lines that name an address of the real clients."""
    uploaders = range(UPLOADER_FIRST_ADDRESS, UPLOADER_FIRST_ADDRESS + SFTP_UPLOADERS)
    addresses = ["127.0.0.1", *(f"127.0.0.{n}" for n in uploaders)]
    return [
        line
        for line in log.splitlines()
        if any(f"{address} " in line or f"{address}:" in line for address in addresses)
    ]


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


def soak(duration: float, workdir: Path, server_allocator: str) -> list[str]:
    """Run the soak once; return the report's lines."""
    target = BackupTarget(
        storage=workdir / "storage",
        data_dir=workdir / "data",
        options={"users": [{"username": SOAK_USER, "password": SOAK_PASSWORD}]},
        extra_args=["--log-level", "warning"],
        env=server_env(server_allocator),
    ).start()
    try:
        assert target.process is not None
        pid = target.process.pid
        payload = bytes(range(256)) * (MIB // 256)
        (workdir / "storage" / "backups").mkdir(parents=True, exist_ok=True)
        (workdir / "storage" / "backups" / "soak-payload.bin").write_bytes(payload)
        time.sleep(1)
        files_before = open_files(pid)
        cpu_before = cpu_seconds(pid)
        tally = Tally()
        stop = threading.Event()
        jobs: list[tuple[Callable[..., None], tuple[object, ...]]] = [
            *((webdav_client, (target, stop, tally, payload)) for _ in range(WEBDAV_CLIENTS)),
            (slow_loris, (target, stop, tally)),
            *((big_unauthenticated_bodies, (target, stop, tally)) for _ in range(4)),
            (digest_replays, (target, stop, tally)),
            (run_async_parts, (target, stop, tally)),
        ]
        threads = [threading.Thread(target=job, args=args, daemon=True) for job, args in jobs]
        with RssSampler() as sampler:
            sampler.watch("server", pid)
            for thread in threads:
                thread.start()
            time.sleep(duration)
            stop.set()
            for thread in threads:
                thread.join(60)
        settled = wait_for(lambda: open_files(pid) <= files_before + 2, SETTLE_SECONDS)
        files_after = open_files(pid)
        lines = report(
            tally,
            peak_mib=sampler.peak_kib["server"] / 1024,
            files_before=files_before,
            files_after=files_after,
            settled=settled,
            cpu=cpu_seconds(pid) - cpu_before,
            duration=duration,
        )
        if tally.errors:
            lines += ["", "What the server logged about the real clients' addresses:"]
            lines += [f"    {line}" for line in legitimate_client_lines(target.log)][:20]
        return lines
    finally:
        target.stop()


def report(
    tally: Tally,
    *,
    peak_mib: float,
    files_before: int,
    files_after: int,
    settled: bool,
    cpu: float,
    duration: float,
) -> list[str]:
    """Format the results and the targets they meet or miss."""
    legit = ("WebDAV GET", "SFTP upload", "Home Assistant login")
    errors = sum(tally.errors.get(what, 0) for what in legit)
    logins = tally.logins or [float("inf")]
    rows = [
        ["errors seen by real clients", str(errors), "0", "met" if errors == 0 else "MISSED"],
        ["Home Assistant login, worst (s)", f"{max(logins):.2f}", f"< {LOGIN_TARGET_SECONDS}",
         "met" if max(logins) < LOGIN_TARGET_SECONDS else "MISSED"],
        ["Home Assistant login, median (s)", f"{statistics.median(logins):.2f}", "", ""],
        ["server peak RSS (MiB)", f"{peak_mib:.0f}", f"< {RSS_TARGET_MIB:.0f}",
         "met" if peak_mib < RSS_TARGET_MIB else "MISSED"],
        ["server open files before / after", f"{files_before} / {files_after}", "back to before",
         "met" if settled else "MISSED"],
        ["server CPU (s)", f"{cpu:.1f}", "", ""],
    ]  # fmt: skip
    lines = [f"Soak of {duration:.0f} s on loopback", ""]
    lines += markdown_table(["measure", "value", "target", ""], rows)
    counts = sorted({*tally.ok, *tally.errors})
    lines += ["", *markdown_table(["activity", "ok", "errors"], [
        [what, str(tally.ok.get(what, 0)), str(tally.errors.get(what, 0))] for what in counts
    ])]  # fmt: skip
    lines += [f"- last error of {what}: {error}" for what, error in tally.last_error.items()]
    return lines


def main() -> int:
    """Parse flags, run the soak, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    add_server_allocator_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        try:
            lines = soak(args.duration, Path(workdir), args.server_allocator)
            lines.append(f"Our server's allocator: {args.server_allocator}")
        except RuntimeError as err:
            print(f"soak: the server could not be started: {err}", file=sys.stderr)
            return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
