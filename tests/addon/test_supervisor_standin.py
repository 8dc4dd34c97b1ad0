"""The Supervisor stand-in keeps Supervisor's contract, checked with curl as bashio calls it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.addon.conftest import TOKEN
from tests.addon.supervisor_standin import (
    ADDON_INFO_PATH,
    INFO_PATH,
    NOTIFICATION_PATH,
    OPTIONS_PATH,
    SupervisorStandIn,
    standin_without,
)
from tests.backup_target import REPO_ROOT
from tests.peers import require_tool

DISCOVERY_BODY = json.dumps({"service": "backup_drive", "config": {"host": "h"}})


def curl(standin: SupervisorStandIn, method: str, path: str, authorization: str | None,
         body: str | None = None) -> tuple[int, str]:  # fmt: skip
    """Call the stand-in like bashio::api.supervisor does; return (status, body)."""
    command = [require_tool("curl", "curl"), "--silent", "--show-error", "--max-time", "10",
               "--write-out", "\n%{http_code}", "--request", method]  # fmt: skip
    if authorization is not None:
        command += ["-H", f"Authorization: {authorization}"]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "-d", body]
    result = subprocess.run(
        [*command, f"{standin.url}{path}"], capture_output=True, text=True, check=True
    )
    text, _, status = result.stdout.rpartition("\n")
    return int(status), text


def test_options_are_the_defaults_with_the_users_settings_over_them(
    supervisor: SupervisorStandIn,
) -> None:
    supervisor.options = {"device": "/dev/disk/by-id/usb-Drive-0:0-part1", "log_level": "debug"}
    status, text = curl(supervisor, "GET", OPTIONS_PATH, f"Bearer {TOKEN}")
    assert status == 200, text
    answer: dict[str, Any] = json.loads(text)
    defaults = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())["options"]
    assert answer == {"result": "ok", "data": {**defaults, **supervisor.options}}


def test_options_the_schema_refuses_are_an_error(supervisor: SupervisorStandIn) -> None:
    supervisor.options = {"users": [{"username": "DOMAIN\\alice"}]}
    status, text = curl(supervisor, "GET", OPTIONS_PATH, f"Bearer {TOKEN}")
    assert status == 400
    assert json.loads(text) == {
        "result": "error",
        "message": "Invalid configuration data for the add-on",
    }


def test_what_every_add_on_may_read_about_itself_and_the_host(
    supervisor: SupervisorStandIn,
) -> None:
    supervisor.host_ports = {"2222/tcp": 22222, "8080/tcp": None}
    status, text = curl(supervisor, "GET", ADDON_INFO_PATH, f"Bearer {TOKEN}")
    assert status == 200, text
    info = json.loads(text)["data"]
    assert (info["slug"], info["name"]) == ("backup_drive", "Backup Drive")
    # bashio::addon.port reads .network["2222/tcp"]; null is a port closed under Network.
    assert info["network"] == {"2222/tcp": 22222, "8080/tcp": None}
    status, text = curl(supervisor, "GET", INFO_PATH, f"Bearer {TOKEN}")
    assert (status, json.loads(text)["data"]["hostname"]) == (200, "homeassistant")


def test_the_host_ports_default_to_config_yaml(supervisor: SupervisorStandIn) -> None:
    _, text = curl(supervisor, "GET", ADDON_INFO_PATH, f"Bearer {TOKEN}")
    ports = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())["ports"]
    assert json.loads(text)["data"]["network"] == ports


@pytest.mark.parametrize(
    ("method", "path", "authorization", "refusal"),
    [
        # Supervisor's security middleware: no token is 401, a wrong one 403, in plain text.
        ("GET", OPTIONS_PATH, None, (401, "401: Unauthorized")),
        ("GET", OPTIONS_PATH, "Bearer", (401, "401: Unauthorized")),  # bashio without a token
        ("GET", OPTIONS_PATH, "Bearer wrong", (403, "403: Forbidden")),
        ("GET", INFO_PATH, "Bearer wrong", (403, "403: Forbidden")),
        ("GET", ADDON_INFO_PATH, None, (401, "401: Unauthorized")),
        ("POST", "/discovery", None, (401, "401: Unauthorized")),
        ("POST", "/discovery", "Bearer wrong", (403, "403: Forbidden")),
        # The Core API proxy checks for itself and answers 401 to every refusal.
        ("POST", NOTIFICATION_PATH, None, (401, "401: Unauthorized")),
        ("POST", NOTIFICATION_PATH, "Bearer wrong", (401, "401: Unauthorized")),
    ],
)
def test_refusals_carry_supervisors_status(
    supervisor: SupervisorStandIn,
    method: str,
    path: str,
    authorization: str | None,
    refusal: tuple[int, str],
) -> None:
    assert curl(supervisor, method, path, authorization, "{}") == refusal
    assert supervisor.discoveries == {}
    assert supervisor.notifications == []


def test_core_api_without_homeassistant_api_is_401(tmp_path: Path) -> None:
    body = json.dumps({"title": "t", "message": "m"})
    with standin_without("homeassistant_api", TOKEN, tmp_path) as standin:
        refused = curl(standin, "POST", NOTIFICATION_PATH, f"Bearer {TOKEN}", body)
        # The rest of the API still takes the token.
        options_status, _ = curl(standin, "GET", OPTIONS_PATH, f"Bearer {TOKEN}")
    assert refused == (401, "401: Unauthorized")
    assert options_status == 200
    assert standin.notifications == []


def test_a_good_token_reaches_discovery_and_core(supervisor: SupervisorStandIn) -> None:
    status, text = curl(supervisor, "POST", "/discovery", f"Bearer {TOKEN}", DISCOVERY_BODY)
    assert status == 200, text
    assert json.loads(text)["data"]["uuid"] in supervisor.discoveries
    body = json.dumps({"title": "t", "message": "m"})
    assert curl(supervisor, "POST", NOTIFICATION_PATH, f"Bearer {TOKEN}", body) == (200, "[]")
