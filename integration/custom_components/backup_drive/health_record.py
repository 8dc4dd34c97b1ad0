"""The health file on the drive: last upload, last verification, open problems, results."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import asyncssh
from asyncssh import SFTPClient

from .const import LOGGER
from .upload import write_small_file

# Contract with the add-on's web page (it reads this file): add keys, never rename them.
HEALTH_FILE_NAME: Final = ".backup-drive-health.json"
HEALTH_FILE_VERSION: Final = 1
HEALTH_READ_LIMIT: Final = 4 * 1024 * 1024

RESULT_OK: Final = "ok"
RESULT_MISMATCH: Final = "mismatch"
RESULT_UNREADABLE: Final = "unreadable"


@dataclass(kw_only=True)
class VerificationResult:
    """What the last verification of one backup found."""

    verified_at: datetime
    result: str
    sha256: str | None = None
    # The user chose to keep a damaged backup: its repair stays closed until the result changes.
    kept: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the result as the health file stores it."""
        stored: dict[str, Any] = {
            "verified_at": self.verified_at.isoformat(),
            "result": self.result,
            "sha256": self.sha256,
        }
        if self.kept:
            stored["kept"] = True
        return stored


@dataclass(kw_only=True)
class HealthRecord:
    """The history of one backup folder, shared by every Home Assistant that uses it."""

    last_upload: datetime | None = None
    last_verified: datetime | None = None
    problems: list[str] = field(default_factory=list)
    backups: dict[str, VerificationResult] = field(default_factory=dict)

    def as_bytes(self) -> bytes:
        """Return the file's content."""
        content = {
            "version": HEALTH_FILE_VERSION,
            "last_upload": _iso(self.last_upload),
            "last_verified": _iso(self.last_verified),
            "problems": sorted(set(self.problems)),
            "backups": {key: result.as_dict() for key, result in sorted(self.backups.items())},
        }
        return json.dumps(content, indent=1).encode()


def _iso(moment: datetime | None) -> str | None:
    """Return a timestamp in ISO 8601, or None."""
    return moment.isoformat() if moment is not None else None


def _moment(value: object) -> datetime | None:
    """Read an ISO 8601 timestamp with its offset; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _result(value: object) -> VerificationResult | None:
    """Read one backup's verification result; None when it is not one."""
    if not isinstance(value, dict) or (verified_at := _moment(value.get("verified_at"))) is None:
        return None
    result = value.get("result")
    sha256 = value.get("sha256")
    if result not in (RESULT_OK, RESULT_MISMATCH, RESULT_UNREADABLE):
        return None
    return VerificationResult(
        verified_at=verified_at,
        result=str(result),
        sha256=sha256 if isinstance(sha256, str) else None,
        kept=value.get("kept") is True,
    )


def parse_health(raw: bytes, path: str) -> HealthRecord:
    """Read the file's content; an empty record (and a log line) when it cannot be understood."""
    try:
        data = json.loads(raw)
    except ValueError as err:
        LOGGER.warning("Starting a new health history: %s cannot be read (%s)", path, err)
        return HealthRecord()
    if not isinstance(data, dict):
        LOGGER.warning("Starting a new health history: %s holds no object", path)
        return HealthRecord()
    backups = data.get("backups")
    problems = data.get("problems")
    return HealthRecord(
        last_upload=_moment(data.get("last_upload")),
        last_verified=_moment(data.get("last_verified")),
        problems=[p for p in problems if isinstance(p, str)] if isinstance(problems, list) else [],
        backups={
            str(key): result
            for key, value in (backups.items() if isinstance(backups, dict) else ())
            if (result := _result(value)) is not None
        },
    )


async def read_health(sftp: SFTPClient, folder: str) -> HealthRecord:
    """Read the folder's health file; an empty record when there is none yet."""
    path = posixpath.join(folder, HEALTH_FILE_NAME)
    try:
        async with sftp.open(path, "rb") as file:
            raw: bytes = await file.read(HEALTH_READ_LIMIT)
    except asyncssh.SFTPNoSuchFile:
        return HealthRecord()
    return parse_health(raw, path)


async def write_health(sftp: SFTPClient, folder: str, record: HealthRecord) -> None:
    """Replace the folder's health file atomically."""
    await write_small_file(sftp, folder, HEALTH_FILE_NAME, record.as_bytes())
