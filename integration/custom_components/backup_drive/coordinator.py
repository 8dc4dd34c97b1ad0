"""Poll the drive's health: free space, what is stored, the history on the drive, problems."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from homeassistant.components.backup import AgentBackup, BackupAgentError
from homeassistant.core import HomeAssistant
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .client import BackupDriveClient
from .const import CONF_VERIFY_DAYS, DEFAULT_VERIFY_DAYS, DOMAIN, LOGGER
from .errors import BackupDriveError, CannotConnect
from .health_record import HealthRecord
from .health_repairs import ProblemInputs, async_update_issues, format_size, required_space
from .sidecar import StoredBackup
from .verification import verify_all

if TYPE_CHECKING:
    from . import BackupDriveConfigEntry

# A few minutes apart: one cached listing and one statvfs each time.
POLL_INTERVAL: Final = timedelta(minutes=5)
# A drive never verified is first verified this long after Home Assistant started, not during
# its start.
FIRST_VERIFICATION_DELAY: Final = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class DriveHealth:
    """What the entities show: one poll's view of the drive."""

    connected: bool
    free_bytes: int | None = None
    total_bytes: int | None = None
    backups_stored: int | None = None
    backups_size: int | None = None
    last_upload: datetime | None = None
    last_verified: datetime | None = None
    problems: frozenset[str] = field(default_factory=frozenset)


class BackupDriveCoordinator(DataUpdateCoordinator[DriveHealth]):
    """Poll one drive over the entry's session and keep its health file and repairs current."""

    config_entry: BackupDriveConfigEntry

    def __init__(
        self, hass: HomeAssistant, entry: BackupDriveConfigEntry, client: BackupDriveClient
    ) -> None:
        """Start with nothing known about the drive."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=POLL_INTERVAL,
        )
        self.client = client
        self.record: HealthRecord | None = None
        self.backups: dict[str, StoredBackup] = {}
        self.disk_usage: tuple[int, int] | None = None
        self.unreachable_since: datetime | None = None
        self.upload_failed_while_away = False
        self.started_at = dt_util.utcnow()
        # The size of the backup last offered to this drive: the best guess of the next one.
        self.expected_backup_size: int | None = None
        self.uploads_running = 0
        self.no_uploads = asyncio.Event()
        self.no_uploads.set()
        self._record_lock = asyncio.Lock()
        self.verification: asyncio.Task[None] | None = None

    async def _async_update_data(self) -> DriveHealth:
        """Read the listing (cached), the free space and, once, the health file."""
        try:
            self.backups = await self.client.list_backups()
            self.disk_usage = await self.client.disk_usage()
            if self.record is None:
                self.record = await self.client.read_health()
        except BackupDriveError as err:
            if self.unreachable_since is None:
                LOGGER.info("%s cannot be reached: %s", self.config_entry.title, err)
                self.unreachable_since = dt_util.utcnow()
            return await self._evaluate(connected=False)
        if self.unreachable_since is not None:
            LOGGER.info("%s answers again", self.config_entry.title)
        self.unreachable_since = None
        self.upload_failed_while_away = False
        return await self._evaluate(connected=True)

    async def _evaluate(self, *, connected: bool) -> DriveHealth:
        """Raise and clear repairs, store what changed on the drive, and build the state."""
        record = self.record or HealthRecord()
        if connected:
            for gone in set(record.backups) - set(self.backups):
                del record.backups[gone]
        problems = async_update_issues(
            self.hass,
            self.config_entry,
            ProblemInputs(
                connected=connected,
                free_bytes=self.disk_usage[0] if self.disk_usage else None,
                next_backup_size=self._next_backup_size(),
                last_upload=self._last_upload(record),
                unreachable_since=self.unreachable_since,
                backup_failed_while_away=self.upload_failed_while_away,
                backups=self.backups,
                results=record.backups,
            ),
        )
        if connected and self.record is not None and set(record.problems) != problems:
            record.problems = sorted(problems)
            await self.async_save_record()
        if connected and self._verification_due(record):
            self.start_verification()
        if not connected:
            return DriveHealth(
                connected=False,
                last_upload=record.last_upload,
                last_verified=record.last_verified,
                problems=frozenset(problems),
            )
        free, total = self.disk_usage or (None, None)
        return DriveHealth(
            connected=True,
            free_bytes=free,
            total_bytes=total,
            backups_stored=len(self.backups),
            backups_size=sum(stored.backup.size for stored in self.backups.values()),
            last_upload=record.last_upload,
            last_verified=record.last_verified,
            problems=frozenset(problems),
        )

    def _verification_due(self, record: HealthRecord) -> bool:
        """Return whether the verification schedule calls for one now."""
        days = int(self.config_entry.options.get(CONF_VERIFY_DAYS, DEFAULT_VERIFY_DAYS))
        if not days or not self.backups:
            return False
        reference = record.last_verified or self.started_at + FIRST_VERIFICATION_DELAY - timedelta(
            days=days
        )
        return dt_util.utcnow() - reference >= timedelta(days=days)

    def start_verification(self) -> bool:
        """Verify every backup in the background, unless a verification is running already."""
        if self.verification is not None and not self.verification.done():
            return False
        self.verification = self.config_entry.async_create_background_task(
            self.hass, verify_all(self), f"{DOMAIN} verify {self.config_entry.title}"
        )
        return True

    def _next_backup_size(self) -> int | None:
        """Return the size the next backup is expected to have."""
        if self.expected_backup_size is not None:
            return self.expected_backup_size
        newest = max(self.backups.values(), key=lambda s: s.backup.date, default=None)
        return newest.backup.size if newest is not None else None

    def _last_upload(self, record: HealthRecord) -> datetime:
        """Return when a backup last reached this drive, or since when it has been in use."""
        dates = [dt_util.parse_datetime(s.backup.date) for s in self.backups.values()]
        known = [d for d in (record.last_upload, *dates) if d is not None]
        return max(known, default=self.config_entry.created_at)

    async def async_save_record(self) -> None:
        """Write the health file; a failure is logged, never raised."""
        if self.record is None:
            return
        async with self._record_lock:
            try:
                await self.client.write_health(self.record)
            except BackupDriveError as err:
                LOGGER.warning("Could not update the health file of %s: %s", self.name, err)

    async def async_check_space(self, backup: AgentBackup) -> None:
        """Refuse a backup that cannot fit before a byte of it is written."""
        self.expected_backup_size = backup.size
        usage = await self.client.disk_usage()
        if usage is None:
            return
        self.disk_usage = usage
        needed = required_space(backup.size)
        if usage[0] >= needed:
            return
        await self.async_refresh()
        raise BackupAgentError(
            translation_domain=DOMAIN,
            translation_key="not_enough_space",
            translation_placeholders={
                "title": self.config_entry.title,
                "needed": format_size(needed),
                "free": format_size(usage[0]),
            },
        )

    @contextlib.asynccontextmanager
    async def track_upload(self) -> AsyncIterator[None]:
        """Hold verification off while an upload runs; record its success on the drive."""
        self.uploads_running += 1
        self.no_uploads.clear()
        try:
            yield
        except BackupDriveError as err:
            # The drive is not as last listed (folder gone, drive away): list it afresh next time.
            self.client.invalidate_cache()
            if isinstance(err, CannotConnect):
                self.upload_failed_while_away = True
                self.unreachable_since = self.unreachable_since or dt_util.utcnow()
            raise
        finally:
            self.uploads_running -= 1
            if not self.uploads_running:
                self.no_uploads.set()
        if self.record is None:
            with contextlib.suppress(BackupDriveError):
                self.record = await self.client.read_health()
        if self.record is not None:
            self.record.last_upload = dt_util.utcnow()
            await self.async_save_record()
        await self.async_refresh()
