"""The Dockerfile's HEALTHCHECK command against the real server."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.addon.conftest import ToolRunner
from tests.backup_target import BackupTarget
from tests.server.conftest import sftp_client


def healthcheck(run_tool: ToolRunner, target: BackupTarget, options: Path) -> tuple[int, str]:
    """Run the health check as Docker does; return its exit code and complaints."""
    result = run_tool(
        "healthcheck",
        "--sftp-port", str(target.sftp_port),
        "--webdav-port", str(target.webdav_port),
        "--options", str(options),
    )  # fmt: skip
    return result.returncode, result.stderr


def test_healthy_while_both_servers_answer(
    run_tool: ToolRunner, target: BackupTarget, tmp_path: Path
) -> None:
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"webdav_tls": False}))
    assert healthcheck(run_tool, target, options) == (0, "")


def test_unhealthy_when_the_server_is_gone(
    run_tool: ToolRunner, target: BackupTarget, tmp_path: Path
) -> None:
    target.stop()
    code, complaints = healthcheck(run_tool, target, tmp_path / "missing-options.json")
    assert code == 1
    assert f"SFTP on port {target.sftp_port}" in complaints
    assert f"WebDAV on port {target.webdav_port}" in complaints


def test_unhealthy_when_a_port_answers_something_else(
    run_tool: ToolRunner, target: BackupTarget, tmp_path: Path
) -> None:
    # Something that accepts connections but is not an SSH server, in place of SFTP.
    with socket.create_server(("127.0.0.1", 0)) as impostor:
        port = impostor.getsockname()[1]
        result = run_tool(
            "healthcheck",
            "--sftp-port", str(port),
            "--webdav-port", str(target.webdav_port),
            "--options", str(tmp_path / "none.json"),
            timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"SFTP on port {port}" in result.stderr
    assert "WebDAV" not in result.stderr


def test_tls_option_makes_it_speak_https(
    run_tool: ToolRunner, target: BackupTarget, tmp_path: Path
) -> None:
    # The target serves plain HTTP: a check that honours webdav_tls must now fail the handshake.
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"webdav_tls": True}))
    code, complaints = healthcheck(run_tool, target, options)
    assert code == 1
    assert f"WebDAV on port {target.webdav_port}" in complaints
    assert "SFTP" not in complaints


async def test_probes_never_count_as_failed_logins(
    run_tool: ToolRunner, target: BackupTarget, tmp_path: Path
) -> None:
    # More probes than the failures that ban an address: Docker probes from 127.0.0.1 forever.
    for _ in range(8):
        assert healthcheck(run_tool, target, tmp_path / "none.json")[0] == 0
    async with sftp_client(target) as sftp:
        assert await sftp.isdir("/backups")
    assert "banned" not in target.log
