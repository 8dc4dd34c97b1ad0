"""Authenticate WebDAV requests: logins, the login guard and read-only accounts."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from wsgidav.dc.base_dc import BaseDomainController
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.wsgidav_app import WsgiDAVApp

from backup_drive_server.accounts import AccountBook, canonical_username, log_read_only_refusal
from backup_drive_server.login_guard import LoginGuard

_LOGGER = logging.getLogger(__name__)

REALM = "Backup Drive"
WRITE_METHODS = frozenset(
    {"PUT", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK", "POST"}
)

type Environ = dict[str, Any]
type StartResponse = Callable[..., Any]

# Set by the authenticator when a 401 only asks the client to retry with a new nonce.
STALE_NONCE_KEY = "backup_drive.stale_nonce"


def client_address(environ: Environ) -> str:
    """Return the address a request came from."""
    return str(environ.get("REMOTE_ADDR") or "unknown")


def describe_client(environ: Environ) -> str:
    """Name who sent a request, for the log."""
    user = environ.get("wsgidav.auth.user_name") or "anonymous"
    return f"{user} from {client_address(environ)} (WebDAV)"


class BackupDriveDomainController(BaseDomainController):  # type: ignore[misc]
    """Check WebDAV logins against the shared account book, Basic and Digest alike."""

    def __init__(self, wsgidav_app: WsgiDAVApp, config: dict[str, Any]) -> None:
        """Read the account book from the wsgidav configuration."""
        super().__init__(wsgidav_app, config)
        self._accounts: AccountBook = config["backup_drive"]["accounts"]

    def __str__(self) -> str:
        """Name the controller in wsgidav's start-up log."""
        return f"{self.__class__.__name__}()"

    def get_domain_realm(self, path_info: str, environ: Environ) -> str:
        """Use one realm for the whole drive."""
        return REALM

    def require_authentication(self, realm: str, environ: Environ) -> bool:
        """Require a login for everything."""
        return True

    def basic_auth_user(self, realm: str, user_name: str, password: str, environ: Environ) -> bool:
        r"""Check a Basic login (`DOMAIN\user` accepted as `user`)."""
        account = self._accounts.get(user_name)
        return account is not None and account.password_matches(password)

    def supports_http_digest_auth(self) -> bool:
        """Offer Digest: Windows Explorer uses it over plain HTTP, where it refuses Basic."""
        return True

    def digest_auth_user(self, realm: str, user_name: str, environ: Environ) -> str | bool:
        """Return HA1 for Digest; the client hashed the name exactly as it sent it."""
        account = self._accounts.get(user_name)
        if account is None or not account.password:
            return False
        a1 = f"{user_name}:{realm}:{account.password}"
        return hashlib.md5(a1.encode(), usedforsecurity=False).hexdigest()


class LoginGuardMiddleware(BaseMiddleware):  # type: ignore[misc]
    """Refuse banned addresses and count failed logins (runs before authentication)."""

    def __init__(self, wsgidav_app: WsgiDAVApp, next_app: Any, config: dict[str, Any]) -> None:
        """Take the shared login guard from the configuration."""
        super().__init__(wsgidav_app, next_app, config)
        self._guard: LoginGuard = config["backup_drive"]["login_guard"]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer 403 to a banned address; slow down repeated failures."""
        address = client_address(environ)
        if self._guard.is_banned(address):
            body = b"Too many failed logins from your address: try again in a few minutes.\n"
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        credentials = environ.get("HTTP_AUTHORIZATION")
        user = _authorization_user(credentials) if credentials else ""
        refused: list[bool] = []

        def watching_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            # wsgidav starts most answers only while the body is iterated, after this
            # middleware has returned, so a good login is recorded here, when its status is set.
            if credentials and not refused and not status.startswith("401"):
                self._guard.record_success(address, user)
            refused.append(status.startswith("401"))
            return start_response(status, headers, exc_info)

        result = self.next_app(environ, watching_start_response)
        # A stale nonce is not a wrong password: the client simply logs in again.
        if credentials and refused and refused[0] and not environ.get(STALE_NONCE_KEY):
            delay = self._guard.record_failure(address, "WebDAV", user)
            if delay:
                time.sleep(delay)  # a cheroot worker thread: only this client waits
        return result  # type: ignore[no-any-return]


def _authorization_user(header: str) -> str:
    """Pull the user name out of an Authorization header, for the log."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value).decode(errors="replace").partition(":")[0]
        except (ValueError, binascii.Error):
            return "?"
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "username":
            return item.strip('"')
    return "?"


class ReadOnlyMiddleware(BaseMiddleware):  # type: ignore[misc]
    """Refuse every write of a read-only account (runs after authentication)."""

    def __init__(self, wsgidav_app: WsgiDAVApp, next_app: Any, config: dict[str, Any]) -> None:
        """Take the account book from the configuration."""
        super().__init__(wsgidav_app, next_app, config)
        self._accounts: AccountBook = config["backup_drive"]["accounts"]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer 403 to a write by a read-only account."""
        user_name = environ.get("wsgidav.auth.user_name") or ""
        if user_name:
            # Explorer's `WORKGROUP\alice` is `alice` for locks, listings and the log.
            environ["wsgidav.auth.user_name"] = canonical_username(user_name)
        account = self._accounts.get(user_name)
        if (
            account is not None
            and account.read_only
            and environ["REQUEST_METHOD"].upper() in WRITE_METHODS
        ):
            log_read_only_refusal(
                account.username,
                client_address(environ),
                "WebDAV",
                environ["REQUEST_METHOD"].upper(),
                str(environ.get("PATH_INFO") or "/"),
            )
            body = b"Permission denied: this account is read-only.\n"
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self.next_app(environ, start_response)  # type: ignore[no-any-return]
