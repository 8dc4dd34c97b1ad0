"""Turn the page's facts into HTML: Jinja2 templates, one stylesheet and one small script."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

HERE = Path(__file__).parent
STYLE = (HERE / "static" / "style.css").read_text(encoding="utf-8")
SCRIPT = (HERE / "static" / "page.js").read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


# Everything is inline, so the policy allows exactly these two blocks and nothing from elsewhere
# (ingress pages must work offline, and no page may load anything from another site).
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)


def human_size(size: int | None) -> str:
    """Format bytes in the decimal units drives are sold in (MB, GB)."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError  # pragma: no cover - the loop always returns


def iso(moment: datetime) -> str:
    """Render a moment for `<time datetime>` (UTC, seconds)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def utc_text(moment: datetime) -> str:
    """Render a moment readably in UTC, shown when the script does not run."""
    return moment.astimezone(UTC).strftime("%d %b %Y, %H:%M UTC")


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENVIRONMENT.filters.update(human_size=human_size, iso=iso, utc_text=utc_text)
_ENVIRONMENT.globals.update(style=STYLE, script=SCRIPT)


def render(template: str, **context: Any) -> bytes:
    """Render one of the templates to UTF-8 bytes."""
    return _ENVIRONMENT.get_template(template).render(**context).encode()


def html_headers(body: bytes) -> list[tuple[str, str]]:
    """Return the headers every HTML answer carries."""
    return [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ]


def text_answer(
    start_response: Any, status: str, message: str, *extra: tuple[str, str]
) -> list[bytes]:
    """Answer with a short plain-text message."""
    body = f"{message}\n".encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra],
    )
    return [body]
