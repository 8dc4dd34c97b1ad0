"""Run the SFTP and WebDAV servers together until SIGTERM, then stop cleanly."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from concurrent.futures import ThreadPoolExecutor

from backup_drive_server import __version__
from backup_drive_server.accounts import PASSWORD_FILE, AccountBook, load_homeassistant_password
from backup_drive_server.cipher_choice import choose_ciphers
from backup_drive_server.host_key import fingerprint, load_host_key
from backup_drive_server.login_guard import LoginGuard
from backup_drive_server.settings import (
    BACKUPS_FOLDER,
    DEFAULT_LABEL,
    HOMEASSISTANT_USER,
    SHUTDOWN_GRACE_SECONDS,
    ServerSettings,
)
from backup_drive_server.sftp_server import SFTPContext, start_sftp_server
from backup_drive_server.storage_root import StorageRoot
from backup_drive_server.web_page.app import ServerFacts
from backup_drive_server.web_page.drive_status import read_drive_status
from backup_drive_server.web_page.listener import start_web_page
from backup_drive_server.webdav_server import WebDAVServer, webdav_config

_LOGGER = logging.getLogger(__name__)

IO_THREADS = 8
OPEN_FILES_WANTED = 65536


def _url_host(bind: str) -> str:
    if bind in ("0.0.0.0", "::", ""):  # noqa: S104 - only to print a usable address
        return "<this host>"
    return f"[{bind}]" if ":" in bind else bind


async def serve(settings: ServerSettings) -> None:
    """Serve until SIGTERM or SIGINT."""
    # Handlers first: a SIGTERM that arrives while starting must still mean a clean exit 0.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    settings.validate()
    _raise_open_file_limit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    storage = StorageRoot(settings.storage, require_mount=settings.require_mount)
    storage.prepare()
    host_key = load_host_key(settings.data_dir)
    accounts = AccountBook.build(load_homeassistant_password(settings.data_dir), settings.users)
    guard = LoginGuard()
    io_pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="sftp-io")
    context = SFTPContext(
        storage=storage,
        accounts=accounts,
        guard=guard,
        io_pool=io_pool,
        max_connections=settings.max_connections,
    )
    webdav = WebDAVServer(
        webdav_config(
            storage,
            accounts,
            guard,
            settings.data_dir / "webdav",
            nonce_seconds=settings.webdav_nonce_seconds,
            # The add-on mounts the drive, so its label is known here without a flag.
            label=settings.label or read_drive_status(storage).label or DEFAULT_LABEL,
        ),
        settings.bind,
        settings.webdav_port,
        certfile=settings.webdav_certfile,
        keyfile=settings.webdav_keyfile,
    )
    ciphers = await asyncio.to_thread(choose_ciphers)
    sftp = await start_sftp_server(
        context,
        host_key,
        settings.bind,
        settings.sftp_port,
        encryption_algs=ciphers.encryption_algs,
    )
    try:
        webdav.start()
    except BaseException:
        sftp.close()
        raise
    # The add-on's own page (--ui-port): a third listener, off unless asked for.
    facts = ServerFacts(
        bind=settings.bind,
        sftp_port=settings.sftp_port,
        webdav_port=settings.webdav_port,
        webdav_tls=settings.webdav_certfile is not None,
        host_key_fingerprint=fingerprint(host_key),
    )
    try:
        page = start_web_page(settings, storage, accounts, guard, facts)
    except BaseException:
        sftp.close()
        webdav.stop()
        raise

    _log_where_to_connect(settings, storage, accounts, webdav.scheme, fingerprint(host_key))
    _LOGGER.info("SSH ciphers offered: %s", ciphers.describe())
    _LOGGER.info("Backup Drive is ready")

    await stop.wait()

    _LOGGER.info("Stopping: no new connections; transfers in flight get %.0f seconds",
                 SHUTDOWN_GRACE_SECONDS)  # fmt: skip
    sftp.close()
    # Both servers (and the page) drain at the same time and each cuts its own connections off
    # when the grace period ends, so none waits for another and the whole stop stays within one
    # grace.
    stopping = [asyncio.to_thread(webdav.stop), _stop_sftp_sessions(context)]
    if page is not None:
        stopping.append(asyncio.to_thread(page.stop))
    await asyncio.gather(*stopping)
    io_pool.shutdown(wait=True)
    removed = storage.discard_all_staging()
    if removed:
        _LOGGER.info("Removed %d unfinished upload(s)", removed)
    _LOGGER.info("Stopped")


def _log_where_to_connect(
    settings: ServerSettings,
    storage: StorageRoot,
    accounts: AccountBook,
    webdav_scheme: str,
    host_key_fingerprint: str,
) -> None:
    """Log the addresses, accounts and host key a person needs to connect."""
    host = _url_host(settings.bind)
    usage = storage.disk_usage()
    _LOGGER.info("Backup Drive %s serving %s (%.1f GB free of %.1f GB)", __version__,
                 storage.path, usage.free / 1e9, usage.total / 1e9)  # fmt: skip
    _LOGGER.info("SFTP:   sftp://%s:%d/ (Home Assistant's backups in /%s)", host,
                 settings.sftp_port, BACKUPS_FOLDER)  # fmt: skip
    _LOGGER.info("WebDAV: %s://%s:%d/", webdav_scheme, host, settings.webdav_port)
    _LOGGER.info("User %s, password in %s", HOMEASSISTANT_USER, settings.data_dir / PASSWORD_FILE)
    for account in accounts:
        if account.username != HOMEASSISTANT_USER:
            _LOGGER.info("User %s (%s)", account.username,
                         "read-only" if account.read_only else "read-write")  # fmt: skip
    _LOGGER.info("SSH host key fingerprint: %s", host_key_fingerprint)


def _raise_open_file_limit() -> None:
    """Allow as many open files as the container permits.

    The usual soft limit of 1,024 is less than the sessions and their capped handles
    (sftp_limits.MAX_OPEN_HANDLES each) may hold; running out stops logins and WebDAV too.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else OPEN_FILES_WANTED
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, OPEN_FILES_WANTED), hard))


async def _stop_sftp_sessions(context: SFTPContext) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SHUTDOWN_GRACE_SECONDS
    # Only sessions with a file open are waited for; idle ones are closed straight away.
    while context.open_files > 0 and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    for conn in [*context.connections, *context.pending]:
        conn.abort()
    # Let the aborted sessions run their cleanup (which deletes unfinished uploads).
    await asyncio.sleep(0.2)
