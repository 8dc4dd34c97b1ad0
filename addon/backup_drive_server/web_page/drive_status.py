"""Describe what backs the storage root: which drive or folder, mounted or not, how full."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backup_drive_server.storage_root import StorageRoot

MOUNTINFO = Path("/proc/self/mountinfo")
# With `udev: true` Supervisor shares the host's udev database, which knows labels and types.
UDEV_DATA = Path("/run/udev/data")
BY_LABEL = Path("/dev/disk/by-label")
FILESYSTEM_NAMES = {
    "ext2": "ext2",
    "ext3": "ext3",
    "ext4": "ext4",
    "exfat": "exFAT",
    "ntfs": "NTFS",
    "ntfs3": "NTFS",
    "vfat": "FAT32",
    "btrfs": "Btrfs",
    "xfs": "XFS",
    "nfs": "NFS",
    "nfs4": "NFS",
    "cifs": "SMB",
    "smb3": "SMB",
    "tmpfs": "memory (tmpfs)",
    "overlay": "the add-on's own disk",
}


@dataclass(frozen=True, kw_only=True)
class DriveStatus:
    """The storage root as the page shows it."""

    path: Path
    kind: str  # "drive", "folder" or "missing"
    source: str
    label: str | None
    filesystem: str | None
    mounted: bool
    total: int | None
    free: int | None

    @property
    def used_percent(self) -> int | None:
        """Return how full the filesystem is, in whole percent."""
        if not self.total or self.free is None:
            return None
        return round(100 * (self.total - self.free) / self.total)


@dataclass(frozen=True, kw_only=True)
class _Mount:
    device_number: str
    root: str
    source: str
    fstype: str


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return (
        field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
        .replace("\\134", "\\")
    )  # fmt: skip


def _mount_at(path: Path) -> _Mount | None:
    """Return the last mount at `path` (the one in effect), from mountinfo."""
    try:
        lines = MOUNTINFO.read_text().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        after = fields.index("-")
        if _unescape(fields[4]) == str(path) and len(fields) > after + 2:
            found = _Mount(
                device_number=fields[2],
                root=_unescape(fields[3]),
                fstype=fields[after + 1],
                source=_unescape(fields[after + 2]),
            )
    return found


def _udev_properties(device_number: str) -> dict[str, str]:
    try:
        text = (UDEV_DATA / f"b{device_number}").read_text(errors="replace")
    except OSError:
        return {}
    return dict(
        line[2:].split("=", 1)
        for line in text.splitlines()
        if line.startswith("E:") and "=" in line
    )


def _label_from_links(source: str) -> str | None:
    try:
        links = list(BY_LABEL.iterdir())
    except OSError:
        return None
    real = os.path.realpath(source)
    for link in links:
        if os.path.realpath(link) == real:
            # udev escapes unusual characters as \xNN in these names.
            return link.name.encode().decode("unicode_escape", errors="replace")
    return None


def _label_from_blkid(source: str) -> str | None:
    # Without udev's database (a container started without `udev: true`, a test machine) the
    # filesystem itself still knows its label; blkid reads it, as the mount step does.
    blkid = shutil.which("blkid")
    if blkid is None:
        return None
    try:
        found = subprocess.run(
            [blkid, "-o", "value", "-s", "LABEL", source],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None


def read_drive_status(storage: StorageRoot) -> DriveStatus:
    """Inspect the storage root; never raises (a vanished drive is a status, not an error)."""
    path = storage.path
    mount = _mount_at(path)
    kind, source, label, filesystem = "folder", str(path), None, None
    if mount is not None:
        udev = _udev_properties(mount.device_number)
        fstype = udev.get("ID_FS_TYPE") or mount.fstype
        filesystem = FILESYSTEM_NAMES.get(fstype, fstype)
        if mount.source.startswith("/dev/") and mount.root == "/":
            kind, source = "drive", mount.source
            label = (
                udev.get("ID_FS_LABEL")
                or _label_from_links(mount.source)
                or _label_from_blkid(mount.source)
            )
        else:
            # A bind-mounted folder (the `folder` option) or network storage.
            source = mount.root if mount.root != "/" else mount.source
    elif storage.require_mount:
        kind = "missing"
    total = free = None
    if kind != "missing":
        try:
            usage = os.statvfs(path)
        except OSError:
            kind = "missing"
        else:
            # fusefat reports no fragment size; the block size is the unit then.
            unit = usage.f_frsize or usage.f_bsize
            total, free = unit * usage.f_blocks, unit * usage.f_bavail
    return DriveStatus(
        path=path,
        kind=kind,
        source=source,
        label=label,
        filesystem=filesystem,
        mounted=mount is not None,
        total=total,
        free=free,
    )
