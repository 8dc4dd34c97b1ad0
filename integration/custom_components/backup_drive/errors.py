"""Errors of the Backup Drive client, and what each one means to setup, flows and the agent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import asyncssh
from homeassistant.components.backup import BackupAgentError, BackupNotFound
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady


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


class InvalidBackupId(BackupDriveError):
    """A backup's id cannot name a file in the folder (a separator, a control character)."""


class BackupDamaged(BackupDriveError):
    """A stored archive no longer matches the size or sha256 its metadata file records."""


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


@dataclass(frozen=True, kw_only=True)
class ErrorMeaning:
    """What one kind of client error means to setup, the config flow and the backup agent."""

    # The key of its text in strings.json "exceptions", for setup's error and the agent's alike;
    # placeholders: {title} (the entry), {host}, {error} (the client error), {offered} (a host
    # key's fingerprint).
    translation_key: str = "transfer_failed"
    # Setup: the exception that fails it. ConfigEntryNotReady retries; ConfigEntryAuthFailed
    # starts reauth.
    setup_error: type[ConfigEntryNotReady | ConfigEntryAuthFailed] = ConfigEntryNotReady
    # Config flow: the form's error key; None for what checking a folder should never meet
    # (shown as "unknown" and logged).
    flow_error: str | None = None
    # Backup agent: the error it raises.
    agent_error: type[BackupAgentError] = BackupAgentError
    # translate_error: the library errors that become this one, words of a server's reason
    # that do too, and the message from {what} (the operation) and {reason}.
    library_errors: tuple[type[BaseException], ...] = ()
    reason_words: tuple[str, ...] = ()
    message: str = "{what}: {reason}"


# translate_error tries the rows in this order; TransferFailed catches what no row names.
ERROR_MEANINGS: Final[Mapping[type[BackupDriveError], ErrorMeaning]] = {
    BackupFileMissing: ErrorMeaning(
        translation_key="backup_not_found",
        agent_error=BackupNotFound,
        library_errors=(asyncssh.SFTPNoSuchFile, FileNotFoundError),
        message="{what}: no such file",
    ),
    AccessDenied: ErrorMeaning(
        # A drive that is not mounted yet looks the same: setup retries rather than give up.
        translation_key="folder_unusable",
        flow_error="permission_denied",
        library_errors=(asyncssh.SFTPPermissionDenied, PermissionError),
        message="{what}: permission denied",
    ),
    DriveFull: ErrorMeaning(
        translation_key="drive_full",
        library_errors=(asyncssh.SFTPNoSpaceOnFilesystem, asyncssh.SFTPQuotaExceeded),
        # Servers that answer a full disk with a generic failure still name it in the reason.
        reason_words=("space", "quota"),
        message="{what}: the drive is full ({reason})",
    ),
    CannotConnect: ErrorMeaning(
        translation_key="cannot_connect",
        flow_error="cannot_connect",
        library_errors=(*CONNECTION_ERRORS, asyncssh.DisconnectError),
        message="{what}: the connection to the drive was lost ({reason})",
    ),
    InvalidAuth: ErrorMeaning(
        translation_key="invalid_auth",
        setup_error=ConfigEntryAuthFailed,
        flow_error="invalid_auth",
    ),
    HostKeyMismatch: ErrorMeaning(
        # Not a permanent error: an add-on update or restored key brings the entry back.
        translation_key="host_key_changed",
        flow_error="host_key_changed",
    ),
    BackupDamaged: ErrorMeaning(translation_key="backup_damaged"),
    FolderMissing: ErrorMeaning(translation_key="folder_unusable", flow_error="folder_missing"),
    InvalidPrivateKey: ErrorMeaning(
        translation_key="invalid_private_key", flow_error="invalid_private_key"
    ),
    InvalidBackupId: ErrorMeaning(translation_key="invalid_backup_id"),
    TransferFailed: ErrorMeaning(),
}


def meaning_of(err: BackupDriveError) -> ErrorMeaning:
    """Return the table's row for an error."""
    for error_class in type(err).__mro__:
        if meaning := ERROR_MEANINGS.get(error_class):
            return meaning
    return ERROR_MEANINGS[TransferFailed]


def translate_error(err: Exception, what: str) -> BackupDriveError:
    """Turn an asyncssh or OS error into the matching BackupDriveError."""
    reason = describe_error(err)
    for error_class, meaning in ERROR_MEANINGS.items():
        if isinstance(err, meaning.library_errors) or any(
            word in reason.lower() for word in meaning.reason_words
        ):
            return error_class(meaning.message.format(what=what, reason=reason))
    return TransferFailed(ERROR_MEANINGS[TransferFailed].message.format(what=what, reason=reason))
