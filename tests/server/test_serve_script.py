"""./scripts/serve.sh, the README's command, runs the server on jemalloc as the add-on does."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from bench.process_stats import ADDON_MALLOC_CONF
from tests.backup_target import REPO_ROOT, free_port, wait_for_port
from tests.peers import require_library


def start_serve_script(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start serve.sh on free ports with its storage under tmp_path; return it and its SFTP port."""
    sftp_port = free_port()
    command = [
        str(REPO_ROOT / "scripts" / "serve.sh"),
        "--storage", str(tmp_path / "storage"),
        "--data-dir", str(tmp_path / "data"),
        "--bind", "127.0.0.1",
        "--sftp-port", str(sftp_port),
        "--webdav-port", str(free_port()),
        "--ui-port", str(free_port()),
    ]  # fmt: skip
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    try:
        wait_for_port(sftp_port, timeout=60)
    except BaseException:
        process.kill()
        raise
    return process, sftp_port


@pytest.mark.parametrize("opted_out", [False, True], ids=["default", "DISABLE_JEMALLOC"])
def test_serve_script_preloads_jemalloc_unless_disabled(tmp_path: Path, opted_out: bool) -> None:
    jemalloc = require_library("libjemalloc.so.2", "libjemalloc2")
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    env.pop("DISABLE_JEMALLOC", None)
    env.pop("MALLOC_CONF", None)
    if opted_out:
        env["DISABLE_JEMALLOC"] = "1"
    process, _port = start_serve_script(tmp_path, env)
    try:
        # serve.sh execs the server, so its process is the one listening.
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert code == 0, log
    assert (jemalloc.name in maps) is not opted_out, log
    # The add-on's thread-cache setting comes with it (the run script says why).
    setting = f"MALLOC_CONF={ADDON_MALLOC_CONF}".encode()
    assert (setting in environ) is not opted_out
