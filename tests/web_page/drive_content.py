"""Fill a backups folder the way the integration does: archives and their hidden sidecars."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HEALTH_FILE = ".backup-drive-health.json"
FIRST_DATE = datetime(2026, 11, 30, 1, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class WrittenBackup:
    """One backup put on the drive: what its sidecar says and its archive's bytes."""

    backup_id: str
    name: str
    file_name: str
    date: datetime
    size: int
    protected: bool

    @property
    def sidecar_name(self) -> str:
        """The hidden metadata file next to the archive."""
        return f".{self.backup_id}.metadata.json"


def agent_backup(
    backup_id: str, name: str, date: datetime, size: int, index: int
) -> dict[str, Any]:
    """Return AgentBackup.as_dict() for a typical automatic backup."""
    return {
        "addons": [{"name": "Mosquitto broker", "slug": "core_mosquitto", "version": "6.5.1"}],
        "backup_id": backup_id,
        "database_included": index % 3 != 0,
        "date": date.isoformat(),
        "extra_metadata": {"instance_id": "test", "with_automatic_settings": True},
        "folders": ["share", "media"] if index % 2 else [],
        "homeassistant_included": True,
        "homeassistant_version": f"2026.11.{index % 4}",
        "name": name,
        "protected": index % 2 == 0,
        "size": size,
    }


def write_backups(
    folder: Path, count: int, *, archive_bytes: int = 4096, sizes: list[int] | None = None
) -> list[WrittenBackup]:
    """Write `count` backups, one day apart, newest last; sidecars claim `sizes` when given."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(count):
        backup_id = hashlib.sha1(f"backup {index}".encode(), usedforsecurity=False).hexdigest()[:8]
        date = FIRST_DATE - timedelta(days=count - 1 - index, minutes=index % 60)
        name = f"Automatic backup 2026.11.{index % 4}"
        file_name = f"Automatic_backup_2026.11.{index % 4}_{date:%Y-%m-%d_%H.%M}_{index:08d}.tar"
        payload = os.urandom(archive_bytes)
        (folder / file_name).write_bytes(payload)
        size = sizes[index] if sizes else archive_bytes
        sidecar = {
            "file_path": f"/backups/{file_name}",
            "metadata": agent_backup(backup_id, name, date, size, index),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": archive_bytes,
        }
        (folder / f".{backup_id}.metadata.json").write_text(json.dumps(sidecar))
        written.append(WrittenBackup(backup_id, name, file_name, date, size, index % 2 == 0))
    return written


def write_health(folder: Path, content: dict[str, Any] | str) -> None:
    """Write the integration's health file (a dict as JSON, a string as it is)."""
    text = content if isinstance(content, str) else json.dumps(content)
    (folder / HEALTH_FILE).write_text(text)
