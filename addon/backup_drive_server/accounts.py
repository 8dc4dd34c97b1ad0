"""The accounts that may log in, shared by the SFTP and WebDAV servers."""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from backup_drive_server.secret_files import write_secret_file
from backup_drive_server.settings import HOMEASSISTANT_USER, ExtraUser, SettingsError

_LOGGER = logging.getLogger(__name__)

PASSWORD_FILE = "homeassistant.password"  # noqa: S105 - a file name, not a password


@dataclass(frozen=True, kw_only=True)
class Account:
    """One login: a password and/or public keys, and whether it may write."""

    username: str
    password: str = field(repr=False)
    read_only: bool = False
    authorized_keys: tuple[asyncssh.SSHKey, ...] = field(default=(), repr=False)

    def password_matches(self, password: str) -> bool:
        """Compare in constant time; an account without a password never matches."""
        return bool(self.password) and hmac.compare_digest(
            self.password.encode(), password.encode()
        )

    def accepts_key(self, key: asyncssh.SSHKey) -> bool:
        """Return whether `key` is one of this account's authorized keys."""
        wanted = key.public_data
        return any(known.public_data == wanted for known in self.authorized_keys)


def load_homeassistant_password(data_dir: Path) -> str:
    """Return the built-in account's password, generating and storing it on the first start."""
    path = data_dir / PASSWORD_FILE
    if path.exists():
        password = path.read_text(encoding="utf-8").strip()
        if password:
            path.chmod(0o600)
            return password
    password = secrets.token_urlsafe(24)
    write_secret_file(path, password.encode() + b"\n")
    _LOGGER.info("Generated the password of the %s account", HOMEASSISTANT_USER)
    return password


def canonical_username(name: str) -> str:
    r"""Drop a Windows domain prefix: Explorer may send `WORKGROUP\alice` for `alice`."""
    return name.rpartition("\\")[2]


class AccountBook:
    """Look accounts up by name."""

    def __init__(self, accounts: list[Account]) -> None:
        """Index `accounts` by user name."""
        self._accounts = {account.username: account for account in accounts}

    @classmethod
    def build(cls, homeassistant_password: str, extra_users: tuple[ExtraUser, ...]) -> AccountBook:
        """Combine the built-in account with the ones from the options."""
        accounts = [Account(username=HOMEASSISTANT_USER, password=homeassistant_password)]
        for user in extra_users:
            try:
                keys = tuple(asyncssh.import_public_key(line) for line in user.authorized_keys)
            except (asyncssh.KeyImportError, ValueError) as err:
                raise SettingsError(
                    f"an authorized key of user {user.username!r} is not a valid OpenSSH "
                    f"public key: {err}"
                ) from err
            accounts.append(
                Account(
                    username=user.username,
                    password=user.password,
                    read_only=user.read_only,
                    authorized_keys=keys,
                )
            )
        return cls(accounts)

    def get(self, username: str) -> Account | None:
        """Return the account called `username` (Windows domain prefix ignored)."""
        return self._accounts.get(canonical_username(username))

    def __iter__(self):  # type: ignore[no-untyped-def]
        """Iterate over the accounts."""
        return iter(self._accounts.values())


def log_read_only_refusal(
    username: str, address: str, protocol: str, operation: str, path: str
) -> None:
    """Log a write refused to a read-only account, the same way for SFTP and WebDAV."""
    _LOGGER.warning(
        "Refused %s of %r for read-only account %s from %s (%s)",
        operation, path, canonical_username(username), address, protocol,
    )  # fmt: skip
