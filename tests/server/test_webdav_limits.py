"""WebDAV keeps serving real clients while others hold connections open or send huge bodies."""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.backup_target import BackupTarget
from tests.server.conftest import (
    LOCK_EXCLUSIVE,
    Accounts,
    basic_auth,
    dav,
    destination,
    wait_until,
)
from tests.server.test_options import make_certificate

MIB = 1024 * 1024
SLOW_CONNECTIONS = 300
SLOW_ADDRESSES = 10  # 30 connections from each, under the per-address cap
NORMAL_GETS = 20
MAX_LOCK_MINUTES = 10


def vm_rss_mib(pid: int) -> float:
    """Return a process's resident memory in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def open_sockets(pid: int) -> int:
    """Count the sockets a process holds open."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += fd.readlink().as_posix().startswith("socket:")
    return count


@contextlib.contextmanager
def slow_loris(target: BackupTarget, count: int, addresses: int) -> Iterator[list[socket.socket]]:
    """Open `count` connections from 127.0.0.2 on that send a request head one line at a time."""
    sockets: list[socket.socket] = []
    stop = threading.Event()

    def trickle() -> None:
        number = 0
        while not stop.wait(1.0):
            number += 1
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(f"X-Slow-{number}: 1\r\n".encode())

    try:
        for index in range(count):
            sock = socket.create_connection(
                ("127.0.0.1", target.webdav_port),
                timeout=10,
                source_address=(f"127.0.0.{2 + index % addresses}", 0),
            )
            sock.sendall(b"GET /backups/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sockets.append(sock)
        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        yield sockets
    finally:
        stop.set()
        for sock in sockets:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Return whether the server has closed this connection (without waiting)."""
    sock.setblocking(False)
    try:
        sock.recv(65536)  # an answer (503, 408) or the end of the stream: either way, it is over
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def test_slow_clients_do_not_stop_webdav(target: BackupTarget, accounts: Accounts) -> None:
    (target.storage / "backups" / "a.tar").write_bytes(b"backup")
    alice = (accounts.alice.username, accounts.alice.password)
    assert target.process is not None
    pid = target.process.pid
    with slow_loris(target, SLOW_CONNECTIONS, SLOW_ADDRESSES) as sockets:
        assert wait_until(lambda: open_sockets(pid) >= SLOW_CONNECTIONS)
        for _ in range(NORMAL_GETS):
            response = dav(target, "GET", "/backups/a.tar", auth=alice)
            assert response.status == 200, response.status
            assert response.body == b"backup"
        # The slow connections were all still open while the real client was served...
        assert open_sockets(pid) >= SLOW_CONNECTIONS
        # ...and the server drops them once their headers are overdue.
        assert wait_until(lambda: all(closed_by_server(sock) for sock in sockets))


def test_one_address_cannot_take_every_connection(target: BackupTarget, accounts: Accounts) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    with slow_loris(target, 60, 1) as sockets:
        # The connections over the cap are answered 503 and closed straight away.
        assert wait_until(lambda: sum(closed_by_server(sock) for sock in sockets) >= 20)
        assert target.log.count("Refused WebDAV connections from 127.0.0.2") == 1
        assert dav(target, "PROPFIND", "/", auth=alice, headers={"Depth": "0"}).status == 207


def send_unauthenticated_body(target: BackupTarget, size: int) -> bytes:
    """Send a PROPFIND with a `size` body and no credentials; return what the server answered."""
    chunk = b"<" * MIB
    with socket.create_connection(("127.0.0.1", target.webdav_port), timeout=30) as sock:
        sock.sendall(
            b"PROPFIND / HTTP/1.1\r\nHost: 127.0.0.1\r\nDepth: 0\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        with contextlib.suppress(OSError):  # the server closes the connection while we send
            for _ in range(size // MIB):
                sock.sendall(chunk)
        answer = b""
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                answer += data
        return answer


def answer_before_body(target: BackupTarget, head: str) -> bytes:
    """Send a request head announcing a body with `Expect: 100-continue`; return the answer.

    Nothing is sent after the head, so no write of ours races the server's refusal.
    """
    with socket.create_connection(("127.0.0.1", target.webdav_port), timeout=15) as sock:
        sock.sendall(head.encode() + b"Expect: 100-continue\r\n\r\n")
        answer = b""
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                answer += data
        return answer


def test_unauthenticated_bodies_are_never_read_into_memory(target: BackupTarget) -> None:
    assert target.process is not None
    pid = target.process.pid
    before = vm_rss_mib(pid)
    peak = before
    senders = [
        threading.Thread(target=send_unauthenticated_body, args=(target, 64 * MIB))
        for _ in range(4)
    ]
    for sender in senders:
        sender.start()
    while any(sender.is_alive() for sender in senders):
        peak = max(peak, vm_rss_mib(pid))
        for sender in senders:
            sender.join(timeout=0.02)
    # Reading the four bodies took at least 4 x 64 MiB; a bounded read takes a few MiB.
    assert peak - before < 32, (before, peak)
    assert vm_rss_mib(pid) - before < 32
    answer = answer_before_body(
        target, "PROPFIND / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999\r\n"
    )
    assert b"HTTP/1.1 401" in answer, answer[:200]
    assert "MemoryError" not in target.log
    assert "Traceback" not in target.log


def test_large_xml_bodies_are_refused(target: BackupTarget, accounts: Accounts) -> None:
    authorization = basic_auth(accounts.alice.username, accounts.alice.password)["Authorization"]
    for method in ("PROPFIND", "PROPPATCH", "LOCK"):
        answer = answer_before_body(
            target,
            f"{method} /backups HTTP/1.1\r\nHost: 127.0.0.1\r\nDepth: 0\r\n"
            f"Authorization: {authorization}\r\nContent-Length: {2 * MIB}\r\n",
        )
        # cheroot says 100 Continue as soon as it sees the Expect header; the refusal follows.
        final = answer.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert final.startswith(b"HTTP/1.1 413"), (method, answer[:300])
        assert b"too large" in answer
    # One just under the limit is read and parsed (here: refused as the XML it is not).
    small = b"<" * (MIB - 1)
    response = dav(target, "PROPFIND", "/backups", auth=(accounts.alice.username,
                   accounts.alice.password), body=small, headers={"Depth": "0"})  # fmt: skip
    assert response.status == 400, response.status


def test_propfind_of_a_whole_tree_is_refused(target: BackupTarget, accounts: Accounts) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    for headers in ({"Depth": "infinity"}, {}):
        response = dav(target, "PROPFIND", "/", auth=alice, headers=headers)
        assert response.status == 403, (headers, response.status, response.text)
        assert "propfind-finite-depth" in response.text
    assert dav(target, "PROPFIND", "/", auth=alice, headers={"Depth": "1"}).status == 207


def granted_seconds(response_text: str) -> int:
    """Return the lifetime a LOCK answer grants, from its <timeout>Second-N</timeout>."""
    found = re.search(r"timeout>Second-(\d+)<", response_text)
    assert found, response_text
    return int(found.group(1))


def test_locks_expire_within_minutes(target: BackupTarget, accounts: Accounts) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    for timeout in ("Infinite", "Second-2419200"):
        headers = {"Depth": "infinity", "Timeout": timeout}
        locked = dav(target, "LOCK", "/", auth=alice, headers=headers, body=LOCK_EXCLUSIVE)
        assert locked.status == 200, locked.text
        assert granted_seconds(locked.text) <= MAX_LOCK_MINUTES * 60
        token = locked.headers["Lock-Token"]
        # A refresh asking for Infinite again gets the same cap.
        refresh_headers = {"If": f"({token})", "Timeout": "Infinite"}
        refreshed = dav(target, "LOCK", "/", auth=alice, headers=refresh_headers)
        assert refreshed.status == 200, refreshed.text
        assert granted_seconds(refreshed.text) <= MAX_LOCK_MINUTES * 60
        assert dav(target, "UNLOCK", "/", auth=alice, headers={"Lock-Token": token}).status == 204


def proppatch_body(values: dict[str, str]) -> bytes:
    """Return a PROPPATCH body that sets the given dead properties."""
    props = "".join(f"<Z:{name}>{value}</Z:{name}>" for name, value in values.items())
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:backup-drive:test">'
        f"<D:set><D:prop>{props}</D:prop></D:set></D:propertyupdate>"
    ).encode()


def test_properties_stay_small_and_leave_with_their_file(
    target: BackupTarget, accounts: Accounts
) -> None:
    alice = (accounts.alice.username, accounts.alice.password)
    store = target.data_dir / "webdav" / "properties.dat"
    backups = target.storage / "backups"
    # Too large: refused, nothing lands on Home Assistant's data disk.
    (backups / "big.tar").write_bytes(b"x")
    for _ in range(5):
        response = dav(target, "PROPPATCH", "/backups/big.tar", auth=alice,
                       body=proppatch_body({"huge": "h" * 500_000}))  # fmt: skip
        assert "507" in f"{response.status} {response.text}", response.text
    assert not store.exists() or store.stat().st_size < MIB
    # Many allowed ones, then DELETE gives their room back.
    for number in range(6):
        (backups / f"{number}.tar").write_bytes(b"x")
        values = {f"p{index}": "v" * 50_000 for index in range(10)}
        response = dav(target, "PROPPATCH", f"/backups/{number}.tar", auth=alice,
                       body=proppatch_body(values))  # fmt: skip
        assert response.status == 207 and "200 OK" in response.text, response.text
    assert store.stat().st_size > 2 * MIB
    for number in range(6):
        assert dav(target, "DELETE", f"/backups/{number}.tar", auth=alice).status == 204
    assert store.stat().st_size < MIB
    # MOVE takes the properties along.
    note = proppatch_body({"note": "moved along"})
    assert dav(target, "PROPPATCH", "/backups/big.tar", auth=alice, body=note).status == 207
    assert dav(target, "MOVE", "/backups/big.tar", auth=alice,
               headers=destination(target, "/backups/moved.tar")).status == 201  # fmt: skip
    found = dav(target, "PROPFIND", "/backups/moved.tar", auth=alice, headers={"Depth": "0"})
    assert "moved along" in found.text
    # One resource holds a bounded number of properties.
    many = {f"n{index}": "v" for index in range(120)}
    response = dav(target, "PROPPATCH", "/backups/moved.tar", auth=alice, body=proppatch_body(many))
    assert "507" in response.text, response.text


def test_silent_tls_clients_do_not_stop_webdav(
    start_target: Callable[..., BackupTarget], accounts: Accounts, tmp_path: Path
) -> None:
    cert_file, key_file = make_certificate(tmp_path / "ssl")
    target = start_target(
        extra_args=["--webdav-certfile", str(cert_file), "--webdav-keyfile", str(key_file)]
    )
    (target.storage / "backups" / "a.tar").write_bytes(b"over TLS")
    context = ssl.create_default_context(cafile=str(cert_file))
    silent = [
        socket.create_connection(("127.0.0.1", target.webdav_port), timeout=10) for _ in range(20)
    ]
    try:
        for _ in range(3):
            connection = http.client.HTTPSConnection(
                "127.0.0.1", target.webdav_port, timeout=15, context=context
            )
            connection.request("GET", "/backups/a.tar", headers=basic_auth(
                accounts.alice.username, accounts.alice.password))  # fmt: skip
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"over TLS")
            connection.close()
    finally:
        for sock in silent:
            sock.close()
