"""Prepare, secure, report and release the mount point the server serves, whatever backs it."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from backup_drive_addon.drive_probe import FILESYSTEM_NAMES
from backup_drive_addon.storage_error import StorageError
from backup_drive_addon.system_tools import run_tool
from backup_drive_server.mount_table import mount_at
from backup_drive_server.settings import BACKUPS_FOLDER

_LOGGER = logging.getLogger(__name__)

# Nothing on a backup drive is meant to run, and device files on it must not open host devices.
SAFE_OPTIONS = ("nosuid", "nodev", "noexec", "noatime")
# The driver reported for a drive that was mounted before this start (a restarted add-on).
ALREADY_MOUNTED = "already mounted"


@dataclass(frozen=True, kw_only=True)
class MountedStorage:
    """The storage root the server will serve, and what backs it."""

    mount_point: Path
    source: str
    fstype: str
    total: int
    free: int
    driver: str


def human_size(size: int) -> str:
    """Format a byte count in the decimal units drives are sold in."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def prepare_mount_point(mount_point: Path) -> None:
    """Create the mount point as an empty folder nobody may write into."""
    mount_point.mkdir(parents=True, exist_ok=True)
    # Without the drive the folder must stay empty: the server refuses it (--require-mount), and
    # mode 000 stops anything but root from writing into the container's own disk here.
    if mount_at(mount_point) is None:
        if any(mount_point.iterdir()):
            raise StorageError(
                f"The mount point {mount_point} is not empty.",
                "This is a bug in the add-on's image; please report it.",
            )
        mount_point.chmod(0)


def enforce_safe_options(mount_point: Path) -> None:
    """Make sure nothing on the storage can run or act as a device, whatever the driver did."""
    # FUSE drivers (exfat-fuse) drop some options; a bind remount sets the per-mount flags.
    options = ",".join(SAFE_OPTIONS)
    run_tool(["mount", "-o", f"remount,bind,{options}", str(mount_point)])
    entry = mount_at(mount_point)
    missing = {"nosuid", "nodev", "noexec"} - (entry.flags if entry else frozenset())
    if missing:
        run_tool(["umount", str(mount_point)])
        raise StorageError(
            f"The storage at {mount_point} could not be mounted with {', '.join(sorted(missing))}.",
            "Check that the add-on is allowed to mount (its AppArmor profile), then restart it.",
        )


def ready_storage(mount_point: Path, *, source: str, fstype: str, driver: str) -> MountedStorage:
    """Create the backups folder and report size and free space."""
    try:
        (mount_point / BACKUPS_FOLDER).mkdir(exist_ok=True)
        usage = os.statvfs(mount_point)
    except OSError as err:
        raise StorageError(
            f"The storage at {mount_point} cannot be written: {err.strerror}.",
            "The drive may be write-protected or failing; check it on a computer.",
        ) from err
    storage = MountedStorage(
        mount_point=mount_point,
        source=source,
        fstype=fstype,
        # fusefat reports no fragment size; the block size is the unit then.
        total=(usage.f_frsize or usage.f_bsize) * usage.f_blocks,
        free=(usage.f_frsize or usage.f_bsize) * usage.f_bavail,
        driver=driver,
    )
    name = FILESYSTEM_NAMES.get(fstype, fstype)
    if driver not in {fstype, ALREADY_MOUNTED}:
        name = f"{name} via {driver}"
    _LOGGER.info(
        "Storage ready at %s: %s (%s), %s, %s free",
        mount_point,
        source,
        name,
        human_size(storage.total),
        human_size(storage.free),
    )
    return storage


def release(mount_point: Path) -> bool:
    """Flush and unmount the storage; return whether something was unmounted."""
    mount_point = Path(os.path.realpath(mount_point))
    if mount_at(mount_point) is None:
        return False
    os.sync()
    result = run_tool(["umount", str(mount_point)])
    if result.returncode != 0:
        # A client may still hold a file open; detach now, the kernel finishes when it closes.
        result = run_tool(["umount", "-l", str(mount_point)])
        if result.returncode != 0:
            raise StorageError(
                f"Cannot unmount {mount_point}: {(result.stderr or result.stdout).strip()}",
                "Stop the add-on before unplugging the drive.",
            )
    _LOGGER.info("Released the storage at %s (a drive can be unplugged now)", mount_point)
    return True
