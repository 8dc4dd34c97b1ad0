"""Repairs about a drive's health: not enough space, stale backups, unreachable, corrupted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from homeassistant.components.backup.config import ScheduleRecurrence
from homeassistant.components.backup.const import DATA_MANAGER
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .const import CONF_STALE_DAYS, DOMAIN
from .health_record import RESULT_MISMATCH, RESULT_OK, RESULT_UNREADABLE, VerificationResult
from .sidecar import StoredBackup

if TYPE_CHECKING:
    from . import BackupDriveConfigEntry

ISSUE_NOT_ENOUGH_SPACE: Final = "not_enough_space"
ISSUE_STALE_BACKUPS: Final = "stale_backups"
ISSUE_DRIVE_UNREACHABLE: Final = "drive_unreachable"
ISSUE_BACKUP_CORRUPTED: Final = "backup_corrupted"

# Room beyond the archive itself: its metadata file, the health file and filesystem overhead.
SPACE_MARGIN_BYTES: Final = 4 * 1000 * 1000
SPACE_MARGIN_RATIO: Final = 0.02
# A short blip (a restart of the add-on, a replug) is no problem worth a repair.
UNREACHABLE_GRACE: Final = timedelta(minutes=5)
STALE_DAYS_DAILY: Final = 3
STALE_DAYS_DEFAULT: Final = 7
# How long past the longest gap between scheduled days a backup may be missing.
STALE_DAYS_SLACK: Final = 3
RESULT_WORDS: Final = {
    RESULT_MISMATCH: "not what was written at upload (its checksum differs)",
    RESULT_UNREADABLE: "incomplete or unreadable",
}
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def required_space(size: int) -> int:
    """Return the free bytes a backup of `size` bytes needs."""
    return size + SPACE_MARGIN_BYTES + int(size * SPACE_MARGIN_RATIO)


def format_size(size: int) -> str:
    """Return bytes in GB (as the entities show them), or MB when small."""
    if size >= 1000**3:
        return f"{size / 1000**3:.1f} GB"
    return f"{size / 1000**2:.1f} MB"


def default_stale_days(hass: HomeAssistant) -> int:
    """Return the days without a backup that count as stale, following Home Assistant's schedule."""
    manager = hass.data.get(DATA_MANAGER)
    if manager is None:
        return STALE_DAYS_DEFAULT
    schedule = manager.config.data.schedule
    if schedule.recurrence is ScheduleRecurrence.DAILY:
        return STALE_DAYS_DAILY
    days = sorted(WEEKDAYS.index(str(day)) for day in schedule.days if str(day) in WEEKDAYS)
    if schedule.recurrence is ScheduleRecurrence.CUSTOM_DAYS and days:
        gaps = [
            (later - earlier) % 7 or 7
            for earlier, later in zip(days, days[1:] + days[:1], strict=True)
        ]
        return max(gaps) + STALE_DAYS_SLACK
    return STALE_DAYS_DEFAULT


def stale_days(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> int:
    """Return the stale threshold in days: the option, else the schedule's default."""
    chosen = entry.options.get(CONF_STALE_DAYS)
    return int(chosen) if chosen else default_stale_days(hass)


def automatic_backup_attempted_since(hass: HomeAssistant, since: datetime) -> bool:
    """Return whether Home Assistant tried a scheduled backup after `since`."""
    manager = hass.data.get(DATA_MANAGER)
    attempted = manager.config.data.last_attempted_automatic_backup if manager else None
    return attempted is not None and attempted >= since


@dataclass(frozen=True, kw_only=True)
class ProblemInputs:
    """What one poll knows that decides which repairs are open."""

    connected: bool
    free_bytes: int | None
    next_backup_size: int | None
    last_upload: datetime
    unreachable_since: datetime | None
    backup_failed_while_away: bool
    backups: Mapping[str, StoredBackup]
    results: Mapping[str, VerificationResult]


def issue_id(problem: str, entry: BackupDriveConfigEntry, backup_id: str = "") -> str:
    """Return the id of an entry's issue (and backup's, for a corrupted one)."""
    return f"{problem}_{entry.entry_id}" + (f"_{backup_id}" if backup_id else "")


@callback
def async_update_issues(
    hass: HomeAssistant, entry: BackupDriveConfigEntry, inputs: ProblemInputs
) -> set[str]:
    """Raise the repairs whose condition holds, delete the others; return the open problems."""
    now = dt_util.utcnow()
    open_problems: set[str] = set()

    def show(problem: str, condition: bool, placeholders: dict[str, str]) -> None:
        if condition:
            open_problems.add(problem)
            _create(hass, entry, problem, issue_id(problem, entry), placeholders)
        else:
            ir.async_delete_issue(hass, DOMAIN, issue_id(problem, entry))

    title = entry.title
    if inputs.connected:
        needed = required_space(inputs.next_backup_size or 0)
        free = inputs.free_bytes
        show(
            ISSUE_NOT_ENOUGH_SPACE,
            free is not None and inputs.next_backup_size is not None and free < needed,
            {"title": title, "free": format_size(free or 0), "needed": format_size(needed)},
        )
    days = stale_days(hass, entry)
    show(
        ISSUE_STALE_BACKUPS,
        now - inputs.last_upload > timedelta(days=days),
        {"title": title, "days": str(days), "last_upload": _local(inputs.last_upload)},
    )
    away = inputs.unreachable_since
    show(
        ISSUE_DRIVE_UNREACHABLE,
        away is not None
        and now - away >= UNREACHABLE_GRACE
        and (inputs.backup_failed_while_away or automatic_backup_attempted_since(hass, away)),
        {"title": title, "since": _local(away or now)},
    )
    if inputs.connected:
        _update_corrupted_issues(hass, entry, inputs, open_problems)
    elif any(issue.startswith(issue_id(ISSUE_BACKUP_CORRUPTED, entry)) for issue in _ids(hass)):
        open_problems.add(ISSUE_BACKUP_CORRUPTED)
    return open_problems


def _update_corrupted_issues(
    hass: HomeAssistant, entry: BackupDriveConfigEntry, inputs: ProblemInputs, found: set[str]
) -> None:
    """Keep one repair per damaged backup that the user has not chosen to keep."""
    prefix = issue_id(ISSUE_BACKUP_CORRUPTED, entry, "")
    wanted: set[str] = set()
    for backup_id, result in inputs.results.items():
        stored = inputs.backups.get(backup_id)
        if stored is None or result.result == RESULT_OK or result.kept:
            continue
        wanted.add(this_issue := issue_id(ISSUE_BACKUP_CORRUPTED, entry, backup_id))
        _create(
            hass,
            entry,
            ISSUE_BACKUP_CORRUPTED,
            this_issue,
            {
                "title": entry.title,
                "name": stored.backup.name,
                "date": _local(dt_util.parse_datetime(stored.backup.date)),
                "file": stored.file_name,
                "result": RESULT_WORDS.get(result.result, result.result),
            },
            fixable=True,
            data={"entry_id": entry.entry_id, "backup_id": backup_id},
        )
    for stale_issue in _ids(hass):
        if stale_issue.startswith(f"{prefix}_") and stale_issue not in wanted:
            ir.async_delete_issue(hass, DOMAIN, stale_issue)
    if wanted:
        found.add(ISSUE_BACKUP_CORRUPTED)


def _ids(hass: HomeAssistant) -> list[str]:
    """Return the ids of this integration's open issues."""
    return [key for domain, key in ir.async_get(hass).issues if domain == DOMAIN]


def _create(
    hass: HomeAssistant,
    entry: BackupDriveConfigEntry,
    problem: str,
    this_issue: str,
    placeholders: dict[str, str],
    *,
    fixable: bool = False,
    data: dict[str, str | int | float | None] | None = None,
) -> None:
    """Create or update one issue carrying the entry id."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        this_issue,
        is_fixable=fixable,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR if fixable else ir.IssueSeverity.WARNING,
        translation_key=problem,
        translation_placeholders=placeholders,
        data=data or {"entry_id": entry.entry_id},
    )


def _local(moment: datetime | None) -> str:
    """Return a timestamp as the user reads it: local time, to the minute."""
    if moment is None:
        return "?"
    return dt_util.as_local(moment).strftime("%Y-%m-%d %H:%M")


@callback
def async_clear_health_issues(hass: HomeAssistant, entry: BackupDriveConfigEntry) -> None:
    """Remove every health repair of an entry."""
    prefixes = tuple(
        issue_id(problem, entry)
        for problem in (
            ISSUE_NOT_ENOUGH_SPACE,
            ISSUE_STALE_BACKUPS,
            ISSUE_DRIVE_UNREACHABLE,
            ISSUE_BACKUP_CORRUPTED,
        )
    )
    for this_issue in _ids(hass):
        if this_issue.startswith(prefixes):
            ir.async_delete_issue(hass, DOMAIN, this_issue)
