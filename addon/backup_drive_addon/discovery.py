"""Announce the server to Home Assistant through Supervisor discovery."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, TypedDict

from backup_drive_addon.health import read_ssh_banner
from backup_drive_addon.supervisor import SupervisorClient, SupervisorError
from backup_drive_server.accounts import PASSWORD_FILE
from backup_drive_server.host_key import PUBLIC_KEY_FILE
from backup_drive_server.settings import BACKUPS_FOLDER, HOMEASSISTANT_USER

_LOGGER = logging.getLogger(__name__)

SERVICE = "backup_drive"
DISCOVERY_PATH = f"/{BACKUPS_FOLDER}"


class DiscoveryPayload(TypedDict):
    """The config Home Assistant receives with the discovery: add keys, never rename them."""

    host: str  # the add-on's host name on the Supervisor network
    port: int  # SFTP port inside that network
    username: str  # the account created for Home Assistant
    password: str
    host_key: str  # the server's public host key, OpenSSH one-line format
    path: str  # folder for Home Assistant's backups, absolute in the SFTP view


# The payload's keys in one place, for checking the contract with the integration.
PAYLOAD_KEYS: tuple[str, ...] = tuple(DiscoveryPayload.__annotations__)


def build_config(data_dir: Path, host: str, port: int) -> DiscoveryPayload:
    """Build the discovery payload (BRIEF.md section 5) from the server's data folder."""
    try:
        password = (data_dir / PASSWORD_FILE).read_text(encoding="utf-8").strip()
        host_key = (data_dir / PUBLIC_KEY_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError as err:
        raise SupervisorError(
            f"the server has not written {err.filename} yet; is it running?"
        ) from err
    if not password or not host_key:
        raise SupervisorError(f"the password or host key file in {data_dir} is empty")
    return DiscoveryPayload(
        host=host,
        port=port,
        username=HOMEASSISTANT_USER,
        password=password,
        host_key=host_key,
        path=DISCOVERY_PATH,
    )


def wait_for_sftp(port: int, timeout: float, host: str = "127.0.0.1") -> None:
    """Wait until the SFTP server answers with its SSH banner."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if read_ssh_banner(port, 2, host).startswith(b"SSH-"):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SupervisorError(f"the SFTP server did not start listening on port {port}")
        time.sleep(0.25)


def config_digest(config: DiscoveryPayload) -> str:
    """Fingerprint a payload, so the state file never holds the password itself."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def publish(client: SupervisorClient, config: DiscoveryPayload, state_file: Path) -> str:
    """Send the payload to Supervisor and return the discovery uuid.

    It is sent on every start: Supervisor keeps the uuid for the same add-on and service and
    tells Home Assistant only when the payload changed, so new credentials always reach it.
    """
    answer = client.post("/discovery", {"service": SERVICE, "config": config})
    try:
        uuid = str(answer["data"]["uuid"])
    except (KeyError, TypeError) as err:
        raise SupervisorError(f"Supervisor answered without a discovery uuid: {answer!r}") from err
    digest = config_digest(config)
    previous: dict[str, Any] = {}
    try:
        previous = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        previous = {}
    if not previous:
        _LOGGER.info("Announced Backup Drive to Home Assistant (discovery %s)", uuid)
    elif previous.get("digest") != digest:
        _LOGGER.info("Sent the new address or credentials to Home Assistant (discovery %s)", uuid)
    else:
        _LOGGER.info("Discovery %s is up to date", uuid)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps({"uuid": uuid, "digest": digest}) + "\n", encoding="utf-8")
    return uuid
