"""Talk to the Supervisor API with the token Supervisor gives every add-on."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

DEFAULT_SUPERVISOR_URL = "http://supervisor"


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
            raise SupervisorError(_explain_status(err.code, path, err.read())) from err
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise SupervisorError(f"cannot reach {self.base_url}{path}: {reason}") from err
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError as err:
            raise SupervisorError(f"{path} answered something that is not JSON") from err


def _error_message(raw: bytes) -> tuple[str, bool]:
    """Pull the message out of an error body; tell whether it was Supervisor's own JSON."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode(errors="replace").strip()[:200], False
    if isinstance(body, dict):
        return str(body.get("message") or body), True
    return str(body), True


def _explain_status(status: int, path: str, raw: bytes) -> str:
    """Say in plain words why Supervisor refused a request."""
    detail, from_the_api = _error_message(raw)
    suffix = f" ({detail})" if detail else ""
    if status == 401 and path.startswith("/core/"):
        # The Core API proxy answers 401 both to a wrong token and to a missing permission.
        return (
            f"Home Assistant's API refused {path}: the add-on needs `homeassistant_api: true` "
            f"in config.yaml (or its token is wrong){suffix}"
        )
    if status == 401:
        return f"Supervisor received no token for {path}{suffix}"
    if status == 403 and not from_the_api:
        # Supervisor's security middleware: a plain-text 403 means the token is not valid.
        return f"Supervisor refused the add-on's token for {path}{suffix}"
    if status == 403:
        return f"Supervisor does not allow {path} for this add-on{suffix}"
    return f"{path} failed with HTTP {status}{suffix}"
