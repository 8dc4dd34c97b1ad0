"""Command line for the add-on's s6 services: storage, discovery, integration, health check."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from backup_drive_addon import discovery, integration_installer
from backup_drive_addon.drive_mount import mount_drive
from backup_drive_addon.folder_mount import DEFAULT_FOLDER_ROOTS, use_folder
from backup_drive_addon.health import check_health, webdav_scheme
from backup_drive_addon.mount_point import release
from backup_drive_addon.storage_error import StorageError
from backup_drive_addon.supervisor import SupervisorClient, SupervisorError
from backup_drive_server.log_format import configure_logging
from backup_drive_server.settings import SFTP_PORT, WEBDAV_PORT

# Named, not __name__: run with `python3 -m`, this module is __main__.
_LOGGER = logging.getLogger("backup_drive_addon.addon_tools")

# Where things live in the add-on's container. The s6 scripts rely on these defaults; the
# server's run script names the same paths (tests/addon/test_packaging.py holds them together).
DEFAULT_MOUNT_POINT = Path("/mnt/backup_drive")
DEFAULT_DATA_DIR = Path("/data/server")
DEFAULT_STATE_FILE = Path("/data/discovery.json")
DEFAULT_INTEGRATION = Path("/opt/backup_drive/custom_components/backup_drive")
DEFAULT_CONFIG_DIR = Path("/homeassistant")
DEFAULT_OPTIONS = Path("/data/options.json")


def _fatal(*lines: str) -> int:
    """Log a block of fatal lines and return the failure exit code."""
    for line in lines:
        _LOGGER.critical("%s", line)
    return 1


def cmd_mount_storage(args: argparse.Namespace) -> int:
    """Mount the chosen drive (or bind the folder) at the mount point."""
    try:
        if args.device:
            mount_drive(args.device, args.mount_point)
        else:
            _LOGGER.info("No USB drive chosen: using the folder %s", args.folder)
            roots = tuple(args.folder_root) or DEFAULT_FOLDER_ROOTS
            use_folder(args.folder, args.mount_point, roots)
    except StorageError as err:
        return _fatal(err.message, err.hint)
    return 0


def cmd_release_storage(args: argparse.Namespace) -> int:
    """Unmount the storage so the drive can be unplugged."""
    try:
        release(args.mount_point)
    except StorageError as err:
        _LOGGER.error("%s %s", err.message, err.hint)
        return 1
    return 0


def cmd_publish_discovery(args: argparse.Namespace) -> int:
    """Publish the server's address and credentials to Home Assistant."""
    try:
        discovery.wait_for_sftp(args.port, args.wait)
        host = args.host or socket.gethostname()
        config = discovery.build_config(args.data_dir, host, args.port)
        client = SupervisorClient(args.supervisor)
        discovery.publish(client, config, args.state_file)
    except SupervisorError as err:
        _LOGGER.error("Could not announce Backup Drive to Home Assistant: %s", err)
        return 1
    return 0


def cmd_install_integration(args: argparse.Namespace) -> int:
    """Install or update the bundled integration, then ask for a restart."""
    client: SupervisorClient | None
    try:
        client = SupervisorClient(args.supervisor)
    except SupervisorError:
        # Outside Supervisor there is nobody to notify; the log still says to restart.
        client = None
    try:
        integration_installer.install_and_notify(args.source, args.config_dir, client)
    except integration_installer.InstallError as err:
        _LOGGER.error("Could not install the Backup Drive integration: %s", err)
        return 1
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 when both servers answer (the Dockerfile's HEALTHCHECK)."""
    problems = check_health(args.sftp_port, args.webdav_port, webdav_scheme(args.options))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    """Describe the sub-commands."""
    parser = argparse.ArgumentParser(prog="python3 -m backup_drive_addon.addon_tools")
    parser.add_argument("--log-level", default="info")
    sub = parser.add_subparsers(dest="command", required=True)

    mount = sub.add_parser("mount-storage", help=cmd_mount_storage.__doc__)
    mount.add_argument("--device", default="", help="drive: /dev path, LABEL=... or UUID=...")
    mount.add_argument("--folder", type=Path, default=Path("/share/backup_drive"))
    mount.add_argument("--mount-point", type=Path, default=DEFAULT_MOUNT_POINT)
    mount.add_argument(
        "--folder-root", type=Path, action="append", default=[], help="allowed folder parent"
    )
    mount.set_defaults(handler=cmd_mount_storage)

    release = sub.add_parser("release-storage", help=cmd_release_storage.__doc__)
    release.add_argument("--mount-point", type=Path, default=DEFAULT_MOUNT_POINT)
    release.set_defaults(handler=cmd_release_storage)

    publish = sub.add_parser("publish-discovery", help=cmd_publish_discovery.__doc__)
    publish.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    publish.add_argument("--host", default="", help="default: this container's host name")
    publish.add_argument("--port", type=int, default=SFTP_PORT)
    publish.add_argument("--supervisor", default=None, help="default: $SUPERVISOR_API")
    publish.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE)
    publish.add_argument("--wait", type=float, default=120.0, help="seconds to wait for SFTP")
    publish.set_defaults(handler=cmd_publish_discovery)

    install = sub.add_parser("install-integration", help=cmd_install_integration.__doc__)
    install.add_argument("--source", type=Path, default=DEFAULT_INTEGRATION)
    install.add_argument("--config-dir", type=Path, default=DEFAULT_CONFIG_DIR)
    install.add_argument("--supervisor", default=None, help="default: $SUPERVISOR_API")
    install.set_defaults(handler=cmd_install_integration)

    health = sub.add_parser("healthcheck", help=cmd_healthcheck.__doc__)
    health.add_argument("--sftp-port", type=int, default=SFTP_PORT)
    health.add_argument("--webdav-port", type=int, default=WEBDAV_PORT)
    health.add_argument("--options", type=Path, default=DEFAULT_OPTIONS)
    health.set_defaults(handler=cmd_healthcheck)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command and return its exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    handler = args.handler
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
