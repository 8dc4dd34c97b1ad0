"""The add-on starts the page behind ingress, as config.yaml declares it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from backup_drive_server import cli
from backup_drive_server.web_page.options import web_page_settings
from tests.addon.test_packaging import SERVICES, commands_in
from tests.backup_target import REPO_ROOT

# Supervisor's ingress proxy on the hassio network; nothing else may open the page.
INGRESS_PROXY = "172.30.32.2"


def config() -> dict[str, Any]:
    """The add-on's config.yaml."""
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    return data


def test_config_declares_the_page() -> None:
    addon = config()
    assert addon["ingress"] is True
    assert addon["ingress_port"] != 8099, "the linter refuses keys set to their default"
    assert addon["panel_icon"] == "mdi:harddisk"
    assert addon["panel_title"] == "Backup Drive"
    # The page is reached only through ingress: its port is not published.
    assert f"{addon['ingress_port']}/tcp" not in addon["ports"]


def test_the_server_serves_the_page_to_the_ingress_proxy_only() -> None:
    [call] = commands_in(
        SERVICES / "backup-drive" / "run", ["python3", "-m", "backup_drive_server"]
    )
    # The mapped ports are read from Supervisor at start; argparse sees placeholders for them.
    assert call[call.index("--public-webdav-port") + 1] == "${webdav_port}"
    assert call[call.index("--public-sftp-port") + 1] == "${sftp_port}"
    args = cli.build_parser().parse_args(["8080" if w.endswith("_port}") else w for w in call])
    settings = web_page_settings(args)
    assert settings is not None
    assert settings.port == config()["ingress_port"]
    assert settings.allow_from == INGRESS_PROXY
    assert args.public_host == "${public_host:+${public_host}.local}"


@pytest.mark.parametrize(
    ("bashio_says", "port"), [("8443", 8443), ("null", 0), ("", 0), ("2222", 2222)]
)
def test_mapped_ports_from_bashio_parse(bashio_says: str, port: int) -> None:
    args = cli.build_parser().parse_args(["--ui-port", "8098", "--public-webdav-port", bashio_says])
    settings = web_page_settings(args)
    assert settings is not None and settings.public_webdav_port == port


def test_serve_script_turns_the_page_on_locally() -> None:
    serve = (REPO_ROOT / "scripts" / "serve.sh").read_text()
    assert '--ui-port 8099 "$@"' in serve
