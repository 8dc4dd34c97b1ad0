"""The page's own listener: a small cheroot server in background threads."""

from __future__ import annotations

import logging
import threading

from cheroot import wsgi

from backup_drive_server.accounts import AccountBook
from backup_drive_server.login_guard import LoginGuard
from backup_drive_server.settings import ServerSettings
from backup_drive_server.storage_root import StorageRoot
from backup_drive_server.web_page.access import WSGIApp, basic_login, only_from
from backup_drive_server.web_page.app import ServerFacts, WebPageApp
from backup_drive_server.web_page.recent_warnings import watch_recent_warnings

_LOGGER = logging.getLogger(__name__)

# A few people look at the page now and then; downloads still run beside it.
PAGE_THREADS = 4
# Downloads through the page are cut at shutdown; the WebDAV and SFTP grace period is for uploads.
SHUTDOWN_SECONDS = 1


class WebPageServer:
    """Serve the page on one port until stopped."""

    def __init__(self, app: WSGIApp, bind: str, port: int) -> None:
        """Bind to `bind`:`port` when started."""
        self._server = wsgi.Server(
            (bind, port),
            app,
            numthreads=PAGE_THREADS,
            server_name="Backup Drive",
            timeout=60,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket (errors surface here) and serve in a background thread."""
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, name="web-page", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and join the worker threads."""
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)


def start_web_page(
    settings: ServerSettings,
    storage: StorageRoot,
    accounts: AccountBook,
    guard: LoginGuard,
    facts: ServerFacts,
) -> WebPageServer | None:
    """Start the page when --ui-port was given; return its server, or None."""
    page = settings.web_page
    if page is None:
        return None
    app: WSGIApp = WebPageApp(
        storage=storage,
        accounts=accounts,
        facts=facts,
        settings=page,
        warnings=watch_recent_warnings(),
    )
    app = only_from(app, page.allow_from) if page.allow_from else basic_login(app, accounts, guard)
    server = WebPageServer(app, settings.bind, page.port)
    server.start()
    if page.allow_from:
        _LOGGER.info("Page: port %d, through Home Assistant (ingress from %s only)", page.port,
                     page.allow_from)  # fmt: skip
    else:
        host = f"[{settings.bind}]" if ":" in settings.bind else settings.bind
        _LOGGER.info("Page:   http://%s:%d/ (log in with an account)", host, page.port)
    return server
