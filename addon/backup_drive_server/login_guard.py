"""Slow down and then ban addresses that keep failing to log in, over both protocols."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from backup_drive_server.accounts import canonical_username

_LOGGER = logging.getLogger(__name__)

# A person who mistypes gets two immediate retries; a password guesser gets slower answers and
# then a five-minute ban. Counting is per address, so other clients keep working.
FREE_FAILURES = 2
BAN_AFTER_FAILURES = 6
FAILURE_WINDOW_SECONDS = 600.0
BAN_SECONDS = 300.0
MAX_DELAY_SECONDS = 8.0


@dataclass
class _AddressRecord:
    # (when, account tried): a good login clears only its own account's entries, so a guesser
    # who also knows one password cannot reset the count by logging in with it now and then.
    failures: list[tuple[float, str]] = field(default_factory=list)
    banned_until: float = 0.0


class LoginGuard:
    """Count failed logins per address and account; thread-safe (WebDAV runs in worker threads)."""

    def __init__(self) -> None:
        """Start with no failures recorded."""
        self._lock = threading.Lock()
        self._records: dict[str, _AddressRecord] = {}

    def is_banned(self, address: str) -> bool:
        """Return whether `address` is banned right now."""
        with self._lock:
            record = self._records.get(address)
            return record is not None and record.banned_until > time.monotonic()

    def record_failure(self, address: str, protocol: str, username: str) -> float:
        """Count a failed login and return how many seconds to wait before answering."""
        now = time.monotonic()
        with self._lock:
            record = self._records.setdefault(address, _AddressRecord())
            record.failures = [f for f in record.failures if now - f[0] < FAILURE_WINDOW_SECONDS]
            record.failures.append((now, canonical_username(username)))
            count = len(record.failures)
            if count >= BAN_AFTER_FAILURES:
                record.banned_until = now + BAN_SECONDS
                record.failures.clear()
                _LOGGER.warning(
                    "%d failed logins from %s (last as %r over %s): address banned for %d minutes",
                    count, address, username, protocol, BAN_SECONDS // 60,
                )  # fmt: skip
                return MAX_DELAY_SECONDS
        _LOGGER.warning("Failed login as %r from %s over %s", username, address, protocol)
        if count <= FREE_FAILURES:
            return 0.0
        return float(min(2 ** (count - FREE_FAILURES - 1), MAX_DELAY_SECONDS))

    def record_success(self, address: str, username: str) -> None:
        """Forget the failures of `username` from `address` after its good login."""
        account = canonical_username(username)
        with self._lock:
            record = self._records.get(address)
            if record is None or record.banned_until > time.monotonic():
                return
            record.failures = [f for f in record.failures if f[1] != account]
            if not record.failures:
                del self._records[address]
