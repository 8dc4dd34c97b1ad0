"""Command line of `backup-drive-server`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from backup_drive_server.log_format import LOG_LEVELS, configure_logging
from backup_drive_server.service import serve
from backup_drive_server.settings import (
    DEFAULT_LABEL,
    SFTP_PORT,
    WEBDAV_PORT,
    ServerSettings,
    SettingsError,
    read_options,
    users_from_options,
)
from backup_drive_server.web_page.options import add_web_page_flags, web_page_settings
from backup_drive_server.web_page.recent_warnings import watch_recent_warnings


def build_parser() -> argparse.ArgumentParser:
    """Describe the flags."""
    parser = argparse.ArgumentParser(
        prog="backup-drive-server",
        description="Serve a folder (or a mounted USB drive) over SFTP and WebDAV for backups.",
    )
    parser.add_argument("--storage", type=Path, default=Path("storage"),
                        help="folder to serve (default: ./storage)")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=Path(".data"),
                        help="host key, generated password and WebDAV state; never inside "
                        "the storage folder (default: ./.data)")  # fmt: skip
    parser.add_argument(
        "--options",
        type=Path,
        help="the add-on's options.json (extra users, WebDAV TLS, log level)",
    )
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--sftp-port", type=int, default=SFTP_PORT)
    parser.add_argument("--webdav-port", type=int, default=WEBDAV_PORT)
    parser.add_argument(
        "--ssl-dir",
        type=Path,
        default=Path("/ssl"),
        help="where the options' certfile and keyfile live (default: /ssl)",
    )
    parser.add_argument("--webdav-certfile", type=Path, help="serve WebDAV over TLS")
    parser.add_argument("--webdav-keyfile", type=Path)
    parser.add_argument("--require-mount", action="store_true",
                        help="refuse file access while no drive is mounted at the storage "
                        "folder, so nothing lands on the container's own disk")  # fmt: skip
    parser.add_argument("--log-level", choices=sorted(LOG_LEVELS))
    add_web_page_flags(parser)
    parser.add_argument("--label",
                        help="the name of the WebDAV root (default: the mounted drive's label, "
                        f"else {DEFAULT_LABEL!r})")  # fmt: skip
    parser.add_argument("--webdav-nonce-seconds", type=float, default=300.0,
                        help="how long a WebDAV Digest login challenge stays valid; clients "
                        "renew it without asking (default: 300)")  # fmt: skip
    return parser


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """Merge the flags with the options file (flags win)."""
    options = read_options(args.options) if args.options else {}
    certfile, keyfile = args.webdav_certfile, args.webdav_keyfile
    if certfile is None and options.get("webdav_tls"):
        certfile = args.ssl_dir / str(options.get("certfile") or "fullchain.pem")
        keyfile = args.ssl_dir / str(options.get("keyfile") or "privkey.pem")
    return ServerSettings(
        storage=args.storage,
        data_dir=args.data_dir,
        bind=args.bind,
        sftp_port=args.sftp_port,
        webdav_port=args.webdav_port,
        users=users_from_options(options),
        webdav_certfile=certfile,
        webdav_keyfile=keyfile,
        require_mount=args.require_mount,
        log_level=args.log_level or str(options.get("log_level") or "info"),
        web_page=web_page_settings(args),
        webdav_nonce_seconds=args.webdav_nonce_seconds,
        label=(args.label or "").strip() or None,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the server; return the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except SettingsError as err:
        print(f"backup-drive-server: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    # From the first line on, so the page also shows warnings logged while starting.
    watch_recent_warnings()
    # asyncssh logs every channel at INFO; keep the add-on log about backups, not packets.
    logging.getLogger("asyncssh").setLevel(
        logging.DEBUG if settings.log_level in ("trace", "debug") else logging.WARNING
    )
    try:
        asyncio.run(serve(settings))
    except SettingsError as err:
        logging.getLogger("backup_drive_server").error("Cannot start: %s", err)
        return 2
    except OSError as err:
        logging.getLogger("backup_drive_server").error("Cannot start: %s", err)
        return 1
    return 0
