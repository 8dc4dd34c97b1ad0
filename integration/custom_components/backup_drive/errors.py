"""Errors of the Backup Drive client, and how asyncssh's and the OS's map onto them."""

from __future__ import annotations

from typing import Final

import asyncssh


class BackupDriveError(Exception):
    """Something went wrong talking to the drive; the message is meant for the user."""


class CannotConnect(BackupDriveError):
    """The server cannot be reached, or the connection dropped."""


class InvalidAuth(BackupDriveError):
    """The server refused the user name, password or key."""


class InvalidPrivateKey(BackupDriveError):
    """The private key given cannot be read."""


class HostKeyMismatch(BackupDriveError):
    """The server presented a host key other than the one we trust."""

    def __init__(self, message: str, *, expected: str, offered: str | None) -> None:
        """Remember both fingerprints for the repair issue."""
        super().__init__(message)
        self.expected_fingerprint = expected
        self.offered_fingerprint = offered
        self.offered_key: str | None = None


class FolderMissing(BackupDriveError):
    """The backup folder does not exist or is not a folder."""


class AccessDenied(BackupDriveError):
    """The server refused access to a file or folder."""


class DriveFull(BackupDriveError):
    """The drive has no space left."""


class BackupFileMissing(BackupDriveError):
    """A backup archive or its metadata file does not exist."""


class TransferFailed(BackupDriveError):
    """Any other failure while reading or writing."""


def describe_error(err: BaseException) -> str:
    """Return a short human description of a library or OS error."""
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, asyncssh.SFTPError | asyncssh.DisconnectError):
        return err.reason or type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


CONNECTION_ERRORS: Final = (
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    asyncssh.ConnectionLost,
    asyncssh.ChannelOpenError,
    ConnectionError,
    TimeoutError,
)


def translate_error(err: Exception, what: str) -> BackupDriveError:
    """Turn an asyncssh or OS error into the matching BackupDriveError."""
    reason = describe_error(err)
    if isinstance(err, asyncssh.SFTPNoSuchFile | FileNotFoundError):
        return BackupFileMissing(f"{what}: no such file")
    if isinstance(err, asyncssh.SFTPPermissionDenied | PermissionError):
        return AccessDenied(f"{what}: permission denied")
    if isinstance(err, asyncssh.SFTPNoSpaceOnFilesystem | asyncssh.SFTPQuotaExceeded) or (
        "space" in reason.lower() or "quota" in reason.lower()
    ):
        return DriveFull(f"{what}: the drive is full ({reason})")
    if isinstance(err, (*CONNECTION_ERRORS, asyncssh.DisconnectError)):
        return CannotConnect(f"{what}: the connection to the drive was lost ({reason})")
    return TransferFailed(f"{what}: {reason}")
