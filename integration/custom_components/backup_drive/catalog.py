"""Which backups the folder holds: its metadata files, read many at once and cached briefly."""

from __future__ import annotations

import asyncio
import posixpath
import time
from dataclasses import dataclass
from typing import Final

import asyncssh
from asyncssh import SFTPClient

from .errors import BackupFileMissing, FolderMissing
from .session import DriveSession
from .sidecar import SIDECAR_SUFFIX, StoredBackup, parse_sidecar, sidecar_name

LIST_CACHE_SECONDS: Final = 30.0
SIDECAR_READS_IN_FLIGHT: Final = 64
SIDECAR_READ_SIZE: Final = 256 * 1024

type FileStamp = tuple[int | None, int | None]


@dataclass(frozen=True, slots=True)
class SidecarRecord:
    """A metadata file as last read: its (size, mtime) then, and what it held."""

    stamp: FileStamp
    stored: StoredBackup | None


class BackupCatalog:
    """List and find the backups in one folder, re-reading only metadata files that changed."""

    def __init__(self, session: DriveSession, path: str) -> None:
        """Start with nothing read."""
        self._session = session
        self._path = path
        self._cache: dict[str, StoredBackup] | None = None
        self._cache_expires = 0.0
        # Every sidecar read so far, by name.
        self._sidecars: dict[str, SidecarRecord] = {}

    def invalidate(self) -> None:
        """Forget the cached listing."""
        self._cache = None

    def _cached(self) -> dict[str, StoredBackup] | None:
        """Return the cached listing while it is fresh."""
        if self._cache is not None and time.monotonic() < self._cache_expires:
            return self._cache
        return None

    async def list_backups(self, *, fresh: bool = False) -> dict[str, StoredBackup]:
        """Return the backups in the folder by id, from a short-lived cache unless `fresh`."""
        if not fresh and (cached := self._cached()) is not None:
            return cached
        backups = await self._session.run_with_reconnect("Listing backups", self._read_all)
        self._cache = backups
        self._cache_expires = time.monotonic() + LIST_CACHE_SECONDS
        return backups

    async def find_backup(self, backup_id: str) -> StoredBackup:
        """Return one backup, raising BackupFileMissing when it is not on the drive."""
        if "/" in backup_id or backup_id.startswith(".") or not backup_id:
            raise BackupFileMissing(f"Backup {backup_id!r} not found")
        if (cached := self._cached()) is not None and backup_id in cached:
            return cached[backup_id]
        stored = await self._session.run_with_reconnect(
            f"Reading backup {backup_id}",
            lambda sftp: self._read_sidecar(sftp, sidecar_name(backup_id)),
        )
        if stored is None or stored.backup.backup_id != backup_id:
            raise BackupFileMissing(f"Backup {backup_id} not found")
        return stored

    async def _read_all(self, sftp: SFTPClient) -> dict[str, StoredBackup]:
        """Read the metadata files that are new or changed since the last listing, many at once.

        The directory listing carries each file's size and modification time; a sidecar whose
        both are unchanged is not read again (nor its error logged again).
        """
        try:
            entries = await sftp.readdir(self._path)
        except asyncssh.SFTPNoSuchFile as err:
            raise FolderMissing(f"The folder {self._path} does not exist") from err
        current: dict[str, FileStamp] = {
            name: (entry.attrs.size, entry.attrs.mtime)
            for entry in entries
            if isinstance(name := entry.filename, str)
            and name.startswith(".")
            and name.endswith(SIDECAR_SUFFIX)
        }
        known = self._sidecars
        limit = asyncio.Semaphore(SIDECAR_READS_IN_FLIGHT)

        async def read_one(name: str) -> tuple[str, SidecarRecord] | None:
            async with limit:
                try:
                    stored = await self._read_sidecar(sftp, name)
                except BackupFileMissing:
                    return None  # deleted while we listed
                return name, SidecarRecord(current[name], stored)

        changed = [
            name
            for name, stamp in current.items()
            if None in stamp or name not in known or known[name].stamp != stamp
        ]
        fresh = dict(r for r in await asyncio.gather(*map(read_one, changed)) if r is not None)
        self._sidecars = {
            name: fresh.get(name) or known[name]
            for name in current
            if name in fresh or name in known
        }
        return {
            record.stored.backup.backup_id: record.stored
            for record in self._sidecars.values()
            if record.stored is not None
        }

    async def _read_sidecar(self, sftp: SFTPClient, name: str) -> StoredBackup | None:
        """Read one metadata file; None (and a log line) when it cannot be understood."""
        path = posixpath.join(self._path, name)
        try:
            async with sftp.open(path, "rb") as file:
                raw: bytes = await file.read(SIDECAR_READ_SIZE)
                if len(raw) == SIDECAR_READ_SIZE:
                    rest: bytes = await file.read()
                    raw += rest
        except asyncssh.SFTPNoSuchFile as err:
            raise BackupFileMissing(f"{path} not found") from err
        return parse_sidecar(raw, path)
