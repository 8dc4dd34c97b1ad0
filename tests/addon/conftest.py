"""Fixtures for the add-on suite: the Supervisor stand-in, the add-on's CLI, a running server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.addon.supervisor_standin import SupervisorStandIn
from tests.backup_target import BackupTarget

TOKEN = "test-supervisor-token-0123456789"

ToolRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def supervisor() -> Iterator[SupervisorStandIn]:
    """A Supervisor stand-in that knows the repository's own config.yaml."""
    standin = SupervisorStandIn(token=TOKEN).start()
    yield standin
    standin.stop()


@pytest.fixture
def run_tool() -> ToolRunner:
    """Run `python -m backup_drive_addon.addon_tools ARGS` as the s6 scripts do."""

    def run(
        *args: str, token: str | None = TOKEN, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {
            k: v for k, v in os.environ.items() if k not in {"SUPERVISOR_TOKEN", "SUPERVISOR_API"}
        }
        if token is not None:
            env["SUPERVISOR_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "backup_drive_addon.addon_tools", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def target(tmp_path: Path) -> Iterator[BackupTarget]:
    """A running backup-drive-server on a plain folder."""
    server = BackupTarget(storage=tmp_path / "storage", data_dir=tmp_path / "data").start()
    yield server
    server.stop()
