"""Clients that keep a server busy while it is told to stop, for the lifecycle test and bench."""

from __future__ import annotations

import base64
import socket
from dataclasses import dataclass

import asyncssh

from tests.backup_target import BackupTarget

# A tiny receive buffer makes the server's send() block as soon as the client stops reading.
STALLED_RECEIVE_BUFFER = 4096
UPLOAD_CHUNK = b"\0" * (1024 * 1024)


def stalled_webdav_download(
    target: BackupTarget, username: str, password: str, path: str
) -> socket.socket:
    """Start a WebDAV GET of `path` and never read the body; return the socket once it flows."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RECEIVE_BUFFER)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", target.webdav_port))
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {token}\r\n\r\n".encode()
    )
    sock.recv(1, socket.MSG_PEEK)  # the answer has started: the server is sending
    return sock


def closed_by_server(sock: socket.socket, timeout: float = 30.0) -> bool:
    """Read what is buffered; return whether the server closed the connection (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1024 * 1024):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True  # reset
    return True


@dataclass
class UploadInFlight:
    """An SFTP upload that has written some data and keeps its file open."""

    connection: asyncssh.SSHClientConnection
    file: asyncssh.SFTPClientFile


async def start_sftp_upload(
    target: BackupTarget, username: str, password: str, path: str
) -> UploadInFlight:
    """Open `path` for writing over SFTP, write 1 MiB and leave the file open."""
    connection = await asyncssh.connect(
        "127.0.0.1",
        target.sftp_port,
        username=username,
        password=password,
        client_keys=None,
        known_hosts=asyncssh.import_known_hosts(target.known_hosts_line() + "\n"),
        agent_path=None,
        config=None,
        connect_timeout=60,
    )
    sftp = await connection.start_sftp_client()
    file = await sftp.open(path, "wb")
    await file.write(UPLOAD_CHUNK)
    return UploadInFlight(connection, file)
