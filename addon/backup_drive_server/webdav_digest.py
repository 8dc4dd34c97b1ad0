"""WebDAV logins that cannot be replayed: signed, time-limited Digest nonces counted once each."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any

from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.wsgidav_app import WsgiDAVApp

from backup_drive_server.webdav_auth import (
    STALE_NONCE_KEY,
    Environ,
    StartResponse,
    client_address,
)
from backup_drive_server.webdav_requests import plain_answer

_LOGGER = logging.getLogger(__name__)

# Windows and macOS reuse a nonce for many requests and quietly log in again on stale=true.
DEFAULT_NONCE_SECONDS = 300
# Nonces whose counts are remembered; beyond this the oldest are declared stale.
MAX_TRACKED_NONCES = 10_000
# Requests one nonce may sign; then the client is asked to take a new one.
MAX_USES_PER_NONCE = 10_000
_FIELD = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


class NonceBook:
    """Issue nonces signed with a per-process secret, and accept each (nonce, nc) once."""

    def __init__(self, lifetime: float) -> None:
        """Let nonces live `lifetime` seconds."""
        self._secret = secrets.token_bytes(32)
        self._lifetime = lifetime
        self._counts_seen: dict[str, set[int]] = {}
        self._stale_up_to = 0
        self._lock = threading.Lock()

    def issue(self) -> str:
        """Return a new nonce: issue time, salt and their signature."""
        stamp = f"{int(time.time())}.{secrets.token_hex(8)}"
        return f"{stamp}.{self._sign(stamp)}"

    def is_ours(self, nonce: str) -> bool:
        """Return whether this process issued the nonce."""
        stamp, _, signature = nonce.rpartition(".")
        # Bytes: compare_digest refuses text that is not ASCII, which a client may send.
        return bool(stamp) and hmac.compare_digest(signature.encode(), self._sign(stamp).encode())

    def use(self, nonce: str, count: str | None) -> str | None:
        """Record one use of a nonce we issued; return why it is refused, or None."""
        issued = int(nonce.split(".", 1)[0])
        if not 0 <= time.time() - issued <= self._lifetime or issued <= self._stale_up_to:
            return "expired"
        try:
            number = int(count or "0", 16)
        except ValueError:
            return "reused"
        with self._lock:
            seen = self._counts_seen.setdefault(nonce, set())
            if number in seen or len(seen) >= MAX_USES_PER_NONCE:
                return "reused"
            seen.add(number)
            while len(self._counts_seen) > MAX_TRACKED_NONCES:
                # A forgotten nonce could be replayed, so it and every older one become stale.
                oldest = next(iter(self._counts_seen))
                del self._counts_seen[oldest]
                self._stale_up_to = max(self._stale_up_to, int(oldest.split(".", 1)[0]))
        return None

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]


class BackupDriveAuthenticator(HTTPAuthenticator):  # type: ignore[misc]
    """wsgidav's Basic and Digest logins, with replay-proof nonces and clear 400s."""

    def __init__(self, wsgidav_app: WsgiDAVApp, next_app: Any, config: dict[str, Any]) -> None:
        """Start a nonce book with the configured lifetime."""
        super().__init__(wsgidav_app, next_app, config)
        self._nonces = NonceBook(config["backup_drive"]["nonce_seconds"])

    def send_digest_auth_response(
        self, environ: Environ, start_response: StartResponse, *, stale: bool = False
    ) -> Iterable[bytes]:
        """Answer 401 with a new signed nonce; `stale` tells the client its password was right."""
        realm = self.domain_controller.get_domain_realm(environ["PATH_INFO"], environ)
        challenge = (
            f'Digest realm="{realm}", nonce="{self._nonces.issue()}", algorithm=MD5, qop="auth"'
        )
        if stale:
            environ[STALE_NONCE_KEY] = True
            challenge += ", stale=true"
        return plain_answer(
            start_response,
            "401 Unauthorized",
            "Log in with your Backup Drive user name and password.",
            [("WWW-Authenticate", challenge)],
        )

    def handle_digest_auth_request(
        self, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Refuse nonces we did not issue, expired ones and reused counts, then check the login."""
        fields = {
            key: quoted or bare
            for key, quoted, bare in _FIELD.findall(environ["HTTP_AUTHORIZATION"])
        }
        nonce = fields.get("nonce", "")
        refusal = (
            self._nonces.use(nonce, fields.get("nc")) if self._nonces.is_ours(nonce) else "unknown"
        )
        if refusal is None:
            return super().handle_digest_auth_request(environ, start_response)  # type: ignore[no-any-return]
        if not self._response_matches(environ, fields):
            return self.send_digest_auth_response(environ, start_response)  # a failed login
        # The client knows the password but signed with a nonce from before a restart, an
        # expired one or a count already used (a replay): it may retry with a new nonce.
        # Expired and unknown nonces are routine (Windows keeps one for hours, or across a
        # restart); a reused count is a replay, or a client that lost count.
        _LOGGER.log(logging.WARNING if refusal == "reused" else logging.DEBUG,
                    "Asked %r from %s to log in again: Digest nonce %s", fields.get("username"),
                    client_address(environ), refusal)  # fmt: skip
        return self.send_digest_auth_response(environ, start_response, stale=True)

    def handle_basic_auth_request(
        self, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Answer 400 to a Basic header that is not base64 of `name:password`."""
        token = environ["HTTP_AUTHORIZATION"][len("Basic ") :].strip()
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            decoded = ""
        if ":" not in decoded:
            return plain_answer(
                start_response,
                "400 Bad Request",
                "The Authorization header is not valid Basic credentials: base64 of name:password.",
            )
        return super().handle_basic_auth_request(environ, start_response)  # type: ignore[no-any-return]

    def _response_matches(self, environ: Environ, fields: dict[str, str]) -> bool:
        """Return whether the Digest response was computed with the account's real password."""
        realm = self.domain_controller.get_domain_realm(environ["PATH_INFO"], environ)
        # wsgidav's own Digest computation; it has no public name.
        expected = self._compute_digest_response(
            realm, fields.get("username", ""), environ["REQUEST_METHOD"], fields.get("uri", ""),
            fields.get("nonce", ""), fields.get("cnonce"), fields.get("qop"), fields.get("nc"),
            environ,
        )  # fmt: skip
        response = fields.get("response", "").encode()
        return bool(expected) and hmac.compare_digest(str(expected).encode(), response)
