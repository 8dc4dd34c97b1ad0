"""Read the drive's health file: the contract between the integration and the add-on's page.

The `backup_drive` integration writes `<backups folder>/.backup-drive-health.json` atomically
(temporary name, then rename); the add-on only reads it. Version 1 holds:

    {"version": 1,
     "last_upload": "<ISO 8601>" | null,
     "last_verified": "<ISO 8601>" | null,
     "problems": ["not_enough_space", "stale_backups", "drive_unreachable", "backup_corrupted"],
     "backups": {"<backup_id>": {"verified_at": "<ISO 8601>",
                                 "result": "ok" | "mismatch" | "unreadable",
                                 "sha256": "<hex>"}}}

Add keys, never rename them. A missing file, garbage or an unknown version reads as "nothing
recorded"; a bad field is dropped on its own, so one mistake never hides the rest.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

HEALTH_FILE_NAME = ".backup-drive-health.json"
HEALTH_FILE_VERSION = 1
# Files larger than this are not a health file the integration wrote.
MAX_HEALTH_FILE_BYTES = 4 * 1024 * 1024
VERIFICATION_RESULTS = frozenset({"ok", "mismatch", "unreadable"})


@dataclass(frozen=True, kw_only=True)
class BackupVerification:
    """The integration's last check of one backup's archive."""

    verified_at: datetime | None
    result: str
    sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class DriveHealth:
    """What the integration last recorded about the drive."""

    last_upload: datetime | None = None
    last_verified: datetime | None = None
    problems: tuple[str, ...] = ()
    backups: dict[str, BackupVerification] = field(default_factory=dict)


def parse_timestamp(value: Any) -> datetime | None:
    """Return an aware datetime for an ISO 8601 string (naive means UTC), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _verification(entry: Any) -> BackupVerification | None:
    if not isinstance(entry, dict) or entry.get("result") not in VERIFICATION_RESULTS:
        return None
    sha256 = entry.get("sha256")
    return BackupVerification(
        verified_at=parse_timestamp(entry.get("verified_at")),
        result=str(entry["result"]),
        sha256=sha256 if isinstance(sha256, str) else None,
    )


def parse_health(raw: bytes) -> DriveHealth | None:
    """Read a health file's content; None when it is not a version 1 health file."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("version") != HEALTH_FILE_VERSION:
        return None
    problems = data.get("problems")
    backups = data.get("backups")
    checks = {
        str(backup_id): check
        for backup_id, entry in (backups.items() if isinstance(backups, dict) else ())
        if (check := _verification(entry)) is not None
    }
    return DriveHealth(
        last_upload=parse_timestamp(data.get("last_upload")),
        last_verified=parse_timestamp(data.get("last_verified")),
        problems=tuple(p for p in problems if isinstance(p, str))
        if isinstance(problems, list)
        else (),
        backups=checks,
    )


def read_health(backups_folder: Path) -> DriveHealth | None:
    """Read the health file in `backups_folder`; None when absent or unreadable."""
    path = backups_folder / HEALTH_FILE_NAME
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_HEALTH_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as err:
        _LOGGER.debug("Cannot read %s: %s", path, err)
        return None
    if len(raw) > MAX_HEALTH_FILE_BYTES:
        return None
    health = parse_health(raw)
    if health is None:
        _LOGGER.debug("Ignoring %s: not a version %d health file", path, HEALTH_FILE_VERSION)
    return health
