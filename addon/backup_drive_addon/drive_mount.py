"""Mount the chosen USB drive read-write, trying the kernel's drivers first, then FUSE."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from backup_drive_addon.drive_probe import (
    FILESYSTEM_NAMES,
    Partition,
    choose_partition,
    resolve_device,
)
from backup_drive_addon.mount_point import (
    ALREADY_MOUNTED,
    SAFE_OPTIONS,
    MountedStorage,
    enforce_safe_options,
    human_size,
    prepare_mount_point,
    ready_storage,
)
from backup_drive_addon.mount_policy import is_already_ours, refuse_disk_in_use
from backup_drive_addon.storage_error import StorageError
from backup_drive_addon.system_tools import run_tool, tool_available
from backup_drive_server.mount_table import mount_at

_LOGGER = logging.getLogger(__name__)

# Kernel drivers first; FUSE drivers are the fallback where the kernel lacks one (NTFS and exFAT
# on older kernels, FAT on this project's CI machines). The kernel's old "ntfs" driver is
# read-only, so it is never tried. One entry per filesystem in drive_probe.FILESYSTEM_NAMES.
KERNEL_DRIVERS = {
    "ext2": ("ext2", "ext4"),
    "ext3": ("ext3", "ext4"),
    "ext4": ("ext4",),
    "exfat": ("exfat",),
    "ntfs": ("ntfs3",),
    "vfat": ("vfat",),
}
FUSE_DRIVERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "exfat": (("mount.exfat-fuse",), ("exfat-fuse",)),
    "ntfs": (("ntfs-3g",), ("mount.ntfs-3g",)),
    # fusefat mounts read-only unless asked for its (experimental) write mode.
    "vfat": (("fusefat", "-o", "rw+"),),
}


def _mount_options(fstype: str) -> str:
    """Return the mount options for `fstype`."""
    options = list(SAFE_OPTIONS)
    if fstype in {"vfat", "exfat"}:
        # File names from Windows and macOS arrive as UTF-8.
        options.append("iocharset=utf8")
    return ",".join(options)


def _try_mount(part: Partition, mount_point: Path) -> str:
    """Mount `part` with the first driver that works; return the driver used."""
    errors = []
    for driver in KERNEL_DRIVERS[part.fstype]:
        result = run_tool(
            [
                "mount",
                "-t",
                driver,
                "-o",
                _mount_options(part.fstype),
                str(part.path),
                str(mount_point),
            ]
        )
        if result.returncode == 0:
            return driver
        errors.append(f"{driver}: {(result.stderr or result.stdout).strip()}")
    for helper in FUSE_DRIVERS.get(part.fstype, ()):
        program, *extra = helper
        if not tool_available(program):
            continue
        options = ",".join(SAFE_OPTIONS)
        result = run_tool([program, *extra, "-o", options, str(part.path), str(mount_point)])
        if result.returncode == 0 and mount_at(mount_point) is not None:
            return program
        errors.append(f"{program}: {(result.stderr or result.stdout).strip()}")
    raise StorageError(
        f"Mounting {part.describe()} ({FILESYSTEM_NAMES[part.fstype]}) failed: "
        + "; ".join(errors),
        _mount_failure_hint(part.fstype),
    )


def _mount_failure_hint(fstype: str) -> str:
    """Say what usually fixes a failed mount of `fstype`."""
    if fstype == "ntfs":
        return (
            "Windows may have left the drive marked as in use: connect it to Windows, run "
            "'chkdsk /f' on it, use 'Safely Remove Hardware', and turn off Fast Startup. "
            "Or format it as exFAT."
        )
    if fstype in {"exfat", "vfat"}:
        return (
            "The filesystem may need repair: check it on a computer (Windows: chkdsk /f, "
            "macOS: Disk Utility First Aid), eject it safely, then restart the add-on."
        )
    return (
        "The filesystem may need repair: check it on a Linux computer with 'fsck', then "
        "restart the add-on."
    )


def mount_drive(spec: str, mount_point: Path) -> MountedStorage:
    """Mount the drive `spec` read-write at `mount_point` and prepare the backups folder."""
    mount_point = Path(os.path.realpath(mount_point))
    device = resolve_device(spec)
    part = choose_partition(device)
    refuse_disk_in_use(part, mount_point)
    _LOGGER.info(
        "Drive: %s, %s, %s",
        part.describe(),
        FILESYSTEM_NAMES[part.fstype],
        human_size(part.size),
    )
    if is_already_ours(part, mount_point):
        driver = ALREADY_MOUNTED
    else:
        prepare_mount_point(mount_point)
        if mount_at(mount_point) is not None:
            raise StorageError(
                f"Something else is already mounted at {mount_point}.",
                "Restart the add-on.",
            )
        driver = _try_mount(part, mount_point)
        enforce_safe_options(mount_point)
    storage = ready_storage(mount_point, source=part.describe(), fstype=part.fstype, driver=driver)
    if part.fstype == "vfat":
        _LOGGER.warning(
            "FAT32 cannot hold files larger than 4 GB: backups bigger than that will fail. "
            "Format the drive as exFAT or ext4 to lift the limit."
        )
    return storage
