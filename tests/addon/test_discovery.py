"""Publishing the discovery payload (BRIEF.md section 5) to a Supervisor stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import asyncssh

from tests.addon.conftest import TOKEN, ToolRunner
from tests.addon.supervisor_standin import SupervisorStandIn, standin_without
from tests.backup_target import REPO_ROOT, BackupTarget, free_port

ADDON_HOST = "a0d7b954-backup-drive"


def publish(run_tool: ToolRunner, supervisor: SupervisorStandIn, target: BackupTarget,
            state_file: Path, *, token: str | None = TOKEN, wait: float = 30
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the discovery step as rootfs/etc/s6-overlay/scripts/discovery.sh does."""
    return run_tool(
        "publish-discovery",
        "--data-dir", str(target.data_dir),
        "--port", str(target.sftp_port),
        "--host", ADDON_HOST,
        "--supervisor", supervisor.url,
        "--state-file", str(state_file),
        "--wait", str(wait),
        token=token,
    )  # fmt: skip


async def test_publishes_the_real_credentials(
    run_tool: ToolRunner, supervisor: SupervisorStandIn, target: BackupTarget, tmp_path: Path
) -> None:
    result = publish(run_tool, supervisor, target, tmp_path / "discovery.json")
    assert result.returncode == 0, result.stderr
    assert "Announced Backup Drive to Home Assistant" in result.stderr

    [request] = supervisor.requests
    assert request.method == "POST"
    assert request.path == "/discovery"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {
        "service": "backup_drive",
        "config": {
            "host": ADDON_HOST,
            "port": target.sftp_port,
            "username": "homeassistant",
            "password": target.password,
            "host_key": target.host_key,
            "path": "/backups",
        },
    }
    [(uuid, message)] = supervisor.discoveries.items()
    assert message.addon == "backup_drive"
    # The state file remembers what was sent without keeping the password.
    state = json.loads((tmp_path / "discovery.json").read_text())
    assert state["uuid"] == uuid
    assert target.password not in (tmp_path / "discovery.json").read_text()

    # What Home Assistant receives is enough to log in, with the host key verified.
    config = request.body["config"]
    known_hosts = asyncssh.import_known_hosts(f"[127.0.0.1]:{config['port']} {config['host_key']}")
    async with (
        asyncssh.connect(
            "127.0.0.1",
            config["port"],
            username=config["username"],
            password=config["password"],
            known_hosts=known_hosts,
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        assert await sftp.isdir(config["path"])


def test_publishing_again_updates_in_place(
    run_tool: ToolRunner, supervisor: SupervisorStandIn, tmp_path: Path
) -> None:
    state_file = tmp_path / "discovery.json"
    target = BackupTarget(storage=tmp_path / "storage", data_dir=tmp_path / "data").start()
    try:
        first = publish(run_tool, supervisor, target, state_file)
        assert first.returncode == 0, first.stderr
        again = publish(run_tool, supervisor, target, state_file)
        assert again.returncode == 0, again.stderr
        assert "is up to date" in again.stderr
    finally:
        target.stop()
    [uuid] = supervisor.discoveries

    # New credentials: the server generates a new password after its file is removed.
    old_password = target.password
    (target.data_dir / "homeassistant.password").unlink()
    target = BackupTarget(storage=tmp_path / "storage", data_dir=tmp_path / "data").start()
    try:
        changed = publish(run_tool, supervisor, target, state_file)
    finally:
        target.stop()
    assert changed.returncode == 0, changed.stderr
    assert "Sent the new address or credentials" in changed.stderr
    assert target.password != old_password
    assert list(supervisor.discoveries) == [uuid]
    assert supervisor.discoveries[uuid].config["password"] == target.password
    assert supervisor.discoveries[uuid].config["port"] == target.sftp_port
    assert json.loads(state_file.read_text())["uuid"] == uuid
    # Never withdrawn: Home Assistant deletes the config entry when a discovery is removed.
    assert [r.method for r in supervisor.requests] == ["POST", "POST", "POST"]


def test_waits_until_the_server_listens(supervisor: SupervisorStandIn, tmp_path: Path) -> None:
    target = BackupTarget(storage=tmp_path / "storage", data_dir=tmp_path / "data")
    env_args = [
        sys.executable, "-m", "backup_drive_addon.addon_tools", "publish-discovery",
        "--data-dir", str(target.data_dir), "--port", str(target.sftp_port),
        "--host", ADDON_HOST, "--supervisor", supervisor.url,
        "--state-file", str(tmp_path / "discovery.json"), "--wait", "60",
    ]  # fmt: skip
    publisher = subprocess.Popen(
        env_args,
        env={"SUPERVISOR_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        target.start()
        _, stderr = publisher.communicate(timeout=90)
    finally:
        publisher.kill()
        target.stop()
    assert publisher.returncode == 0, stderr
    [request] = supervisor.requests
    assert request.body["config"]["host_key"] == target.host_key


def test_no_server_is_reported(
    run_tool: ToolRunner, supervisor: SupervisorStandIn, tmp_path: Path
) -> None:
    absent = BackupTarget(storage=tmp_path / "s", data_dir=tmp_path / "d", sftp_port=free_port())
    result = publish(run_tool, supervisor, absent, tmp_path / "discovery.json", wait=1)
    assert result.returncode == 1
    assert f"did not start listening on port {absent.sftp_port}" in result.stderr
    assert supervisor.requests == []


def test_wrong_token_is_reported(
    run_tool: ToolRunner, supervisor: SupervisorStandIn, target: BackupTarget, tmp_path: Path
) -> None:
    result = publish(run_tool, supervisor, target, tmp_path / "d.json", token="not-the-token")
    assert result.returncode == 1
    assert "Supervisor refused the add-on's token for /discovery" in result.stderr
    assert supervisor.discoveries == {}
    assert not (tmp_path / "d.json").exists()


def test_missing_token_is_reported(
    run_tool: ToolRunner, supervisor: SupervisorStandIn, target: BackupTarget, tmp_path: Path
) -> None:
    result = publish(run_tool, supervisor, target, tmp_path / "d.json", token=None)
    assert result.returncode == 1
    assert "SUPERVISOR_TOKEN is not set" in result.stderr
    assert supervisor.requests == []


def test_undeclared_service_is_refused(
    run_tool: ToolRunner, target: BackupTarget, tmp_path: Path
) -> None:
    # An add-on whose config.yaml forgot `discovery:`.
    with standin_without("discovery", TOKEN, tmp_path) as standin:
        result = publish(run_tool, standin, target, tmp_path / "d.json")
    assert result.returncode == 1
    assert "Supervisor does not allow /discovery for this add-on" in result.stderr
    assert "not listed in its config" in result.stderr
    assert standin.discoveries == {}


def test_the_repository_declares_the_service(supervisor: SupervisorStandIn) -> None:
    assert supervisor.addon["discovery"] == ["backup_drive"]


def test_the_add_on_never_withdraws() -> None:
    # Stopping the add-on must leave the discovery in place; nothing in rootfs deletes it.
    texts = [p.read_text() for p in (REPO_ROOT / "rootfs").rglob("*") if p.is_file()]
    assert any("publish-discovery" in text for text in texts)
    assert not any("DELETE" in text or "bashio::discovery.delete" in text for text in texts)
