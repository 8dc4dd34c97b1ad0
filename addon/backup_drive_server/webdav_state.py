"""WebDAV locks and dead properties kept on disk, usable from any cheroot worker thread."""

from __future__ import annotations

import dbm.dumb
import shelve
from collections.abc import MutableMapping
from typing import cast

from wsgidav.lock_man.lock_storage import LockStorageShelve
from wsgidav.prop_man.property_manager import ShelvePropertyManager

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
        """Open the lock database."""
        # A public hook, but the shelf it opens is the base class's private `_dict`.
        self._dict = _open_shelf(self._storage_path)
