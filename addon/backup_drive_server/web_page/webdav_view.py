"""Show browsers on the WebDAV port the page's backup view of a folder instead of a bare index."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from wsgidav.mw.base_mw import BaseMiddleware

from backup_drive_server.health_file import read_health
from backup_drive_server.storage_root import StorageRoot
from backup_drive_server.web_page.backup_catalog import is_hidden_name, list_folder
from backup_drive_server.web_page.drive_status import read_drive_status
from backup_drive_server.web_page.render import html_headers, render

_LOGGER = logging.getLogger(__name__)

type Environ = dict[str, Any]
type StartResponse = Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class Crumb:
    """One folder on the way from the root to the folder shown."""

    name: str
    href: str


def wants_page(environ: Environ) -> bool:
    """Return whether the request is a plain GET, which for a folder means a browser's."""
    # WebDAV clients list folders with PROPFIND; a GET of a folder only ever wants a page
    # (`Accept: text/html` from browsers, anything from curl), and wsgidav's own index names
    # the library and its version. `?davmount` (RFC 4709) stays wsgidav's.
    return environ.get("REQUEST_METHOD") == "GET" and "davmount" not in str(
        environ.get("QUERY_STRING") or ""
    )


def _breadcrumbs(script_name: str, parts: list[str]) -> list[Crumb]:
    crumbs = [Crumb(name="Drive", href=f"{script_name}/")]
    for depth in range(1, len(parts) + 1):
        href = script_name + "/" + "/".join(quote(part) for part in parts[:depth]) + "/"
        crumbs.append(Crumb(name=parts[depth - 1], href=href))
    return crumbs


class BrowserFolderView(BaseMiddleware):  # type: ignore[misc]
    """Answer a browser's GET of a folder with the backup view (runs after authentication)."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Render folders for browsers; hand everything else on, WebDAV clients included."""
        provider = environ.get("wsgidav.provider")
        if not wants_page(environ) or provider is None:
            return self.next_app(environ, start_response)  # type: ignore[no-any-return]
        storage: StorageRoot = provider.storage
        path = str(environ.get("PATH_INFO") or "/")
        try:
            folder = storage.resolve(path, who=f"{environ.get('wsgidav.auth.user_name')} (browser)")
            is_folder = folder.is_dir()
        except OSError:
            is_folder = False  # wsgidav answers with the right error
        if not is_folder:
            return self.next_app(environ, start_response)  # type: ignore[no-any-return]
        parts = [part for part in path.split("/") if part]
        if any(is_hidden_name(part) for part in parts):
            return self.next_app(environ, start_response)  # type: ignore[no-any-return]
        script_name = str(environ.get("SCRIPT_NAME") or "").rstrip("/")
        here = _breadcrumbs(script_name, parts)[-1].href
        try:
            listing = list_folder(folder, read_health(folder))
        except OSError as err:
            _LOGGER.warning("Cannot list %s for a browser: %s", path, err)
            return self.next_app(environ, start_response)  # type: ignore[no-any-return]
        body = render(
            "folder.html.j2",
            folder_name=parts[-1] if parts else "Drive",
            breadcrumbs=_breadcrumbs(script_name, parts),
            drive=read_drive_status(storage),
            listing=listing,
            file_href=lambda name: here + quote(name),
            folder_href=lambda name: here + quote(name) + "/",
        )
        start_response("200 OK", html_headers(body))
        return [body]
