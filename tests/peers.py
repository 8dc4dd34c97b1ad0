"""Find the real programs the tests talk to, failing loudly when one is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Opting out is explicit: without it a missing peer fails the test instead of skipping it.
OPT_OUT_VARIABLE = "BACKUP_DRIVE_ALLOW_MISSING_PEERS"


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
    if os.environ.get(OPT_OUT_VARIABLE) == "1" and os.environ.get("CI") != "true":
        pytest.skip(f"{message}; skipped because {OPT_OUT_VARIABLE}=1")
    pytest.fail(message)


def require_root(reason: str) -> None:
    """Fail (or skip when opted out) unless running as root, which loop devices and mount need."""
    if os.geteuid() == 0:
        return
    message = f"needs root: {reason}"
    if os.environ.get(OPT_OUT_VARIABLE) == "1" and os.environ.get("CI") != "true":
        pytest.skip(f"{message}; skipped because {OPT_OUT_VARIABLE}=1")
    pytest.fail(message)
