"""Start the real backup-drive-server as a subprocess for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

REPO_ROOT = Path(__file__).resolve().parent.parent
HOMEASSISTANT_USER = "homeassistant"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on `port`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def retry_on_port_clash[T](
    start_once: Callable[[], T],
    *,
    clashed: Callable[[], bool],
    pick_new_ports: Callable[[], None],
    attempts: int = 3,
) -> T:
    """Start a server; when a port picked free was taken before it bound it, try new ports."""
    for _attempt in range(attempts):
        try:
            return start_once()
        except RuntimeError:
            if not clashed():
                raise
            pick_new_ports()
    return start_once()


def user_option(
    username: str, password: str, public_key: str, *, read_only: bool = False
) -> dict[str, Any]:
    """Return an options.json `users` entry for an account that logs in with a password or key."""
    return {
        "username": username,
        "password": password,
        "read_only": read_only,
        "authorized_keys": [public_key],
    }


@dataclass
class BackupTarget:
    """A running backup-drive-server with its own storage root, data dir and ports."""

    storage: Path
    data_dir: Path
    options: dict[str, Any] | None = None
    extra_args: list[str] = field(default_factory=list)
    # Added to the server's environment (e.g. OPENSSL_ia32cap to emulate a CPU without AES).
    env: dict[str, str] = field(default_factory=dict)
    sftp_port: int = field(default_factory=free_port)
    webdav_port: int = field(default_factory=free_port)
    # The add-on's page (`--ui-port`): off unless a port is given (e.g. free_port()).
    ui_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, timeout: float = 30.0) -> Self:
        """Start the server and wait until both ports accept connections.

        Ports are picked free but can be taken by another process before the server binds
        them; then it is started again on new ports.
        """

        def pick_new_ports() -> None:
            self.sftp_port, self.webdav_port = free_port(), free_port()
            if self.ui_port is not None:
                self.ui_port = free_port()

        return retry_on_port_clash(
            lambda: self._start_once(timeout),
            clashed=lambda: "address already in use" in self.log,
            pick_new_ports=pick_new_ports,
        )

    def _start_once(self, timeout: float) -> Self:
        self.storage.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "backup_drive_server",
            "--storage", str(self.storage),
            "--data-dir", str(self.data_dir),
            "--bind", "127.0.0.1",
            "--sftp-port", str(self.sftp_port),
            "--webdav-port", str(self.webdav_port),
            *(["--ui-port", str(self.ui_port)] if self.ui_port is not None else []),
            *self.extra_args,
        ]  # fmt: skip
        if self.options is not None:
            options_file = self.data_dir.parent / f"options-{self.sftp_port}.json"
            options_file.write_text(json.dumps(self.options))
            args += ["--options", str(options_file)]
        self.log_path = self.data_dir.parent / f"server-{self.sftp_port}.log"
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        for port in (self.sftp_port, self.webdav_port, self.ui_port):
            if port is None:
                continue
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log}")
                try:
                    wait_for_port(port, timeout=0.5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        message = f"server did not listen on {port}:\n{self.log}"
                        raise RuntimeError(message) from None
        return self

    def stop(self, timeout: float = 15.0) -> int:
        """Send SIGTERM and wait for the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    @property
    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    @property
    def password(self) -> str:
        """The generated password of the built-in homeassistant account."""
        return (self.data_dir / "homeassistant.password").read_text().strip()

    @property
    def host_key(self) -> str:
        """The server's public host key, OpenSSH one-line format."""
        return (self.data_dir / "ssh_host_ed25519_key.pub").read_text().strip()

    def known_hosts_line(self) -> str:
        """A known_hosts entry for OpenSSH clients."""
        return f"[127.0.0.1]:{self.sftp_port} {self.host_key}"
