"""Installing the bundled integration into Home Assistant's configuration folder."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_drive_addon.integration_installer import version_key
from tests.addon.conftest import TOKEN, ToolRunner
from tests.addon.supervisor_standin import (
    NOTIFICATION_PATH,
    SupervisorStandIn,
    standin_without,
)
from tests.backup_target import REPO_ROOT
from tests.peers import require_root

BUNDLED = REPO_ROOT / "integration" / "custom_components" / "backup_drive"


def make_integration(folder: Path, version: str | None, marker: str) -> Path:
    """Write a small integration folder whose manifest.json carries `version`."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, str] = {"domain": "backup_drive", "name": "Backup Drive"}
    if version is not None:
        manifest["version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "__init__.py").write_text(f'"""{marker}."""\n')
    return folder


def install(run_tool: ToolRunner, supervisor: SupervisorStandIn, source: Path, config_dir: Path
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the installer step as rootfs/etc/s6-overlay/scripts/init-integration.sh does."""
    return run_tool(
        "install-integration",
        "--source", str(source),
        "--config-dir", str(config_dir),
        "--supervisor", supervisor.url,
    )  # fmt: skip


def installed(config_dir: Path) -> Path:
    """Where Home Assistant looks for the integration."""
    return config_dir / "custom_components" / "backup_drive"


def test_installs_the_bundled_integration_and_asks_for_a_restart(
    run_tool: ToolRunner, supervisor: SupervisorStandIn, tmp_path: Path
) -> None:
    version = json.loads((BUNDLED / "manifest.json").read_text())["version"]
    source = tmp_path / "image" / "backup_drive"
    shutil.copytree(BUNDLED, source)
    (source / "__pycache__").mkdir(exist_ok=True)
    (source / "__pycache__" / "const.cpython-313.pyc").write_bytes(b"stale")
    result = install(run_tool, supervisor, source, tmp_path / "homeassistant")
    assert result.returncode == 0, result.stderr
    assert f"Installed the Backup Drive integration {version}" in result.stderr

    target = installed(tmp_path / "homeassistant")
    bundled_files = sorted(
        p.relative_to(source) for p in source.rglob("*") if "__pycache__" not in p.parts
    )
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == bundled_files
    for relative in bundled_files:
        if (source / relative).is_file():
            assert (target / relative).read_bytes() == (source / relative).read_bytes()
    # Nothing staged is left next to it.
    assert [p.name for p in target.parent.iterdir()] == ["backup_drive"]

    [request] = supervisor.requests
    assert request.method == "POST"
    assert request.path == NOTIFICATION_PATH
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.body["notification_id"] == "backup_drive_integration"
    assert "Restart" in request.body["title"]
    assert f"installed the Backup Drive integration {version}" in request.body["message"]
    assert "Restart Home Assistant" in request.body["message"]


def test_updates_an_older_copy(
    run_tool: ToolRunner, supervisor: SupervisorStandIn, tmp_path: Path
) -> None:
    source = make_integration(tmp_path / "bundled", "0.10.0", "new")
    old = make_integration(installed(tmp_path / "ha"), "0.9.2", "old")
    (old / "removed_in_new_version.py").write_text("")
    result = install(run_tool, supervisor, source, tmp_path / "ha")
    assert result.returncode == 0, result.stderr
    assert "Updated the Backup Drive integration from 0.9.2 to 0.10.0" in result.stderr
    assert (old / "__init__.py").read_text() == '"""new."""\n'
    assert not (old / "removed_in_new_version.py").exists()
    assert [p.name for p in old.parent.iterdir()] == ["backup_drive"]
    [notification] = supervisor.notifications
    assert "from 0.9.2 to 0.10.0" in notification["message"]


@pytest.mark.parametrize(
    ("installed_version", "expected_log"),
    [
        ("0.3.0", "is newer than the bundled 0.2.0; keeping it"),
        ("0.2.0", "integration 0.2.0 is up to date"),
        ("0.2", "integration 0.2 is up to date"),
        (None, "has no manifest version; leaving it alone"),
    ],
)
def test_leaves_a_newer_same_or_foreign_copy_alone(
    run_tool: ToolRunner,
    supervisor: SupervisorStandIn,
    tmp_path: Path,
    installed_version: str | None,
    expected_log: str,
) -> None:
    source = make_integration(tmp_path / "bundled", "0.2.0", "bundled")
    existing = make_integration(installed(tmp_path / "ha"), installed_version, "user's own")
    result = install(run_tool, supervisor, source, tmp_path / "ha")
    assert result.returncode == 0, result.stderr
    assert expected_log in result.stderr
    assert (existing / "__init__.py").read_text() == '"""user\'s own."""\n'
    assert supervisor.requests == []


def test_home_assistant_not_running_is_only_a_warning(
    run_tool: ToolRunner, supervisor: SupervisorStandIn, tmp_path: Path
) -> None:
    supervisor.core_running = False
    source = make_integration(tmp_path / "bundled", "0.2.0", "bundled")
    result = install(run_tool, supervisor, source, tmp_path / "ha")
    assert result.returncode == 0, result.stderr
    assert "Could not show the restart notification" in result.stderr
    assert "HTTP 502" in result.stderr
    assert (installed(tmp_path / "ha") / "manifest.json").is_file()
    assert len(supervisor.requests) == 1


def test_core_api_needs_homeassistant_api_in_config_yaml(
    run_tool: ToolRunner, tmp_path: Path
) -> None:
    # The stand-in refuses the Core API with 401 unless config.yaml asks for it, as Supervisor's
    # proxy does; the repository's config.yaml does, so the notification above gets through.
    source = make_integration(tmp_path / "bundled", "0.2.0", "bundled")
    with standin_without("homeassistant_api", TOKEN, tmp_path) as standin:
        result = install(run_tool, standin, source, tmp_path / "ha")
    assert result.returncode == 0, result.stderr
    assert "needs `homeassistant_api: true` in config.yaml" in result.stderr
    assert "/core/api/services/persistent_notification/create" in result.stderr
    assert standin.notifications == []


@pytest.fixture
def read_only_config_dir(tmp_path: Path) -> Iterator[Path]:
    """A Home Assistant configuration folder mounted read-only."""
    require_root("mounting a read-only folder")
    folder = tmp_path / "read-only-ha"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_unwritable_config_folder_is_reported(
    run_tool: ToolRunner,
    supervisor: SupervisorStandIn,
    tmp_path: Path,
    read_only_config_dir: Path,
) -> None:
    source = make_integration(tmp_path / "bundled", "0.2.0", "bundled")
    result = install(run_tool, supervisor, source, read_only_config_dir)
    assert result.returncode == 1
    assert "Could not install the Backup Drive integration: cannot write" in result.stderr
    assert "Read-only file system" in result.stderr
    assert supervisor.requests == []


def test_bundled_folder_without_version_is_reported(
    run_tool: ToolRunner, supervisor: SupervisorStandIn, tmp_path: Path
) -> None:
    source = make_integration(tmp_path / "bundled", None, "bundled")
    result = install(run_tool, supervisor, source, tmp_path / "ha")
    assert result.returncode == 1
    assert "has no readable version" in result.stderr
    assert not (tmp_path / "ha").exists()


@pytest.mark.parametrize(
    ("older", "newer"),
    [("0.1.0", "0.2.0"), ("0.9.0", "0.10.0"), ("1.0.0b1", "1.0.0"), ("1.0.0", "1.0.1")],
)
def test_version_order(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


def test_bundled_manifest_has_a_version() -> None:
    assert json.loads((BUNDLED / "manifest.json").read_text())["version"]


def test_without_supervisor_it_still_installs(
    run_tool: ToolRunner, supervisor: SupervisorStandIn, tmp_path: Path
) -> None:
    source = make_integration(tmp_path / "bundled", "0.2.0", "bundled")
    result = run_tool(
        "install-integration", "--source", str(source), "--config-dir", str(tmp_path / "ha"),
        token=None,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "WARNING: Restart Home Assistant to load the Backup Drive integration" in result.stderr
    assert (installed(tmp_path / "ha") / "manifest.json").is_file()
    assert supervisor.requests == []
