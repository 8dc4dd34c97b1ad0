"""Read the server's settings from command-line flags and the add-on's options file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backup_drive_server.web_page.options import WebPageSettings

BACKUPS_FOLDER = "backups"
HOMEASSISTANT_USER = "homeassistant"
# The add-on's ports: config.yaml publishes these, and the add-on's tools probe them.
SFTP_PORT = 2222
WEBDAV_PORT = 8080
# How long transfers in flight may take to finish after SIGTERM before they are cut off, over
# SFTP and WebDAV alike. s6 and Docker allow 10 seconds before SIGKILL; this leaves time to
# clean up after.
SHUTDOWN_GRACE_SECONDS = 4
# What file managers call the WebDAV root when the drive's label is not known.
DEFAULT_LABEL = "Backup Drive"


class SettingsError(Exception):
    """Settings that cannot work; the message says which and why."""


@dataclass(frozen=True, kw_only=True)
class ExtraUser:
    """An account configured in the add-on's options, besides the built-in one."""

    username: str
    password: str = field(repr=False)
    read_only: bool = False
    authorized_keys: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Everything the server needs to start."""

    storage: Path
    data_dir: Path
    bind: str = "127.0.0.1"
    sftp_port: int = SFTP_PORT
    webdav_port: int = WEBDAV_PORT
    users: tuple[ExtraUser, ...] = ()
    webdav_certfile: Path | None = None
    webdav_keyfile: Path | None = None
    require_mount: bool = False
    log_level: str = "info"
    max_connections: int = 32
    # The add-on's own page (--ui-port); None leaves it off.
    web_page: WebPageSettings | None = None
    # How long a WebDAV Digest nonce is accepted; clients then log in again without asking.
    webdav_nonce_seconds: float = 300.0
    # The WebDAV root's display name; None: the mounted drive's label, else DEFAULT_LABEL.
    label: str | None = None

    def validate(self) -> None:
        """Raise SettingsError when the settings cannot work together."""
        storage = self.storage.resolve()
        data_dir = self.data_dir.resolve()
        if data_dir == storage or data_dir.is_relative_to(storage):
            raise SettingsError(
                f"the data directory {data_dir} is inside the storage root {storage}; keep it "
                "outside, or the host key and passwords would be readable over SFTP and WebDAV"
            )
        if (self.webdav_certfile is None) != (self.webdav_keyfile is None):
            raise SettingsError("WebDAV TLS needs both a certificate file and a key file")
        for tls_file in (self.webdav_certfile, self.webdav_keyfile):
            if tls_file is not None and not tls_file.is_file():
                raise SettingsError(f"WebDAV TLS file {tls_file} does not exist")
        names = [user.username for user in self.users]
        for name in names:
            if name == HOMEASSISTANT_USER:
                raise SettingsError(
                    f"the user name {HOMEASSISTANT_USER!r} is reserved for Home Assistant; "
                    "choose another name in the users option"
                )
            if names.count(name) > 1:
                raise SettingsError(f"the user name {name!r} appears more than once in users")
            if not name or any(c in name for c in "\\/:@ "):
                raise SettingsError(
                    f"the user name {name!r} is not valid: use letters, digits, '-', '_' or '.'"
                )


def read_options(options_file: Path) -> dict[str, Any]:
    """Load the add-on's options.json."""
    try:
        options = json.loads(options_file.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise SettingsError(f"options file {options_file} does not exist") from err
    except json.JSONDecodeError as err:
        raise SettingsError(f"options file {options_file} is not valid JSON: {err}") from err
    if not isinstance(options, dict):
        raise SettingsError(f"options file {options_file} must hold a JSON object")
    return options


def users_from_options(options: dict[str, Any]) -> tuple[ExtraUser, ...]:
    """Build the extra accounts from the options' `users` list."""
    users = []
    for number, entry in enumerate(options.get("users") or [], start=1):
        if not isinstance(entry, dict) or not entry.get("username"):
            # Never echo the entry: it may hold a password.
            raise SettingsError(f"entry {number} of users needs a username")
        keys = entry.get("authorized_keys") or []
        if isinstance(keys, str):
            keys = [line for line in keys.splitlines() if line.strip()]
        if not entry.get("password") and not keys:
            raise SettingsError(f"user {entry['username']!r} needs a password or authorized_keys")
        users.append(
            ExtraUser(
                username=str(entry["username"]),
                password=str(entry.get("password") or ""),
                read_only=bool(entry.get("read_only", False)),
                authorized_keys=tuple(str(key).strip() for key in keys),
            )
        )
    return tuple(users)
