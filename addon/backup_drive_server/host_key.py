"""Load the server's ed25519 host key, generating it on the first start."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncssh

from backup_drive_server.secret_files import write_secret_file

_LOGGER = logging.getLogger(__name__)

HOST_KEY_FILE = "ssh_host_ed25519_key"
# The public half, which discovery sends to Home Assistant.
PUBLIC_KEY_FILE = f"{HOST_KEY_FILE}.pub"


def load_host_key(data_dir: Path) -> asyncssh.SSHKey:
    """Return the host key kept in `data_dir`, creating it once (mode 0600)."""
    key_path = data_dir / HOST_KEY_FILE
    public_path = data_dir / PUBLIC_KEY_FILE
    if key_path.exists():
        key = asyncssh.read_private_key(key_path)
    else:
        key = asyncssh.generate_private_key("ssh-ed25519")
        # asyncssh's write_private_key keeps the umask's mode; a host key must be 0600.
        write_secret_file(key_path, key.export_private_key("openssh"))
        _LOGGER.info("Generated a new SSH host key in %s", key_path)
    key_path.chmod(0o600)
    public_line = public_key_line(key)
    if not public_path.exists() or public_path.read_text().strip() != public_line:
        public_path.write_text(public_line + "\n")
    return key


def public_key_line(key: asyncssh.SSHKey) -> str:
    """Return the public half in OpenSSH one-line format (`ssh-ed25519 AAAA...`)."""
    return str(key.export_public_key("openssh").decode().strip())


def fingerprint(key: asyncssh.SSHKey) -> str:
    """Return the SHA256 fingerprint OpenSSH shows (`SHA256:...`)."""
    return str(key.get_fingerprint("sha256"))
