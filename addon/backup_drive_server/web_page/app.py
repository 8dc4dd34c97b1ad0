"""The page on its own port: drive, backups, how to connect, accounts and the server's state."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from backup_drive_server.accounts import AccountBook
from backup_drive_server.health_file import read_health
from backup_drive_server.settings import BACKUPS_FOLDER, HOMEASSISTANT_USER
from backup_drive_server.storage_root import StorageRoot
from backup_drive_server.web_page.backup_catalog import FolderListing, list_folder
from backup_drive_server.web_page.connect_info import connect_sections, url_host
from backup_drive_server.web_page.drive_status import read_drive_status
from backup_drive_server.web_page.file_download import send_file
from backup_drive_server.web_page.options import WebPageSettings
from backup_drive_server.web_page.recent_warnings import RecentWarnings
from backup_drive_server.web_page.render import html_headers, render, text_answer

type Environ = dict[str, Any]
type StartResponse = Callable[..., Any]

# Supervisor's ingress path is `/api/hassio_ingress/<token>`; anything else is not trusted.
_INGRESS_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
_HOST_NAME = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")
PROBLEMS = {
    "not_enough_space": "Not enough free space for the next backup.",
    "stale_backups": "No recent backup: the newest one is older than expected.",
    "drive_unreachable": "Home Assistant could not reach the drive.",
    "backup_corrupted": "A backup failed its check: see the Check column.",
}


@dataclass(frozen=True, kw_only=True)
class ServerFacts:
    """What the page says about the servers; fixed while the process runs."""

    bind: str
    sftp_port: int
    webdav_port: int
    webdav_tls: bool
    host_key_fingerprint: str


@dataclass(frozen=True, kw_only=True)
class AccountRow:
    """An account as the page lists it: never its password."""

    username: str
    read_only: bool
    builtin: bool
    methods: str


@dataclass(frozen=True, kw_only=True)
class ListenerRow:
    """One port the process listens on."""

    name: str
    address: str


def request_path(environ: Environ) -> str:
    """Return PATH_INFO as the UTF-8 text the browser meant (WSGI hands it over as Latin-1)."""
    raw = str(environ.get("PATH_INFO") or "/")
    return raw.encode("latin-1", "replace").decode("utf-8", "replace")


def ingress_prefix(environ: Environ) -> str:
    """Return Supervisor's X-Ingress-Path without its trailing slash, or ''."""
    value = str(environ.get("HTTP_X_INGRESS_PATH") or "")
    return value.rstrip("/") if _INGRESS_PATH.fullmatch(value) else ""


def request_host(environ: Environ, *, behind_proxy: bool) -> str:
    """Return the host name the browser used (the proxy's X-Forwarded-Host under ingress)."""
    candidates = [environ.get("HTTP_HOST"), environ.get("SERVER_NAME")]
    if behind_proxy:
        candidates.insert(0, environ.get("HTTP_X_FORWARDED_HOST"))
    for candidate in candidates:
        value = str(candidate or "").split(",")[0].strip()
        host = value.rpartition("]")[0] + "]" if value.startswith("[") else value.split(":")[0]
        if host and _HOST_NAME.fullmatch(host):
            return host
    return "HOST"


def _published(public_port: int | None, listening_port: int) -> int | None:
    """Return the port computers use: the mapped one, the listening one, or None (closed)."""
    if public_port is None:
        return listening_port
    return public_port or None


def _listener(name: str, kind: str, bind: str, port: int) -> ListenerRow:
    where = "all addresses" if bind in ("0.0.0.0", "::", "") else url_host(bind)  # noqa: S104
    return ListenerRow(name=name, address=f"port {port} on {where}, {kind}")


class WebPageApp:
    """Answer GET and HEAD for the page (`/`) and downloads (`/files/<path>`)."""

    def __init__(
        self,
        *,
        storage: StorageRoot,
        accounts: AccountBook,
        facts: ServerFacts,
        settings: WebPageSettings,
        warnings: RecentWarnings,
    ) -> None:
        """Serve `storage`; the rest is what the page reports."""
        self._storage = storage
        self._facts = facts
        self._settings = settings
        self._warnings = warnings
        self._accounts = [
            AccountRow(
                username=account.username,
                read_only=account.read_only,
                builtin=account.username == HOMEASSISTANT_USER,
                methods=" or ".join(
                    method
                    for method, present in (
                        ("password", bool(account.password)),
                        ("SSH key (SFTP)", bool(account.authorized_keys)),
                    )
                    if present
                ),
            )
            for account in accounts
        ]
        self._listeners = [
            _listener("SFTP", "listening", facts.bind, facts.sftp_port),
            _listener("WebDAV", "HTTPS" if facts.webdav_tls else "HTTP", facts.bind,
                      facts.webdav_port),
            _listener("This page", "through Home Assistant only" if settings.ingress else "HTTP",
                      facts.bind, settings.port),
        ]  # fmt: skip

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Route one request."""
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return text_answer(start_response, "405 Method Not Allowed", "This page only reads.",
                               ("Allow", "GET, HEAD"))  # fmt: skip
        path = request_path(environ)
        if path in ("", "/"):
            body = render("page.html.j2", **self._page_context(environ))
            start_response("200 OK", html_headers(body))
            return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
        if path.startswith("/files/"):
            who = f"{environ.get('backup_drive.user') or 'Home Assistant'} (page)"
            result: Iterable[bytes] = send_file(
                environ, start_response, self._storage, path.removeprefix("/files"), who
            )
            return result
        return text_answer(start_response, "404 Not Found", "No such page.")

    def _page_context(self, environ: Environ) -> dict[str, Any]:
        prefix = ingress_prefix(environ) if self._settings.ingress else ""
        drive = read_drive_status(self._storage)
        backups_folder = self._storage.path / BACKUPS_FOLDER
        health = None
        listing = FolderListing(backups=(), others=())
        if drive.kind != "missing":
            health = read_health(backups_folder)
            # The folder can vanish with the drive; the drive section says so.
            with contextlib.suppress(OSError):
                listing = list_folder(backups_folder, health)
        host = self._settings.public_host or request_host(
            environ, behind_proxy=self._settings.ingress
        )
        files_prefix = f"{prefix}/files/{quote(BACKUPS_FOLDER)}/"
        return {
            "page_href": f"{prefix}/",
            "drive": drive,
            "health": health,
            "problems": [PROBLEMS.get(code, code) for code in health.problems] if health else [],
            "listing": listing,
            "file_href": lambda name: files_prefix + quote(name),
            "connect": connect_sections(
                host,
                webdav_port=_published(self._settings.public_webdav_port, self._facts.webdav_port),
                webdav_tls=self._facts.webdav_tls,
                sftp_port=_published(self._settings.public_sftp_port, self._facts.sftp_port),
            ),
            "accounts": self._accounts,
            "listeners": self._listeners,
            "fingerprint": self._facts.host_key_fingerprint,
            "warnings": self._warnings.latest(),
        }
