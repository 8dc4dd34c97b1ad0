"""Start OpenSSH's sshd with internal-sftp on loopback: the generic SFTP server (a NAS's kind)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tests.backup_target import free_port, retry_on_port_clash, wait_for_port
from tests.ssh_keys import generate_key_pair

PRIVSEP_DIR = Path("/run/sshd")


def ensure_privsep_dir() -> None:
    """Create /run/sshd, which sshd insists on; it stays (a standard system directory)."""
    if not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True)


@dataclass
class OpenSshServer:
    """A running sshd that lets root in with the given keys; it must be started as root.

    Root's password is never accepted (PermitRootLogin prohibit-password), so a password
    attempt, when enabled, always fails and shows in the log.
    """

    work: Path
    sshd: str
    ssh_keygen: str
    authorized_keys: list[str] = field(default_factory=list)
    password_authentication: bool = False
    # VERBOSE makes sshd log every public key a client offers, also the refused ones.
    log_level: str = "INFO"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Where sshd writes its log."""
        return self.work / "sshd.log"

    @property
    def log(self) -> str:
        """Everything sshd logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def host_key(self) -> str:
        """The server's public host key, OpenSSH one-line format without comment."""
        algorithm, data = (self.work / "host_ed25519_key.pub").read_text().split()[:2]
        return f"{algorithm} {data}"

    def known_hosts_line(self) -> str:
        """A known_hosts entry for OpenSSH clients."""
        return f"[127.0.0.1]:{self.port} {self.host_key}"

    def start(self, timeout: float = 20.0) -> Self:
        """Write the keys and configuration, start sshd and wait until it listens.

        A port picked free can be taken before sshd binds it; then it starts again on another.
        """
        ensure_privsep_dir()
        self.work.mkdir(parents=True, exist_ok=True)
        host_key = self.work / "host_ed25519_key"
        if not host_key.exists():
            generate_key_pair(host_key, ssh_keygen=self.ssh_keygen, comment="openssh-server")
        (self.work / "authorized_keys").write_text("".join(f"{k}\n" for k in self.authorized_keys))

        def pick_new_port() -> None:
            self.port = free_port()

        return retry_on_port_clash(
            lambda: self._start_once(timeout),
            clashed=lambda: "Address already in use" in self.log,
            pick_new_ports=pick_new_port,
        )

    def _start_once(self, timeout: float) -> Self:
        """Start sshd on the current port."""
        password = "yes" if self.password_authentication else "no"
        config = self.work / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {self.work / 'host_ed25519_key'}",
                    f"AuthorizedKeysFile {self.work / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    f"PasswordAuthentication {password}",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PidFile none",
                    "PrintMotd no",
                    f"LogLevel {self.log_level}",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.sshd, "-D", "-e", "-f", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.process.returncode}:\n{self.log}")
            try:
                wait_for_port(self.port, timeout=0.5)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not listen on {self.port}:\n{self.log}") from None
            else:
                return self

    def stop(self) -> None:
        """Terminate sshd and reap it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
