"""Find the chosen drive and the filesystem on it that Backup Drive can mount."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from backup_drive_addon.storage_error import StorageError
from backup_drive_addon.system_tools import run_tool
from backup_drive_server.web_page.drive_status import FILESYSTEM_NAMES as SHOWN_NAMES

_LOGGER = logging.getLogger(__name__)

SYS_BLOCK = Path("/sys/class/block")

# The filesystems Backup Drive mounts read-write, by blkid TYPE, with the names users know them
# by (the page shows the same names). drive_mount.KERNEL_DRIVERS has a driver list for each.
FILESYSTEM_NAMES = {
    fs_type: SHOWN_NAMES[fs_type] for fs_type in ("ext2", "ext3", "ext4", "exfat", "ntfs", "vfat")
}


@dataclass(frozen=True, kw_only=True)
class Partition:
    """A block device holding (or not) a filesystem, as blkid sees it."""

    path: Path
    name: str
    fstype: str
    label: str | None
    uuid: str | None
    size: int

    def describe(self) -> str:
        """Name the device the way a user recognises it."""
        parts = [str(self.path)]
        if self.label:
            parts.append(f'label "{self.label}"')
        if self.uuid:
            parts.append(f"UUID {self.uuid}")
        return ", ".join(parts)


def _blkid_probe(device: Path) -> dict[str, str]:
    """Read TYPE, LABEL, UUID of `device` straight from the disk (no cache)."""
    result = run_tool(["blkid", "-p", "-o", "export", str(device)])
    values: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values


def _device_size(name: str) -> int:
    """Return the size of block device `name` in bytes."""
    try:
        return int((SYS_BLOCK / name / "size").read_text()) * 512
    except (OSError, ValueError):
        return 0


def probe(device: Path) -> Partition:
    """Describe one block device."""
    values = _blkid_probe(device)
    return Partition(
        path=device,
        name=device.name,
        fstype=values.get("TYPE", ""),
        label=values.get("LABEL"),
        uuid=values.get("UUID"),
        size=_device_size(device.name),
    )


def resolve_device(spec: str) -> Path:
    """Turn a /dev path, a by-id link, `LABEL=...` or `UUID=...` into a kernel block device."""
    spec = spec.strip()
    key, sep, value = spec.partition("=")
    if sep and key.upper() in {"LABEL", "UUID"}:
        result = run_tool(["blkid", "-t", f"{key.upper()}={value}", "-o", "device"])
        found = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        if not found:
            raise StorageError(
                f"No attached drive has a filesystem with {key.lower()} {value!r}.",
                "Check that the drive is plugged in, then restart the add-on.",
            )
        if len(found) > 1:
            raise StorageError(
                f"Several filesystems have {key.lower()} {value!r}: {', '.join(found)}.",
                "Choose the drive by its /dev/disk/by-id name in the add-on's configuration.",
            )
        spec = found[0]
    path = Path(spec)
    if not path.exists():
        raise StorageError(
            f"The drive {spec} is not attached.",
            "Plug the drive in (or choose it again in the add-on's configuration: its name "
            "can change when it moves to another USB port), then restart the add-on.",
        )
    device = path.resolve()
    if not stat.S_ISBLK(device.stat().st_mode):
        raise StorageError(
            f"{spec} is not a drive (block device).",
            "Choose the USB drive from the list in the add-on's configuration.",
        )
    return device


def partitions_of(disk: str) -> list[str]:
    """Return the names of the partitions of whole disk `disk` (none for a partition)."""
    folder = SYS_BLOCK / disk
    return sorted(
        child.name
        for child in folder.iterdir()
        if child.is_dir() and (child / "partition").is_file()
    )


def _can_open(device: Path) -> bool:
    """Tell whether this container may open `device` (it exists and the cgroup allows it)."""
    try:
        os.close(os.open(device, os.O_RDONLY | os.O_NONBLOCK))
    except OSError:
        return False
    return True


def parent_disk(name: str) -> str:
    """Return the whole disk a partition belongs to (the device itself for a whole disk)."""
    entry = SYS_BLOCK / name
    if (entry / "partition").is_file():
        return entry.resolve().parent.name
    return name


def choose_partition(device: Path) -> Partition:
    """Pick the filesystem to mount: the device itself, or the best partition of a whole disk."""
    whole = probe(device)
    if whole.fstype:
        _require_supported(whole)
        return whole
    names = partitions_of(device.name)
    unreachable = [name for name in names if not _can_open(Path("/dev") / name)]
    if unreachable:
        # Supervisor lets the add-on open exactly the device chosen (a cgroup rule for its
        # major:minor), not the partitions on it.
        raise StorageError(
            f"The add-on can only reach {device}, not the partitions on it "
            f"({', '.join(unreachable)}).",
            "Choose the partition itself in the configuration: the entry for this drive that "
            "ends in -part1 (or -part2, ...).",
        )
    candidates = [probe(Path("/dev") / name) for name in names]
    supported = [part for part in candidates if part.fstype in FILESYSTEM_NAMES]
    if not supported:
        found = ", ".join(f"{p.path} ({p.fstype or 'no filesystem'})" for p in candidates)
        raise StorageError(
            f"The drive {device} has no ext4, exFAT, NTFS or FAT32 filesystem"
            + (f" (found: {found})." if found else " (it is empty or unformatted)."),
            "Format the drive as exFAT or ext4 on a computer (this erases it), or choose "
            "another drive.",
        )
    chosen = max(supported, key=lambda part: part.size)
    if len(supported) > 1:
        others = ", ".join(str(p.path) for p in supported if p is not chosen)
        _LOGGER.warning(
            "The drive has several usable partitions; using the largest, %s (also found: %s). "
            "Choose a partition in the configuration to use another one.",
            chosen.describe(),
            others,
        )
    return chosen


def _require_supported(part: Partition) -> None:
    """Refuse filesystems the add-on cannot mount read-write."""
    if part.fstype not in FILESYSTEM_NAMES:
        raise StorageError(
            f"{part.describe()} holds a {part.fstype} filesystem, which Backup Drive does not "
            "support.",
            "Use a drive formatted as ext4, exFAT, NTFS or FAT32 (exFAT works on Windows, "
            "macOS and Linux).",
        )
