"""Refuse WebDAV requests that would cost the server far more than they are worth."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from wsgidav.dav_error import (
    HTTP_FORBIDDEN,
    DAVError,
    PRECONDITION_CODE_PropfindFiniteDepth,
)
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.wsgidav_app import WsgiDAVApp

from backup_drive_server.webdav_auth import Environ, StartResponse, describe_client

_LOGGER = logging.getLogger(__name__)

# wsgidav reads PROPFIND, PROPPATCH and LOCK bodies whole into memory; real ones are a few KiB.
MAX_XML_BODY = 1024 * 1024
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
