"""WebDAV locks and dead properties kept on disk, usable from any cheroot worker thread."""

from __future__ import annotations

import contextlib
import dbm.dumb
import os
import pickle
import shelve
import time
from collections.abc import MutableMapping
from typing import Any, cast

from wsgidav.dav_error import HTTP_INSUFFICIENT_STORAGE, DAVError
from wsgidav.lock_man.lock_storage import LockStorageShelve
from wsgidav.prop_man.property_manager import ShelvePropertyManager

# Longest a WebDAV lock lasts without a refresh. Explorer and Finder refresh theirs every few
# minutes; a lock that nobody refreshes (a client gone, or a LOCK on `/` asking for Infinite)
# then stops blocking Home Assistant's uploads within this time, not after wsgidav's 28 days.
MAX_LOCK_SECONDS = 600.0

# Dead properties live on Home Assistant's data disk, not the backup drive: they are kept small.
# Explorer's Win32 times and litmus's tests use a few dozen bytes each.
MAX_PROPERTY_BYTES = 64 * 1024
MAX_PROPERTIES_PER_RESOURCE = 100
MAX_PROPERTY_STORE_BYTES = 16 * 1024 * 1024
# The database only ever appends: it is rewritten once deleted values take this much room.
COMPACT_ABOVE_BYTES = 1024 * 1024
PROPERTIES_FULL_MESSAGE = "No room for more WebDAV properties (they are kept small on purpose)"

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
                self._compact_if_wasteful()
        finally:
            self._lock.release()

    def write_property(
        self,
        norm_url: str,
        name: str,
        property_value: object,
        dry_run: bool = False,
        environ: dict[str, Any] | None = None,
    ) -> None:
        """Store a property, refusing (507) one too large or beyond the count and store limits."""
        # Checked on the dry run too: PROPPATCH then reports the refusal per property.
        if len(pickle.dumps(property_value)) > MAX_PROPERTY_BYTES:
            raise DAVError(
                HTTP_INSUFFICIENT_STORAGE, f"A property may hold {MAX_PROPERTY_BYTES} bytes"
            )
        existing = self.get_properties(norm_url, environ) or []
        if name not in existing and len(existing) >= MAX_PROPERTIES_PER_RESOURCE:
            raise DAVError(HTTP_INSUFFICIENT_STORAGE, PROPERTIES_FULL_MESSAGE)
        if self._store_bytes() > MAX_PROPERTY_STORE_BYTES:
            self._lock.acquire_write()
            try:
                self._compact_if_wasteful()
            finally:
                self._lock.release()
            if self._store_bytes() > MAX_PROPERTY_STORE_BYTES:
                raise DAVError(HTTP_INSUFFICIENT_STORAGE, PROPERTIES_FULL_MESSAGE)
        super().write_property(norm_url, name, property_value, dry_run, environ)

    def remove_properties(self, norm_url: str, environ: dict[str, Any] | None = None) -> None:
        """Forget a deleted resource's properties and give their room back."""
        super().remove_properties(norm_url, environ)
        self._lock.acquire_write()
        try:
            self._compact_if_wasteful()
        finally:
            self._lock.release()

    def _store_bytes(self) -> int:
        try:
            return os.path.getsize(f"{self._storage_path}.dat")
        except OSError:
            return 0

    def _compact_if_wasteful(self) -> None:
        """Rewrite the database when deleted values take most of it (under the write lock)."""
        stored = self._store_bytes()
        if not self._loaded or stored < COMPACT_ABOVE_BYTES:
            return
        live = {key: self._dict[key] for key in self._dict}
        if len(pickle.dumps(live)) * 2 > stored:
            return
        self._dict.close()
        fresh = f"{self._storage_path}.compact"
        with _open_shelf(fresh) as shelf:
            shelf.update(live)
        for suffix in (".dat", ".dir"):
            os.replace(fresh + suffix, self._storage_path + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{fresh}.bak")
        self._dict = _open_shelf(self._storage_path)


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
