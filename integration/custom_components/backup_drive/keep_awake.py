"""Keep a drive spinning from the start of a backup until its upload starts, with a ceiling."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from .const import DOMAIN, LOGGER
from .errors import BackupDriveError

if TYPE_CHECKING:
    from datetime import datetime

    from . import BackupDriveConfigEntry

# While the archive is written, touch the drive often enough that a USB disk with a typical
# spin-down timer (a few minutes) is still spinning when the upload starts.
KEEP_AWAKE_INTERVAL: Final = 60.0
# A spun-down disk answers within seconds; one that does not is logged, and tried again later.
WAKE_TIMEOUT: Final = 10.0
# Pre/post hooks run for every backup, also those that do not go to this drive (whose upload
# then never starts), and under Supervisor the add-ons and folders are archived after the post
# hook: an hour covers a large Supervisor backup without keeping an unused drive awake forever.
KEEP_AWAKE_CEILING: Final = 3600.0


class DriveKeeper:
    """Wake one entry's drive now and every minute, in the background, until told to stop."""

    def __init__(self, hass: HomeAssistant, entry: BackupDriveConfigEntry) -> None:
        """Bind to the entry; nothing runs until start()."""
        self._hass = hass
        self._entry = entry
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Task[None] | None = None
        self._cancel_ceiling: CALLBACK_TYPE | None = None
        self._failing = False

    @property
    def active(self) -> bool:
        """Whether the drive is being kept awake."""
        return self._task is not None and not self._task.done()

    @callback
    def start(self) -> None:
        """Start (or restart) keeping the drive awake; return at once."""
        self.stop()
        self._task = self._entry.async_create_background_task(
            self._hass, self._keep_awake(), f"{DOMAIN} keep {self._entry.title} awake"
        )
        self._cancel_ceiling = async_call_later(self._hass, KEEP_AWAKE_CEILING, self._at_ceiling)

    @callback
    def stop(self) -> None:
        """Stop keeping the drive awake."""
        if self._cancel_ceiling is not None:
            self._cancel_ceiling()
            self._cancel_ceiling = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def async_stop(self) -> None:
        """Stop keeping the drive awake, and wait until a wake in progress has finished."""
        running = [task for task in (self._task, self._wake) if task is not None]
        self.stop()
        if running:
            await asyncio.wait(running)

    @callback
    def _at_ceiling(self, _now: datetime) -> None:
        """Give up: this backup's upload to the drive never started."""
        self._cancel_ceiling = None
        self.stop()

    async def _keep_awake(self) -> None:
        """Wake the drive until cancelled, logging once when it stops answering and once after."""
        client = self._entry.runtime_data.client
        while True:
            # Stopping never cuts a wake short: its probe file would stay in the folder.
            self._wake = self._entry.async_create_background_task(
                self._hass, client.wake(), f"{DOMAIN} wake {self._entry.title}"
            )
            try:
                async with asyncio.timeout(WAKE_TIMEOUT):
                    await asyncio.shield(self._wake)
            except (BackupDriveError, TimeoutError) as err:
                if not self._failing:
                    self._failing = True
                    LOGGER.warning(
                        "%s did not wake up for the backup: %s", self._entry.title, err or "timeout"
                    )
            else:
                if self._failing:
                    self._failing = False
                    LOGGER.info("%s is awake again", self._entry.title)
            await asyncio.sleep(KEEP_AWAKE_INTERVAL)
