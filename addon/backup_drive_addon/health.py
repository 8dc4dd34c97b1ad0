"""Probe the SFTP and WebDAV servers the way a client first reaches them."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path


def read_ssh_banner(port: int, connect_timeout: float, host: str = "127.0.0.1") -> bytes:
    """Connect to `port` and return the first bytes the server sends (SSH's banner)."""
    with socket.create_connection((host, port), timeout=connect_timeout) as sock:
        sock.settimeout(5)
        return sock.recv(64)


def webdav_scheme(options_file: Path) -> str:
    """Read from the options whether WebDAV speaks TLS."""
    try:
        options = json.loads(options_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "http"
    return "https" if isinstance(options, dict) and options.get("webdav_tls") else "http"


def check_health(
    sftp_port: int, webdav_port: int, scheme: str, host: str = "127.0.0.1"
) -> list[str]:
    """Probe both servers; return what is wrong (nothing when healthy)."""
    problems = []
    try:
        if not read_ssh_banner(sftp_port, 5, host).startswith(b"SSH-"):
            problems.append(f"SFTP on port {sftp_port} did not send an SSH banner")
    except OSError as err:
        problems.append(f"SFTP on port {sftp_port}: {err}")
    context = ssl.create_default_context()
    # The certificate names the public host name, not 127.0.0.1: only liveness matters here.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(f"{scheme}://{host}:{webdav_port}/", method="OPTIONS")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5, context=context):  # noqa: S310
            pass
    except urllib.error.HTTPError as err:
        # 401 is the healthy answer without credentials.
        if err.code >= 500:
            problems.append(f"WebDAV on port {webdav_port} answered HTTP {err.code}")
    except (urllib.error.URLError, OSError) as err:
        problems.append(f"WebDAV on port {webdav_port}: {getattr(err, 'reason', err)}")
    return problems
