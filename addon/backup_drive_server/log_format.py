"""Write log lines the way bashio does, at the add-on's log levels."""

from __future__ import annotations

import logging
import sys

# The add-on's log_level option (config.yaml's list) as Python logging levels.
LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}

# bashio's names where they differ from Python's.
_BASHIO_LEVEL_NAMES = {"CRITICAL": "FATAL"}


# The add-on's log interleaves the s6 scripts' bashio lines with the Python programs' lines.
# bashio's format is fixed (and every add-on's log reads that way), so Python follows it.
class BashioFormatter(logging.Formatter):
    """Format lines as bashio does: `[HH:MM:SS] LEVEL: message`."""

    def __init__(self) -> None:
        """Stamp lines with the time of day only, as bashio does."""
        super().__init__(datefmt="%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        """Format the line; a traceback, if any, follows it as logging.Formatter adds it."""
        level = _BASHIO_LEVEL_NAMES.get(record.levelname, record.levelname)
        return f"[{self.formatTime(record, self.datefmt)}] {level}: {record.message}"


def configure_logging(level: str) -> None:
    """Send every log line to stderr in bashio's format, at the add-on's `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(BashioFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LOG_LEVELS.get(level, logging.INFO))
