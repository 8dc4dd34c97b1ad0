"""Keep slow or hostile WebDAV clients from holding cheroot's worker threads or its memory."""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from typing import Any

from cheroot import server, wsgi
from cheroot.makefile import StreamReader
from cheroot.ssl.builtin import BuiltinSSLAdapter

_LOGGER = logging.getLogger(__name__)

# A request's line and headers must arrive within this many seconds of its first byte (or of
# the connection being opened). Real clients send them in one packet.
HEADER_SECONDS = 10.0
# Largest request head (line and headers) accepted; Explorer's with a long path is ~2 KiB.
MAX_HEAD_BYTES = 64 * 1024
# Open connections one address may hold; Explorer, Finder and Home Assistant use a handful.
MAX_CONNECTIONS_PER_ADDRESS = 32
# Connections the kernel queues until the server accepts them.
LISTEN_BACKLOG = 512
# Open connections in all; each costs a file descriptor and a few KiB, never a thread.
MAX_CONNECTIONS = 1000
# Refused connections are logged at most once per address in this many seconds.
REFUSAL_LOG_SECONDS = 60.0
# Largest unread request body read and thrown away to keep a connection open after an early
# answer (a 401 to a PUT); beyond this the connection is closed instead.
DRAIN_LIMIT = 64 * 1024
TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 49\r\n"
    b"Connection: close\r\n\r\nToo many connections from your address; try later.\n"
)
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 35\r\nConnection: close\r\n\r\nThe request headers are too large.\n"
)


class _PrefetchedSocketIO(socket.SocketIO):
    """A socket's raw stream that first returns bytes the selector thread already received."""

    def __init__(self, sock: socket.socket) -> None:
        """Read from `sock`."""
        super().__init__(sock, "rb")
        self.prefetched = bytearray()

    def readinto(self, buffer: Any) -> int | None:
        """Fill `buffer` from the prefetched bytes, then from the socket."""
        if not self.prefetched:
            return super().readinto(buffer)
        count = min(len(buffer), len(self.prefetched))
        buffer[:count] = self.prefetched[:count]
        del self.prefetched[:count]
        return count


class _ConnectionReader(StreamReader):
    """cheroot's socket reader over a stream that may hold prefetched bytes."""

    def __init__(self, sock: socket.socket, bufsize: int) -> None:
        """Read `sock` in `bufsize` blocks."""
        # StreamReader.__init__ would build a plain SocketIO; its parent takes any raw stream.
        self.raw_stream = _PrefetchedSocketIO(sock)
        super(StreamReader, self).__init__(self.raw_stream, bufsize)
        self.bytes_read = 0


class GuardedRequest(server.HTTPRequest):
    """A request that closes its connection rather than read a large unread body into memory."""

    def send_headers(self) -> None:
        """Close instead of draining a body the application did not read (a 401 to a PUT)."""
        # cheroot would read the rest of the body with one blocking read() before answering:
        # a refused 300 MiB body cost 300 MiB, and a body sent slowly held the thread.
        if self.chunked_read and int(self.status[:3]) >= 400:
            self.close_connection = True
        unread = getattr(self.rfile, "remaining", 0)
        if unread > DRAIN_LIMIT or (unread > 0 and not self._discard_arrived_body()):
            self.close_connection = True
        super().send_headers()

    def _discard_arrived_body(self) -> bool:
        """Throw away the unread body as far as it has arrived; return whether it all had."""
        reader: _ConnectionReader = self.conn.rfile
        while self.rfile.remaining > 0:
            buffered = reader.has_data() or reader.raw_stream.prefetched  # type: ignore[no-untyped-call]
            if not (buffered or _readable(self.conn)):
                return False
            chunk = reader.read1(min(self.rfile.remaining, DRAIN_LIMIT))
            if not chunk:
                return False
            self.rfile.remaining -= len(chunk)
        return True


def _readable(conn: server.HTTPConnection) -> bool:
    """Return whether bytes wait on the connection's socket (or in its TLS layer) right now."""
    sock = conn.socket
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class GuardedConnection(server.HTTPConnection):
    """A connection that counts against its address and reads its request head off-thread."""

    RequestHandlerClass = GuardedRequest

    def __init__(self, http_server: GuardedServer, sock: socket.socket, makefile: Any) -> None:
        """Wrap `sock`; the makefile argument is replaced by a reader that can prefetch."""
        super().__init__(http_server, sock, makefile)
        self.rfile = _ConnectionReader(sock, self.rbufsize)
        self.admitted = False
        self.head_deadline: float | None = None

    def prefetched(self) -> bytearray:
        """Return the bytes received ahead of the worker thread."""
        return self.rfile.raw_stream.prefetched  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the socket and free the address's slot."""
        super().close()
        if self.admitted:
            self.admitted = False
            self.server.release(self)


class DeferredHandshakeAdapter(BuiltinSSLAdapter):
    """TLS whose handshake advances as the client sends, never blocking the accept loop."""

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
        """Wrap the socket without shaking hands yet; GuardedServer reads it without blocking."""
        # cheroot's adapter shakes hands inside the loop that accepts every connection, with
        # the full timeout: one client that connects and stays silent held off all others.
        tls = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        return tls, {"wsgi.url_scheme": "https", "HTTPS": "on"}


class GuardedServer(wsgi.Server):
    """cheroot that hands a worker thread only connections whose request head has arrived."""

    ConnectionClass = GuardedConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Take cheroot's wsgi.Server arguments."""
        super().__init__(*args, **kwargs)
        # Idle keep-alive connections wait in the selector, not in a thread, so they are cheap.
        self.keep_alive_conn_limit = MAX_CONNECTIONS
        self._open_by_address: dict[str, int] = {}
        self._count_lock = threading.Lock()
        self._refusals_logged: dict[str, float] = {}

    def process_conn(self, conn: GuardedConnection) -> None:
        """Admit a new connection, then pass it to a worker once its request head is complete."""
        if not conn.admitted and not self._admit(conn):
            return
        # Buffered bytes of a pipelined request: its head was read along with the previous one.
        if conn.rfile.has_data():
            super().process_conn(conn)
            return
        if conn.head_deadline is None:
            conn.head_deadline = time.monotonic() + HEADER_SECONDS
        try:
            complete = self._prefetch(conn)
        except OSError:
            conn.close()
            return
        if complete:
            conn.head_deadline = None
            super().process_conn(conn)
            return
        if len(conn.prefetched()) > MAX_HEAD_BYTES:
            self._refuse(conn, HEAD_TOO_LARGE)
            return
        self.put_conn(conn)
        # The selector closes connections unused for `timeout` seconds: dating this one back
        # makes it close when the head's deadline passes.
        conn.last_used = time.time() + (conn.head_deadline - time.monotonic()) - self.timeout

    def release(self, conn: GuardedConnection) -> None:
        """Forget a closed connection in its address's count."""
        address = str(conn.remote_addr)
        with self._count_lock:
            left = self._open_by_address.get(address, 1) - 1
            if left > 0:
                self._open_by_address[address] = left
            else:
                self._open_by_address.pop(address, None)

    def _admit(self, conn: GuardedConnection) -> bool:
        address = str(conn.remote_addr)
        with self._count_lock:
            total = sum(self._open_by_address.values())
            from_address = self._open_by_address.get(address, 0)
            if from_address < MAX_CONNECTIONS_PER_ADDRESS and total < MAX_CONNECTIONS:
                self._open_by_address[address] = from_address + 1
                conn.admitted = True
                return True
        # One line per address and minute: a flood of refused connections must not flood the log.
        now = time.monotonic()
        if now - self._refusals_logged.get(address, -REFUSAL_LOG_SECONDS) >= REFUSAL_LOG_SECONDS:
            if len(self._refusals_logged) > MAX_CONNECTIONS:
                self._refusals_logged.clear()
            self._refusals_logged[address] = now
            _LOGGER.warning(
                "Refused WebDAV connections from %s: %d open from that address, %d in all",
                address, from_address, total,
            )  # fmt: skip
        self._refuse(conn, TOO_MANY_CONNECTIONS)
        return False

    @staticmethod
    def _refuse(conn: GuardedConnection, answer: bytes) -> None:
        try:
            conn.socket.settimeout(0)
            conn.socket.send(answer)  # a short answer fits the empty send buffer
        except OSError:
            pass
        conn.close()

    @staticmethod
    def _prefetch(conn: GuardedConnection) -> bool:
        """Receive what has arrived without blocking; return whether the head is complete."""
        sock = conn.socket
        buffer = conn.prefetched()
        previous_timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            while len(buffer) <= MAX_HEAD_BYTES:
                chunk = sock.recv(16384)
                if not chunk:
                    raise ConnectionResetError("the client closed the connection")
                buffer += chunk
                if b"\r\n\r\n" in buffer or b"\n\n" in buffer:
                    return True
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        finally:
            sock.settimeout(previous_timeout)
        return False
