"""Create files that hold secrets with owner-only permissions from the first byte."""

from __future__ import annotations

import os
from pathlib import Path


def write_secret_file(path: Path, content: bytes) -> None:
    """Write `content` to `path` with mode 0600, replacing it atomically."""
    staging = path.with_name(f".{path.name}.new")
    # os.open with a mode avoids the window in which a default-umask file would be readable.
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    staging.replace(path)
