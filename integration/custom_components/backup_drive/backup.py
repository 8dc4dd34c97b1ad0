"""Backup platform: the Backup Drive as a backup location for Home Assistant."""

from __future__ import annotations

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
from .const import DATA_BACKUP_AGENT_LISTENERS, DOMAIN
from .errors import BackupDriveError
from .failures import async_clear_host_key_issue, async_handle_agent_failure
from .keep_awake import DriveKeeper


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
    """Start waking every drive in the background; return at once.

    A drive that is asleep or away must not hold up the backup, nor the other locations: its
    own upload reports the problem.
    """
    entry: BackupDriveConfigEntry
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        data = entry.runtime_data
        if data.keep_awake is None:
            data.keep_awake = DriveKeeper(hass, entry)
        data.keep_awake.start()


async def async_post_backup(hass: HomeAssistant) -> None:
    """Leave the drives awake: each upload, or the ceiling, lets its drive rest.

    Under Supervisor this runs when Home Assistant's part of the archive is written, before the
    add-ons and folders and long before the upload.
    """


def handle_backup_errors[F: Callable[..., Coroutine[Any, Any, Any]]](func: F) -> F:
    """Turn client errors into the backup integration's errors."""

    @wraps(func)
    async def wrapper(self: BackupDriveAgent, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await func(self, *args, **kwargs)
        except BackupDriveError as err:
            raise async_handle_agent_failure(self._hass, self._entry, err) from err
        # The drive answered with its trusted key: a host key refusal, if any, has ended.
        async_clear_host_key_issue(self._hass, self._entry)
        return result

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
        self.unique_id = entry.entry_id

    # BackupAgent declares name as a plain attribute; read from the entry, it follows a rename.
    @property
    def name(self) -> str:  # type: ignore[override]
        """Return the entry's title, so that renaming the entry renames the location."""
        return self._entry.title

    @handle_backup_errors
    async def async_upload_backup(
        self,
        *,
        open_stream: Callable[[], Coroutine[Any, Any, AsyncIterator[bytes]]],
        backup: AgentBackup,
        **kwargs: Any,
    ) -> None:
        """Stream a backup to the drive."""
        # The upload keeps the drive busy from here on.
        if (keeper := self._entry.runtime_data.keep_awake) is not None:
            await keeper.async_stop()
        # Home Assistant 2026.4 and newer pass on_progress; older releases do not.
        on_progress: Callable[..., None] | None = kwargs.get("on_progress")

        def report(uploaded: int) -> None:
            if on_progress is not None:
                on_progress(bytes_uploaded=uploaded)

        health = self._entry.runtime_data.coordinator
        async with health.track_upload():
            # Before the stream is opened: a backup that cannot fit writes nothing at all.
            await health.async_check_space(backup)
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
