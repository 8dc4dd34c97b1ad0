"""Keep the server's latest warnings in memory, so the page can show them."""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

# The page shows what happened lately, not the whole log (that is the Log tab's job).
KEPT_WARNINGS = 20
WATCHED_LOGGER = "backup_drive_server"
_STAGING_NAME = re.compile(r"\.([^/\s]+)\.partial-[0-9a-f]{8}")


@dataclass(frozen=True, kw_only=True)
class LoggedWarning:
    """One WARNING (or worse) line of the log."""

    at: datetime
    level: str
    message: str


class RecentWarnings(logging.Handler):
    """Remember the last warnings logged; thread-safe (WebDAV logs from worker threads)."""

    def __init__(self, capacity: int = KEPT_WARNINGS) -> None:
        """Keep at most `capacity` records."""
        super().__init__(level=logging.WARNING)
        self._records: deque[LoggedWarning] = deque(maxlen=capacity)
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Store the formatted message; never raise (logging must not break a request)."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        # The page never shows hidden names; an unfinished upload is named by its target.
        message = _STAGING_NAME.sub(r"\1 (unfinished upload)", message)
        entry = LoggedWarning(
            at=datetime.fromtimestamp(record.created, UTC),
            level=record.levelname.capitalize(),
            message=message,
        )
        with self._records_lock:
            self._records.append(entry)

    def latest(self) -> list[LoggedWarning]:
        """Return the kept warnings, newest first."""
        with self._records_lock:
            return list(reversed(self._records))


RECENT_WARNINGS = RecentWarnings()


def watch_recent_warnings() -> RecentWarnings:
    """Attach the shared handler to the server's logger (once) and return it."""
    logger = logging.getLogger(WATCHED_LOGGER)
    if RECENT_WARNINGS not in logger.handlers:
        logger.addHandler(RECENT_WARNINGS)
    return RECENT_WARNINGS
