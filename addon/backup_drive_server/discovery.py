"""Announce the server to Home Assistant through Supervisor discovery, and talk to Supervisor."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from backup_drive_server.accounts import PASSWORD_FILE
from backup_drive_server.host_key import HOST_KEY_FILE
from backup_drive_server.settings import BACKUPS_FOLDER, HOMEASSISTANT_USER

_LOGGER = logging.getLogger(__name__)

SERVICE = "backup_drive"
DEFAULT_SUPERVISOR_URL = "http://supervisor"
PUBLIC_KEY_FILE = f"{HOST_KEY_FILE}.pub"
DISCOVERY_PATH = f"/{BACKUPS_FOLDER}"


class SupervisorError(Exception):
    """Supervisor (or Home Assistant behind it) refused or could not be reached."""


class SupervisorClient:
    """POST JSON to the Supervisor API with the add-on's token."""

    def __init__(self, base_url: str | None = None, token: str | None = None) -> None:
        """Use the given URL and token, else the environment Supervisor gives every add-on."""
        self.base_url = (
            base_url or os.environ.get("SUPERVISOR_API") or DEFAULT_SUPERVISOR_URL
        ).rstrip("/")
        token = token if token is not None else os.environ.get("SUPERVISOR_TOKEN", "")
        if not token:
            raise SupervisorError(
                "SUPERVISOR_TOKEN is not set: this only works inside the add-on, "
                "started by Home Assistant's Supervisor"
            )
        self._token = token

    def post(self, path: str, body: dict[str, Any], timeout: float = 30.0) -> Any:
        """Send `body` to `path` and return the decoded JSON answer."""
        request = urllib.request.Request(  # noqa: S310 (the URL is Supervisor's, http on purpose)
            f"{self.base_url}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = _error_message(err.read())
            raise SupervisorError(_explain_status(err.code, path, detail)) from err
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise SupervisorError(f"cannot reach {self.base_url}{path}: {reason}") from err
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError as err:
            raise SupervisorError(f"{path} answered something that is not JSON") from err


def _error_message(raw: bytes) -> str:
    """Pull the message out of a Supervisor error body."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode(errors="replace").strip()[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body)
    return str(body)


def _explain_status(status: int, path: str, detail: str) -> str:
    """Say in plain words why Supervisor refused a request."""
    suffix = f" ({detail})" if detail else ""
    if status == 401:
        return f"Supervisor refused the add-on's token for {path}{suffix}"
    if status == 403:
        return f"Supervisor does not allow {path} for this add-on{suffix}"
    return f"{path} failed with HTTP {status}{suffix}"


def build_config(data_dir: Path, host: str, port: int) -> dict[str, Any]:
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
    return {
        "host": host,
        "port": port,
        "username": HOMEASSISTANT_USER,
        "password": password,
        "host_key": host_key,
        "path": DISCOVERY_PATH,
    }


def wait_for_sftp(port: int, timeout: float, host: str = "127.0.0.1") -> None:
    """Wait until the SFTP server answers with its SSH banner."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                sock.settimeout(5)
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SupervisorError(f"the SFTP server did not start listening on port {port}")
        time.sleep(0.25)


def config_digest(config: dict[str, Any]) -> str:
    """Fingerprint a payload, so the state file never holds the password itself."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def publish(client: SupervisorClient, config: dict[str, Any], state_file: Path) -> str:
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
