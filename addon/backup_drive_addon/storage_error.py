"""Say why the storage cannot be used, and what the user can do about it."""

from __future__ import annotations


class StorageError(Exception):
    """The storage cannot be used; `hint` tells the user what to do about it."""

    def __init__(self, message: str, hint: str) -> None:
        """Keep what went wrong and what to do apart, so the log can show both."""
        super().__init__(message)
        self.message = message
        self.hint = hint
