"""Generate OpenSSH client key pairs with ssh-keygen, for the tests and the benchmarks."""

from __future__ import annotations

import subprocess
from pathlib import Path


def generate_key_pair(key: Path, *, ssh_keygen: str, comment: str | None = None) -> str:
    """Create an ed25519 key pair without passphrase at `key`; return the public line."""
    command = [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)]
    if comment is not None:
        command += ["-C", comment]
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, timeout=30)
    return key.with_name(f"{key.name}.pub").read_text().strip()
