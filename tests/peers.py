"""Find the real programs the tests talk to, failing loudly when one is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

# Opting out is explicit: without it a missing peer fails the test instead of skipping it.
OPT_OUT_VARIABLE = "BACKUP_DRIVE_ALLOW_MISSING_PEERS"


def fail_or_skip(message: str) -> NoReturn:
    """Fail with `message`; skip instead only when the user opted out and this is not CI."""
    # CI services set CI to "true", "1" or "yes": any non-empty value means CI.
    if os.environ.get(OPT_OUT_VARIABLE) == "1" and not os.environ.get("CI"):
        pytest.skip(f"{message}; skipped because {OPT_OUT_VARIABLE}=1")
    pytest.fail(message)


def require_tool(name: str, debian_package: str) -> str:
    """Return the path of program `name`, or fail (skip only when the user opted out)."""
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d, name)).is_file()), None
    )
    if found:
        return found
    message = (
        f"{name} is not installed (Debian package {debian_package}); "
        f"run scripts/test.sh as root to install it"
    )
    fail_or_skip(message)


def require_library(soname: str, debian_package: str) -> Path:
    """Return the path of shared library `soname`, or fail (skip only when opted out)."""
    for pattern in (f"/usr/lib/*-linux-gnu*/{soname}", f"/usr/lib/{soname}", f"/lib/{soname}"):
        found = sorted(Path("/").glob(pattern.lstrip("/")))
        if found:
            return found[0]
    message = (
        f"{soname} is not installed (Debian package {debian_package}); "
        f"run scripts/test.sh as root to install it"
    )
    fail_or_skip(message)


def require_root(reason: str) -> None:
    """Fail (or skip when opted out) unless running as root, which loop devices and mount need."""
    if os.geteuid() == 0:
        return
    message = f"needs root: {reason}"
    fail_or_skip(message)
