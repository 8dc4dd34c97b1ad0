"""WebDAV locks and dead properties kept on disk, usable from any cheroot worker thread."""

from __future__ import annotations

import dbm.dumb
import shelve
import time
from collections.abc import MutableMapping
from typing import Any, cast

from wsgidav.lock_man.lock_storage import LockStorageShelve
from wsgidav.prop_man.property_manager import ShelvePropertyManager

# Longest a WebDAV lock lasts without a refresh. Explorer and Finder refresh theirs every few
# minutes; a lock that nobody refreshes (a client gone, or a LOCK on `/` asking for Infinite)
# then stops blocking Home Assistant's uploads within this time, not after wsgidav's 28 days.
MAX_LOCK_SECONDS = 600.0

# Python 3.13's default dbm is SQLite, whose handles refuse to be used from a thread other than
# the one that opened them; wsgidav serializes access itself, so the pure-Python dbm is enough.


def _open_shelf(path: str) -> shelve.Shelf[object]:
    database = cast(MutableMapping[bytes, bytes], dbm.dumb.open(path, "c"))  # noqa: SIM115 - the shelf owns it
    return shelve.Shelf(database, writeback=False)


class PropertyStore(ShelvePropertyManager):  # type: ignore[misc]
    """Dead properties (PROPPATCH), persisted across restarts."""

    # wsgidav opens its shelf in this private method with shelve.open() and offers no way to
    # choose the database, so it is replaced whole (with the base class's lock and attributes).
    def _lazy_open(self) -> None:
        self._lock.acquire_write()
        try:
            if not getattr(self, "_loaded", False):
                self._dict = _open_shelf(self._storage_path)
                self._loaded = True
        finally:
            self._lock.release()


class LockStore(LockStorageShelve):  # type: ignore[misc]
    """WebDAV locks (class 2), persisted across restarts."""

    def open(self) -> None:
        """Open the lock database, shortening locks granted for longer before an upgrade."""
        # A public hook, but the shelf it opens is the base class's private `_dict`.
        self._dict = _open_shelf(self._storage_path)
        latest = time.time() + MAX_LOCK_SECONDS
        for key in list(self._dict.keys()):
            lock = self._dict[key]
            if isinstance(lock, dict) and lock.get("expire", 0) > latest:
                self._dict[key] = {**lock, "timeout": MAX_LOCK_SECONDS, "expire": latest}

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        """Store a new lock, granted for at most MAX_LOCK_SECONDS."""
        lock["timeout"] = _capped(float(lock.get("timeout") or MAX_LOCK_SECONDS))
        return cast(dict[str, Any], super().create(path, lock))

    def refresh(self, token: str, *, timeout: float) -> dict[str, Any]:
        """Extend a lock by at most MAX_LOCK_SECONDS."""
        return cast(dict[str, Any], super().refresh(token, timeout=_capped(timeout)))


def _capped(timeout: float) -> float:
    """Return a lock lifetime within MAX_LOCK_SECONDS (-1, "Infinite", counts as longest)."""
    return MAX_LOCK_SECONDS if timeout < 0 else min(timeout, MAX_LOCK_SECONDS)
