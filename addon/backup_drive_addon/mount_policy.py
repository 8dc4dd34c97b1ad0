"""Decide whether a drive may be mounted: never a disk the system itself uses."""

from __future__ import annotations

from pathlib import Path

from backup_drive_addon.drive_probe import SYS_BLOCK, Partition, parent_disk, partitions_of, probe
from backup_drive_addon.storage_error import StorageError
from backup_drive_server.mount_table import MountEntry, read_mounts

# Home Assistant OS names its own partitions like this; a disk holding one is the system disk.
SYSTEM_LABEL_PREFIX = "hassos-"
SWAPS = Path("/proc/swaps")


def _disk_family(disk: str) -> set[str]:
    """Return the names of whole disk `disk` and of its partitions."""
    return {disk, *partitions_of(disk)}


def _mounts_of(family: set[str]) -> list[tuple[str, MountEntry]]:
    """Return every mount of a device in `family`, with the name of that device."""
    devnos = {}
    for member in family:
        try:
            devnos[(SYS_BLOCK / member / "dev").read_text().strip()] = member
        except OSError:
            continue
    paths = {str(Path("/dev") / name): name for name in family}
    found = []
    for entry in read_mounts():
        name = devnos.get(entry.devno) or paths.get(_resolved(entry.source))
        if name is not None:
            found.append((name, entry))
    return found


def _resolved(source: str) -> str:
    """Resolve a /dev path given as a mount source; other sources stay as they are."""
    return str(Path(source).resolve()) if source.startswith("/dev/") else source


def _is_storage_mount(name: str, entry: MountEntry, part: Partition, mount_point: Path) -> bool:
    """Tell whether a mount of device `name` is `part` mounted as the storage."""
    return entry.mount_point == str(mount_point) and name == part.name


def is_already_ours(part: Partition, mount_point: Path) -> bool:
    """Return whether `part` is already mounted as the storage at `mount_point`."""
    return any(
        _is_storage_mount(name, entry, part, mount_point)
        for name, entry in _mounts_of(_disk_family(parent_disk(part.name)))
    )


def refuse_disk_in_use(part: Partition, mount_point: Path) -> None:
    """Raise StorageError when the system uses the disk `part` is on (our own mount aside)."""
    disk = parent_disk(part.name)
    family = _disk_family(disk)
    for name, entry in _mounts_of(family):
        if _is_storage_mount(name, entry, part, mount_point):
            continue
        raise StorageError(
            f"The disk {disk} is in use by the system: /dev/{name} is mounted at "
            f"{entry.mount_point}. Backup Drive never touches a disk the system uses.",
            "Choose the USB drive meant for backups (not the disk Home Assistant runs from).",
        )
    for name in sorted(family):
        holders = SYS_BLOCK / name / "holders"
        if holders.is_dir() and any(holders.iterdir()):
            raise StorageError(
                f"/dev/{name} is part of a RAID or LVM volume.",
                "Choose a drive that is not part of another volume.",
            )
        label = probe(Path("/dev") / name).label or ""
        if label.startswith(SYSTEM_LABEL_PREFIX):
            raise StorageError(
                f"The disk {disk} holds the Home Assistant OS partition {label!r}.",
                "Choose the USB drive meant for backups, not the system disk.",
            )
    if SWAPS.is_file():
        for line in SWAPS.read_text().splitlines()[1:]:
            swap_name = Path(_resolved(line.split()[0])).name
            if swap_name in family:
                raise StorageError(
                    f"/dev/{swap_name} is used as swap space.",
                    "Choose the USB drive meant for backups.",
                )
