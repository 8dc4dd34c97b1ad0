"""One file copying every metadata file in the folder: a cold start reads it, not 1,000 files.

The metadata files stay the truth (core's sftp_storage reads and writes only them). The index
is a cache on the drive: each entry is trusted only while the folder listing shows its metadata
file with the same size and modification time, so whatever another writer (core's agent, a
person over WebDAV) changed is read again and the index rewritten.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from typing import Any, Final

from .const import LOGGER
from .sidecar import StoredBackup, sidecar_data, stored_backup_from

# Not ending in ".metadata.json": core's sftp_storage must not take it for a backup.
INDEX_NAME: Final = ".backup_drive.index.json"
INDEX_VERSION: Final = 1

type FileStamp = tuple[int | None, int | None]
type IndexedSidecar = tuple[FileStamp, StoredBackup]


def encode_index(records: Mapping[str, IndexedSidecar]) -> bytes:
    """Return the index file for metadata files by name, each with its (size, mtime)."""
    sidecars = {
        name: {
            "size": size,
            "mtime": mtime,
            "sidecar": sidecar_data(stored.backup, stored.file_name, stored.sha256, stored.size),
        }
        for name, ((size, mtime), stored) in records.items()
    }
    return json.dumps({"version": INDEX_VERSION, "sidecars": sidecars}).encode()


def trusted_entries(
    raw: bytes, index_mtime: int, current: Mapping[str, FileStamp], folder: str
) -> dict[str, IndexedSidecar]:
    """Return the index entries that still describe the metadata files listed in `current`.

    An entry counts when its file has the same size and mtime as when it was indexed and that
    mtime is older than the index itself: a file rewritten in the same second as the index
    (mtimes have whole seconds, on FAT two) could keep both, so it is read again instead.
    """
    try:
        data = json.loads(raw)
        version = data["version"]
        entries: dict[str, Any] = dict(data["sidecars"])
    except (ValueError, KeyError, TypeError) as err:
        LOGGER.warning("Rebuilding %s: it cannot be read (%r)", INDEX_NAME, err)
        return {}
    if version != INDEX_VERSION:
        LOGGER.warning("Rebuilding %s: it has another format (version %r)", INDEX_NAME, version)
        return {}
    trusted: dict[str, IndexedSidecar] = {}
    for name, entry in entries.items():
        stamp = current.get(name)
        if stamp is None or stamp[1] is None or stamp[1] >= index_mtime:
            continue
        if not isinstance(entry, dict) or (entry.get("size"), entry.get("mtime")) != stamp:
            continue
        stored = stored_backup_from(entry.get("sidecar"), posixpath.join(folder, name))
        if stored is not None:
            trusted[name] = (stamp, stored)
    return trusted
