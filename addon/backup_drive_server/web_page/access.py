"""Who may open the page: Supervisor's ingress proxy only, or anyone with an account."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from backup_drive_server.accounts import AccountBook, canonical_username
from backup_drive_server.login_guard import LoginGuard
from backup_drive_server.web_page.render import text_answer

_LOGGER = logging.getLogger(__name__)

REALM = "Backup Drive"

type Environ = dict[str, Any]
type StartResponse = Callable[..., Any]
type WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _client_address(environ: Environ) -> str:
    return str(environ.get("REMOTE_ADDR") or "unknown")


def _same_address(address: str, allowed: str) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    return client == ipaddress.ip_address(allowed)


def only_from(app: WSGIApp, allowed: str) -> WSGIApp:
    """Answer 403 to every address but `allowed` (Supervisor's ingress proxy has logged in)."""

    def ingress_only(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        address = _client_address(environ)
        if not _same_address(address, allowed):
            _LOGGER.warning("Refused the add-on's page to %s: it opens only through Home "
                            "Assistant (ingress)", address)  # fmt: skip
            return text_answer(start_response, "403 Forbidden",
                               "Open this page from Home Assistant: Settings > Add-ons > "
                               "Backup Drive > Open web UI.")  # fmt: skip
        return app(environ, start_response)

    return ingress_only


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else None


def basic_login(app: WSGIApp, accounts: AccountBook, guard: LoginGuard) -> WSGIApp:
    """Ask for an account (Basic), counting failures with the servers' shared login guard."""

    def login_required(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        address = _client_address(environ)
        if guard.is_banned(address):
            return text_answer(start_response, "403 Forbidden",
                               "Too many failed logins from your address: try again in a few "
                               "minutes.")  # fmt: skip
        header = str(environ.get("HTTP_AUTHORIZATION") or "")
        credentials = _basic_credentials(header) if header else None
        if credentials is not None:
            user, password = credentials
            account = accounts.get(user)
            if account is not None and account.password_matches(password):
                guard.record_success(address, user)
                environ["backup_drive.user"] = canonical_username(user)
                return app(environ, start_response)
        if header:
            delay = guard.record_failure(
                address, "the page", credentials[0] if credentials else "?"
            )
            if delay:
                time.sleep(delay)  # a worker thread: only this client waits
        challenge = ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
        return text_answer(
            start_response, "401 Unauthorized", "Log in with a Backup Drive account.", challenge
        )

    return login_required
