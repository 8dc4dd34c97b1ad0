"""Refuse WebDAV requests that would cost the server far more than they are worth."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_FORBIDDEN,
    DAVError,
    PRECONDITION_CODE_PropfindFiniteDepth,
)
from wsgidav.error_printer import ErrorPrinter
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.wsgidav_app import WsgiDAVApp

from backup_drive_server.webdav_auth import Environ, StartResponse, describe_client

_LOGGER = logging.getLogger(__name__)

# wsgidav reads PROPFIND, PROPPATCH and LOCK bodies whole into memory; real ones are a few KiB.
MAX_XML_BODY = 1024 * 1024
# The longest name ext4, exFAT (in UTF-16 units, fewer bytes) and NTFS accept, in bytes.
MAX_NAME_BYTES = 255
# The sentence of wsgidav's HTML error page; the rest of the page names the library.
_ERROR_SENTENCE = re.compile(r"<p>(.*?)</p>", re.DOTALL)
# Only these stream their body to the drive instead of reading it whole.
STREAMING_METHODS = frozenset({"PUT"})


def plain_answer(
    start_response: StartResponse,
    status: str,
    message: str,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """Answer with a short text/plain body."""
    body = f"{message}\n".encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]


class RequestLimitsMiddleware(BaseMiddleware):  # type: ignore[misc]
    """Refuse oversized XML bodies (413) and PROPFIND of a whole tree (403), after login."""

    def __init__(self, wsgidav_app: WsgiDAVApp, next_app: Any, config: dict[str, Any]) -> None:
        """Nothing to configure: the limits are constants."""
        super().__init__(wsgidav_app, next_app, config)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Check the request's size and depth before wsgidav reads or walks anything."""
        method = str(environ.get("REQUEST_METHOD", "")).upper()
        length = str(environ.get("CONTENT_LENGTH") or "0").strip()
        if method not in STREAMING_METHODS and length.isdigit() and int(length) > MAX_XML_BODY:
            _LOGGER.warning("Refused %s %r for %s: a %s-byte body", method,
                            environ.get("PATH_INFO"), describe_client(environ), length)  # fmt: skip
            # cheroot closes the connection after a 413, so the body is never read.
            return plain_answer(
                start_response,
                "413 Content Too Large",
                f"The request body is too large: {method} accepts at most {MAX_XML_BODY} bytes.",
            )
        # Without a Depth header, PROPFIND means infinity (RFC 4918 9.1).
        if method == "PROPFIND" and environ.get("HTTP_DEPTH", "infinity").lower() == "infinity":
            # RFC 4918 9.1: clients then fall back to Depth: 1, one folder at a time.
            raise DAVError(
                HTTP_FORBIDDEN,
                "PROPFIND with Depth: infinity is not supported; use Depth: 1.",
                err_condition=PRECONDITION_CODE_PropfindFiniteDepth,
            )
        return self.next_app(environ, start_response)  # type: ignore[no-any-return]


def path_problem(raw_path: bytes) -> tuple[str, str] | None:
    """Return (status, reason) when a request path cannot name a file on the drive, else None."""
    try:
        path = raw_path.decode("utf-8")
    except UnicodeDecodeError:
        return "400 Bad Request", "The path is not valid UTF-8."
    if "\0" in path:
        return "400 Bad Request", "The path contains a NUL character."
    if any(len(name) > MAX_NAME_BYTES for name in raw_path.split(b"/")):
        return "400 Bad Request", f"A name in the path is longer than {MAX_NAME_BYTES} bytes."
    try:
        util.normalize_path(path)
        # cheroot leaves an encoded slash encoded; a name like `..%2Fx` would only be odd on
        # disk, but a client sending it means to climb, so it gets the same answer.
        util.normalize_path(path.replace("%2F", "/").replace("%2f", "/"))
    except DAVError:
        return "403 Forbidden", "Permission denied: the path leads outside the storage root."
    return None


def refuse_bad_paths(app: WsgiDAVApp) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    """Answer 4xx to a request or Destination path that cannot name a file under the root.

    Paths climbing above the root (`/../x`, `/%2e%2e/x`), invalid UTF-8, NUL and names longer
    than a drive allows. wsgidav answers some of those before its middleware runs, with a 400
    whose body never arrives, and others with a 500; here each gets a clear answer and a log line.
    """

    def checked_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # WSGI hands the decoded path over as Latin-1 text: this recovers the client's bytes.
        paths = [str(environ.get("PATH_INFO") or "/").encode("iso-8859-1")]
        if environ.get("HTTP_DESTINATION"):
            paths.append(unquote_to_bytes(urlsplit(str(environ["HTTP_DESTINATION"])).path))
        for raw_path in paths:
            problem = path_problem(raw_path)
            if problem is not None:
                status, reason = problem
                _LOGGER.warning("Refused %s %r for %s: %s", environ.get("REQUEST_METHOD"),
                                raw_path, describe_client(environ), reason)  # fmt: skip
                return plain_answer(start_response, status, reason)
        return app(environ, start_response)  # type: ignore[no-any-return]

    return checked_app


class PlainErrorPrinter(ErrorPrinter):  # type: ignore[misc]
    """wsgidav's error handling, answering in plain text that names no library or version."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Pass answers through, but rewrite HTML error pages as one plain sentence."""
        held: list[tuple[str, list[tuple[str, str]]]] = []

        def holding_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
            if int(status[:3]) >= 400 and content_type.startswith("text/html"):
                kept = [
                    (k, v)
                    for k, v in headers
                    if k.lower() not in {"content-type", "content-length"}
                ]
                held.append((status, kept))
                return None
            return start_response(status, headers, exc_info)

        page = b""
        for chunk in super().__call__(environ, holding_start_response):
            if held:
                page += chunk
            else:
                yield chunk
        if held:
            status, headers = held[0]
            found = _ERROR_SENTENCE.search(page.decode("utf-8", errors="replace"))
            yield from plain_answer(
                start_response, status, html.unescape(found.group(1)) if found else status, headers
            )
