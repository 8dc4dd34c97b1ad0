"""Which backups the folder holds: its metadata files, from the index, cached briefly."""

from __future__ import annotations

import asyncio
import posixpath
import time
from dataclasses import dataclass
from typing import Final

import asyncssh
from asyncssh import SFTPClient

from .const import LOGGER
from .errors import BackupDriveError, BackupFileMissing, FolderMissing
from .listing_index import INDEX_NAME, FileStamp, encode_index, trusted_entries
from .session import DriveSession
from .sidecar import SIDECAR_SUFFIX, StoredBackup, parse_sidecar, sidecar_name
from .upload import write_small_file

LIST_CACHE_SECONDS: Final = 30.0
SIDECAR_READS_IN_FLIGHT: Final = 64
SIDECAR_READ_SIZE: Final = 256 * 1024


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
        # The (size, mtime) of each metadata file the index on the drive holds, as last read or
        # written; None until then.
        self._indexed: dict[str, FileStamp] | None = None

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

    async def follow_own_change(self) -> None:
        """List again after our own upload or delete, so that the index follows at once.

        The upload or delete itself succeeded: a failure here only leaves the index for the
        next listing to repair.
        """
        self.invalidate()
        try:
            await self.list_backups(fresh=True)
        except BackupDriveError as err:
            LOGGER.debug("Could not update %s after a change: %s", INDEX_NAME, err)

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
        index = next((entry.attrs for entry in entries if entry.filename == INDEX_NAME), None)
        if not known and index is not None and index.mtime is not None:
            known = await self._read_index(sftp, index.mtime, current)
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
        reread = dict(r for r in await asyncio.gather(*map(read_one, changed)) if r is not None)
        self._sidecars = {
            name: reread.get(name) or known[name]
            for name in current
            if name in reread or name in known
        }
        await self._update_index(sftp)
        return {
            record.stored.backup.backup_id: record.stored
            for record in self._sidecars.values()
            if record.stored is not None
        }

    async def _read_index(
        self, sftp: SFTPClient, index_mtime: int, current: dict[str, FileStamp]
    ) -> dict[str, SidecarRecord]:
        """Return the index's records that still match the folder; none when it is unreadable."""
        try:
            raw = await self._read_file(sftp, posixpath.join(self._path, INDEX_NAME))
        except (OSError, asyncssh.SFTPError) as err:
            LOGGER.debug("Cannot read %s: %s", INDEX_NAME, err)
            return {}
        trusted = trusted_entries(raw, index_mtime, current, self._path)
        self._indexed = {name: stamp for name, (stamp, _stored) in trusted.items()}
        return {name: SidecarRecord(stamp, stored) for name, (stamp, stored) in trusted.items()}

    async def _update_index(self, sftp: SFTPClient) -> None:
        """Rewrite the index when the metadata files differ from what it holds.

        Best effort: a read-only account or a full drive leaves the listing as it is (and the
        next cold start reads the metadata files one by one).
        """
        records = {
            name: (record.stamp, record.stored)
            for name, record in self._sidecars.items()
            if record.stored is not None and None not in record.stamp
        }
        wanted = {name: stamp for name, (stamp, _stored) in records.items()}
        if wanted == self._indexed:
            return
        self._indexed = wanted
        try:
            await write_small_file(sftp, self._path, INDEX_NAME, encode_index(records))
        except (OSError, asyncssh.SFTPError) as err:
            LOGGER.debug("Cannot write %s: %s", INDEX_NAME, err)

    async def _read_sidecar(self, sftp: SFTPClient, name: str) -> StoredBackup | None:
        """Read one metadata file; None (and a log line) when it cannot be understood."""
        path = posixpath.join(self._path, name)
        try:
            raw = await self._read_file(sftp, path)
        except asyncssh.SFTPNoSuchFile as err:
            raise BackupFileMissing(f"{path} not found") from err
        return parse_sidecar(raw, path)

    @staticmethod
    async def _read_file(sftp: SFTPClient, path: str) -> bytes:
        """Read a small file whole: one read for a metadata file, more for the index."""
        async with sftp.open(path, "rb") as file:
            raw: bytes = await file.read(SIDECAR_READ_SIZE)
            if len(raw) == SIDECAR_READ_SIZE:
                rest: bytes = await file.read()
                raw += rest
        return raw
