"""Backup platform: the Backup Drive as a backup location for Home Assistant."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from functools import wraps
from typing import Any, cast

from homeassistant.components.backup import (
    AgentBackup,
    BackupAgent,
    suggested_filename,
)
from homeassistant.core import HomeAssistant, callback

from . import BackupDriveConfigEntry
from .const import DATA_BACKUP_AGENT_LISTENERS, DOMAIN, LOGGER
from .errors import BackupDriveError
from .failures import async_handle_agent_failure

# While Home Assistant writes the archive locally, touch the drive often enough that a USB disk
# with a typical spin-down timer (a few minutes) is still spinning when the upload starts.
KEEP_AWAKE_INTERVAL = 60.0
# A spun-down USB disk takes seconds to answer; a dead one must not hold up the backup for long.
WAKE_TIMEOUT = 30.0


async def async_get_backup_agents(hass: HomeAssistant, **kwargs: Any) -> list[BackupAgent]:
    """Return one agent per loaded entry."""
    entries: list[BackupDriveConfigEntry] = hass.config_entries.async_loaded_entries(DOMAIN)
    return [BackupDriveAgent(hass, entry) for entry in entries]


@callback
def async_register_backup_agents_listener(
    hass: HomeAssistant,
    *,
    listener: Callable[[], None],
    **kwargs: Any,
) -> Callable[[], None]:
    """Register a listener called when agents are added or removed."""
    hass.data.setdefault(DATA_BACKUP_AGENT_LISTENERS, []).append(listener)

    @callback
    def remove_listener() -> None:
        """Remove the listener."""
        hass.data[DATA_BACKUP_AGENT_LISTENERS].remove(listener)
        if not hass.data[DATA_BACKUP_AGENT_LISTENERS]:
            del hass.data[DATA_BACKUP_AGENT_LISTENERS]

    return remove_listener


async def async_pre_backup(hass: HomeAssistant) -> None:
    """Wake every drive and keep it awake until the archive is written.

    Never raises: a drive that is asleep or away must not stop the backup to other locations;
    its own upload reports the problem.
    """
    entries: list[BackupDriveConfigEntry] = hass.config_entries.async_loaded_entries(DOMAIN)

    async def wake(entry: BackupDriveConfigEntry) -> None:
        data = entry.runtime_data
        try:
            async with asyncio.timeout(WAKE_TIMEOUT):
                await data.client.wake()
        except (BackupDriveError, TimeoutError) as err:
            LOGGER.warning(
                "%s did not wake up before the backup: %s", entry.title, err or "timeout"
            )
        if data.keep_awake is None or data.keep_awake.done():
            data.keep_awake = entry.async_create_background_task(
                hass,
                data.client.keep_awake(KEEP_AWAKE_INTERVAL),
                f"{DOMAIN} keep {entry.title} awake",
            )

    await asyncio.gather(*(wake(entry) for entry in entries))


async def async_post_backup(hass: HomeAssistant) -> None:
    """Stop keeping the drives awake."""
    entry: BackupDriveConfigEntry
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        data = entry.runtime_data
        if data.keep_awake is not None:
            data.keep_awake.cancel()
            data.keep_awake = None


def handle_backup_errors[F: Callable[..., Coroutine[Any, Any, Any]]](func: F) -> F:
    """Turn client errors into the backup integration's errors."""

    @wraps(func)
    async def wrapper(self: BackupDriveAgent, *args: Any, **kwargs: Any) -> Any:
        try:
            return await func(self, *args, **kwargs)
        except BackupDriveError as err:
            raise async_handle_agent_failure(self._hass, self._entry, err) from err

    return cast(F, wrapper)


class BackupDriveAgent(BackupAgent):
    """Store backups in a folder of a Backup Drive (or any SFTP server)."""

    domain = DOMAIN

    def __init__(self, hass: HomeAssistant, entry: BackupDriveConfigEntry) -> None:
        """Bind the agent to its entry and that entry's client."""
        super().__init__()
        self._hass = hass
        self._entry = entry
        self._client = entry.runtime_data.client
        self.name = entry.title
        self.unique_id = entry.entry_id

    @handle_backup_errors
    async def async_upload_backup(
        self,
        *,
        open_stream: Callable[[], Coroutine[Any, Any, AsyncIterator[bytes]]],
        backup: AgentBackup,
        **kwargs: Any,
    ) -> None:
        """Stream a backup to the drive."""
        # Home Assistant 2026.4 and newer pass on_progress; older releases do not.
        on_progress: Callable[..., None] | None = kwargs.get("on_progress")

        def report(uploaded: int) -> None:
            if on_progress is not None:
                on_progress(bytes_uploaded=uploaded)

        await self._client.upload(
            await open_stream(),
            backup=backup,
            file_name=suggested_filename(backup),
            on_progress=report,
        )

    @handle_backup_errors
    async def async_download_backup(self, backup_id: str, **kwargs: Any) -> AsyncIterator[bytes]:
        """Return the bytes of a backup."""
        stored = await self._client.find_backup(backup_id)
        return self._translated(await self._client.open_download(stored))

    async def _translated(self, stream: AsyncGenerator[bytes]) -> AsyncIterator[bytes]:
        """Pass a download through, turning client errors into backup errors."""
        # Closing this stream must close the reader at once (its remote handle and the reads
        # in flight), not whenever the garbage collector gets to it.
        try:
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    yield chunk
        except BackupDriveError as err:
            raise async_handle_agent_failure(self._hass, self._entry, err) from err

    @handle_backup_errors
    async def async_delete_backup(self, backup_id: str, **kwargs: Any) -> None:
        """Delete a backup and its metadata file."""
        await self._client.delete(await self._client.find_backup(backup_id))

    @handle_backup_errors
    async def async_list_backups(self, **kwargs: Any) -> list[AgentBackup]:
        """List the backups on the drive."""
        return [stored.backup for stored in (await self._client.list_backups()).values()]

    @handle_backup_errors
    async def async_get_backup(self, backup_id: str, **kwargs: Any) -> AgentBackup:
        """Return one backup's metadata."""
        return (await self._client.find_backup(backup_id)).backup
