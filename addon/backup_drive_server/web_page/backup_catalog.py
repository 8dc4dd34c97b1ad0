"""List a folder the way a person thinks of it: backups (from their sidecars), then the rest."""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from backup_drive_server.health_file import BackupVerification, DriveHealth, parse_timestamp

# Core sftp_storage's layout, kept by the integration: `.<backup_id>.metadata.json`.
SIDECAR_PREFIX = "."
SIDECAR_SUFFIX = ".metadata.json"
# A sidecar is a few kilobytes; anything much bigger is not one.
MAX_SIDECAR_BYTES = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class BackupEntry:
    """One backup as its sidecar describes it."""

    backup_id: str
    name: str
    file_name: str
    date: datetime | None
    homeassistant_version: str | None
    size: int | None
    protected: bool
    homeassistant_included: bool
    database_included: bool
    addons: tuple[str, ...]
    folders: tuple[str, ...]
    archive_present: bool
    verification: BackupVerification | None

    @property
    def contents(self) -> str:
        """Say what the backup holds, the way Home Assistant's backup page does."""
        parts = []
        if self.homeassistant_included:
            history = "with" if self.database_included else "without"
            parts.append(f"Home Assistant ({history} history)")
        if self.addons:
            parts.append("Add-ons: " + ", ".join(self.addons))
        if self.folders:
            parts.append("Folders: " + ", ".join(self.folders))
        return "; ".join(parts)


@dataclass(frozen=True, kw_only=True)
class OtherEntry:
    """A file or folder that is not part of a backup."""

    name: str
    is_folder: bool
    size: int | None
    modified: datetime | None


@dataclass(frozen=True, kw_only=True)
class FolderListing:
    """A folder's backups, newest first, and its other visible entries, folders first."""

    backups: tuple[BackupEntry, ...]
    others: tuple[OtherEntry, ...]


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int | float) and str(value) else None


def _names(items: Any, key: str) -> tuple[str, ...]:
    """Return display names from a list of strings or of dicts holding `key`."""
    if not isinstance(items, list):
        return ()
    names = []
    for item in items:
        if isinstance(item, dict):
            name = _text(item.get(key)) or _text(item.get("slug"))
        else:
            name = _text(item)
        if name:
            names.append(name)
    return tuple(names)


def parse_sidecar(
    raw: bytes, sizes: dict[str, int], health: DriveHealth | None
) -> BackupEntry | None:
    """Read one sidecar; None when it is not one (tolerating core's and older layouts)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        return None
    meta: dict[str, Any] = data["metadata"]
    backup_id = _text(meta.get("backup_id"))
    file_name = posixpath.basename(str(data.get("file_path") or ""))
    if backup_id is None or file_name in ("", ".", ".."):
        return None
    size = meta.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        size = sizes.get(file_name)
    return BackupEntry(
        backup_id=backup_id,
        name=_text(meta.get("name")) or file_name,
        file_name=file_name,
        date=parse_timestamp(meta.get("date")),
        homeassistant_version=_text(meta.get("homeassistant_version")),
        size=size,
        protected=meta.get("protected") is True,
        homeassistant_included=meta.get("homeassistant_included") is True,
        database_included=meta.get("database_included") is True,
        addons=_names(meta.get("addons"), "name"),
        folders=_names(meta.get("folders"), "name"),
        archive_present=file_name in sizes,
        verification=health.backups.get(backup_id) if health else None,
    )


def is_sidecar_name(name: str) -> bool:
    """Return whether `name` is a backup's metadata file."""
    return name.startswith(SIDECAR_PREFIX) and name.endswith(SIDECAR_SUFFIX)


def _read_small(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_SIDECAR_BYTES + 1)
    except OSError:
        return None
    return raw if len(raw) <= MAX_SIDECAR_BYTES else None


def _modified(stat: os.stat_result) -> datetime | None:
    try:
        return datetime.fromtimestamp(stat.st_mtime).astimezone()
    except (OverflowError, OSError, ValueError):
        return None


def is_hidden_name(name: str) -> bool:
    """Return whether browsers never see `name`: dot-files (sidecars, temporary uploads, health).

    This is the contract with the integration, whose temporary upload names are dot-files
    (tests/integration/test_staging_contract.py); WebDAV and SFTP clients still list them.
    """
    return name.startswith(".")


def list_folder(folder: Path, health: DriveHealth | None = None) -> FolderListing:
    """Read `folder`: hidden names (sidecars, unfinished uploads) are never listed as files."""
    sidecars: list[str] = []
    sizes: dict[str, int] = {}
    visible: list[tuple[str, bool, os.stat_result | None]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_sidecar_name(entry.name):
                sidecars.append(entry.path)
                continue
            if is_hidden_name(entry.name):
                continue
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
                stat = entry.stat(follow_symlinks=False)
            except OSError:
                is_folder, stat = False, None
            if stat is not None and not is_folder:
                sizes[entry.name] = stat.st_size
            visible.append((entry.name, is_folder, stat))
    backups = []
    for path in sidecars:
        raw = _read_small(path)
        backup = parse_sidecar(raw, sizes, health) if raw is not None else None
        if backup is not None:
            backups.append(backup)
    claimed = {backup.file_name for backup in backups}
    others = [
        OtherEntry(
            # A name written over SFTP need not be UTF-8; shown escaped as WebDAV lists it.
            name=os.fsencode(name).decode("utf-8", "backslashreplace"),
            is_folder=is_folder,
            size=None if is_folder or stat is None else stat.st_size,
            modified=_modified(stat) if stat is not None else None,
        )
        for name, is_folder, stat in visible
        if name not in claimed
    ]
    backups.sort(key=lambda b: (b.date.timestamp() if b.date else 0.0, b.name), reverse=True)
    others.sort(key=lambda o: (not o.is_folder, o.name.lower()))
    return FolderListing(backups=tuple(backups), others=tuple(others))
