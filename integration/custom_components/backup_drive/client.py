"""Talk to a Backup Drive (or any SFTP server): what the agent, setup and the config flow call."""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import asyncssh
from asyncssh import SFTPClient, SFTPClientFile
from homeassistant.components.backup import AgentBackup

from .archive_name import check_backup_id, plain_file_name
from .catalog import BackupCatalog
from .errors import BackupDamaged
from .folder import probe_folder, read_disk_usage
from .health_record import HealthRecord, read_health, write_health
from .session import CONNECT_TIMEOUT, DriveSession, ServerSettings, normalize_path
from .sidecar import StoredBackup, sidecar_name
from .transfer import close_quietly, read_blocks
from .upload import UploadResult, upload_backup


class BackupDriveClient:
    """One backup folder on one drive, over a session that reconnects when it drops."""

    def __init__(
        self, settings: ServerSettings, *, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        """Prepare; nothing connects until the first call."""
        self.path = normalize_path(settings.path)
        self._session = DriveSession(settings, connect_timeout=connect_timeout)
        self._catalog = BackupCatalog(self._session, self.path)

    @property
    def connected(self) -> bool:
        """Whether an SFTP session is open right now."""
        return self._session.connected

    @property
    def cipher(self) -> str | None:
        """The SSH cipher in use (client to server), once connected."""
        return self._session.cipher

    @property
    def server_version(self) -> str | None:
        """The SSH version string of the server, once connected."""
        return self._session.server_version

    async def close(self) -> None:
        """Close the SSH connection, if any."""
        await self._session.close()

    async def check_folder(self) -> None:
        """Raise unless the backup folder exists and we may write in it."""
        await self._session.run_with_reconnect(
            "Checking the backup folder", lambda sftp: probe_folder(sftp, self.path)
        )

    async def wake(self) -> None:
        """Write and sync a small file, so that a spun-down disk is spinning afterwards."""
        await self._session.run_with_reconnect(
            "Waking the drive", lambda sftp: probe_folder(sftp, self.path, sync=True)
        )

    async def disk_usage(self) -> tuple[int, int] | None:
        """Return (free, total) bytes of the drive, when the server reports them."""
        return await self._session.run_with_reconnect(
            "Reading free space", lambda sftp: read_disk_usage(sftp, self.path)
        )

    async def read_health(self) -> HealthRecord:
        """Return the folder's health history (empty when it has none yet)."""
        return await self._session.run_with_reconnect(
            "Reading the health file", lambda sftp: read_health(sftp, self.path)
        )

    async def write_health(self, record: HealthRecord) -> None:
        """Replace the folder's health history on the drive."""
        await self._session.run_with_reconnect(
            "Writing the health file", lambda sftp: write_health(sftp, self.path, record)
        )

    def invalidate_cache(self) -> None:
        """Forget the cached listing."""
        self._catalog.invalidate()

    async def list_backups(self, *, fresh: bool = False) -> dict[str, StoredBackup]:
        """Return the backups in the folder by id, from a short-lived cache unless `fresh`."""
        return await self._catalog.list_backups(fresh=fresh)

    async def find_backup(self, backup_id: str) -> StoredBackup:
        """Return one backup, raising BackupFileMissing when it is not on the drive."""
        return await self._catalog.find_backup(backup_id)

    async def upload(
        self,
        stream: AsyncIterator[bytes],
        *,
        backup: AgentBackup,
        file_name: str,
        on_progress: Callable[[int], None] | None = None,
    ) -> UploadResult:
        """Stream an archive into the folder under a plain file name, with its sidecar."""
        # A backup's name (and so Home Assistant's suggested file name) may hold "/" or "..":
        # on a generic SFTP server that would write into a subfolder or outside the folder.
        check_backup_id(backup.backup_id)
        file_name = plain_file_name(file_name)
        self.invalidate_cache()
        try:
            result = await upload_backup(
                self._session,
                self.path,
                stream,
                backup=backup,
                file_name=file_name,
                on_progress=on_progress,
            )
        finally:
            self.invalidate_cache()
        await self._catalog.follow_own_change()
        return result

    async def open_download(
        self, stored: StoredBackup, *, check_integrity: bool = True
    ) -> AsyncGenerator[bytes]:
        """Open an archive and return its bytes as an iterator with reads in flight.

        With `check_integrity` a size or sha256 that differs from the metadata file ends in
        BackupDamaged; verification reads without it, to tell a mismatch from a cut archive.
        """
        path = posixpath.join(self.path, stored.file_name)

        async def open_file(sftp: SFTPClient) -> tuple[SFTPClientFile, int]:
            file = await sftp.open(path, "rb")
            try:
                size = (await file.stat()).size or 0
            except BaseException:
                await file.close()
                raise
            return file, size

        file, size = await self._session.run_with_reconnect(
            f"Opening {stored.file_name}", open_file
        )
        if not check_integrity:
            return read_blocks(file, size, stored.file_name)
        if stored.size is not None and size != stored.size:
            await close_quietly(file)
            raise BackupDamaged(
                f"{stored.file_name} holds {size} bytes, {stored.size} were stored; "
                "the file was cut short or replaced"
            )
        return read_blocks(file, size, stored.file_name, stored.sha256)

    async def delete(self, stored: StoredBackup) -> None:
        """Remove an archive and its sidecar (either may already be gone)."""

        async def remove(sftp: SFTPClient) -> None:
            for name in (stored.file_name, sidecar_name(stored.backup.backup_id)):
                with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                    await sftp.remove(posixpath.join(self.path, name))

        try:
            await self._session.run_with_reconnect(f"Deleting {stored.file_name}", remove)
        finally:
            self.invalidate_cache()
        await self._catalog.follow_own_change()
