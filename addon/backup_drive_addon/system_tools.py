"""Run the system's blkid, mount and umount, and the FUSE mount helpers."""

from __future__ import annotations

import os
import shutil
import subprocess


def run_tool(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a system tool and capture its output for the log; the caller checks the exit code."""
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)


def tool_available(program: str) -> bool:
    """Tell whether `program` can be run (also from the sbin folders)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(program, path=search) is not None
