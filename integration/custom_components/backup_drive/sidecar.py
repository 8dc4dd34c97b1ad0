"""The metadata file next to each backup, in core sftp_storage's layout plus sha256 and size."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.components.backup import AgentBackup

from .const import LOGGER

SIDECAR_SUFFIX: Final = ".metadata.json"


@dataclass(frozen=True, kw_only=True)
class StoredBackup:
    """A backup found on the drive: its metadata and where its archive is."""

    backup: AgentBackup
    file_name: str
    sha256: str | None = None
    size: int | None = None


def sidecar_name(backup_id: str) -> str:
    """Return the name of the metadata file core's sftp_storage uses for a backup."""
    return f".{backup_id}{SIDECAR_SUFFIX}"


def sidecar_data(
    backup: AgentBackup, file_path: str, sha256: str | None, size: int | None
) -> dict[str, Any]:
    """Return what a metadata file holds for an archive: core's keys, then ours."""
    return {"file_path": file_path, "metadata": backup.as_dict(), "sha256": sha256, "size": size}


def sidecar_content(backup: AgentBackup, file_path: str, sha256: str, size: int) -> bytes:
    """Return the metadata file for an archive."""
    return json.dumps(sidecar_data(backup, file_path, sha256, size)).encode()


def parse_sidecar(raw: bytes, path: str) -> StoredBackup | None:
    """Read a metadata file's content; None (and a log line) when it cannot be understood."""
    try:
        data = json.loads(raw)
    except ValueError as err:
        LOGGER.error("Ignoring %s: it is not a valid backup metadata file (%r)", path, err)
        return None
    return stored_backup_from(data, path)


def stored_backup_from(data: Any, path: str) -> StoredBackup | None:
    """Read a metadata file's decoded JSON; None (and a log line) when it is not usable."""
    try:
        backup = AgentBackup.from_dict(data["metadata"])
        file_name = posixpath.basename(str(data["file_path"]))
        sha256 = data.get("sha256")
        size = data.get("size")
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        LOGGER.error("Ignoring %s: it is not a valid backup metadata file (%r)", path, err)
        return None
    if file_name in ("", ".", "..") or not isinstance(backup.backup_id, str):
        LOGGER.error("Ignoring %s: it names no usable archive", path)
        return None
    return StoredBackup(
        backup=backup,
        file_name=file_name,
        sha256=sha256 if isinstance(sha256, str) else None,
        size=size if isinstance(size, int) else None,
    )
