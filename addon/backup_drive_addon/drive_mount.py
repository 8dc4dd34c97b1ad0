"""Mount the chosen USB drive (or bind the chosen folder) where the server keeps its storage."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backup_drive_server.settings import BACKUPS_FOLDER

_LOGGER = logging.getLogger(__name__)

SYS_BLOCK = Path("/sys/class/block")
MOUNTINFO = Path("/proc/self/mountinfo")
DEFAULT_FOLDER_ROOTS = (Path("/share"), Path("/media"))

# Nothing on a backup drive is meant to run, and device files on it must not open host devices.
SAFE_OPTIONS = ("nosuid", "nodev", "noexec", "noatime")

# Kernel drivers first; FUSE drivers are the fallback where the kernel lacks one (NTFS and exFAT
# on older kernels, FAT on this project's CI machines). The kernel's old "ntfs" driver is
# read-only, so it is never tried.
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
FILESYSTEM_NAMES = {
    "ext2": "ext2",
    "ext3": "ext3",
    "ext4": "ext4",
    "exfat": "exFAT",
    "ntfs": "NTFS",
    "vfat": "FAT32",
}
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3"}
# Home Assistant OS names its own partitions like this; a disk holding one is the system disk.
SYSTEM_LABEL_PREFIX = "hassos-"


class StorageError(Exception):
    """The storage cannot be used; `hint` tells the user what to do about it."""

    def __init__(self, message: str, hint: str) -> None:
        """Keep what went wrong and what to do apart, so the log can show both."""
        super().__init__(message)
        self.message = message
        self.hint = hint


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


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a system tool, capturing its output for the log."""
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)


def _blkid_probe(device: Path) -> dict[str, str]:
    """Read TYPE, LABEL, UUID of `device` straight from the disk (no cache)."""
    result = _run(["blkid", "-p", "-o", "export", str(device)])
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
        result = _run(["blkid", "-t", f"{key.upper()}={value}", "-o", "device"])
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


def _partitions_of(disk: str) -> list[str]:
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


def _parent_disk(name: str) -> str:
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
    names = _partitions_of(device.name)
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
    supported = [part for part in candidates if part.fstype in KERNEL_DRIVERS]
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
    if part.fstype not in KERNEL_DRIVERS:
        raise StorageError(
            f"{part.describe()} holds a {part.fstype} filesystem, which Backup Drive does not "
            "support.",
            "Use a drive formatted as ext4, exFAT, NTFS or FAT32 (exFAT works on Windows, "
            "macOS and Linux).",
        )


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    devno: str
    mount_point: str
    flags: frozenset[str]
    fstype: str
    source: str


def _mounts() -> list[MountEntry]:
    """Parse /proc/self/mountinfo."""
    entries = []
    for line in MOUNTINFO.read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        entries.append(
            MountEntry(
                devno=fields[2],
                mount_point=_unescape(fields[4]),
                flags=frozenset(fields[5].split(",")),
                fstype=fields[separator + 1],
                source=_unescape(fields[separator + 2]),
            )
        )
    return entries


def _unescape(field: str) -> str:
    r"""Undo mountinfo's octal escapes (`\040` for a space)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounted_source(mount_point: Path) -> MountEntry | None:
    """Return what is mounted at `mount_point` (the topmost mount), if anything."""
    target = str(mount_point)
    found = None
    for entry in _mounts():
        if entry.mount_point == target:
            found = entry
    return found


def check_not_in_use(part: Partition, mount_point: Path) -> bool:
    """Refuse a disk the system uses; return True when `part` is already our storage."""
    disk = _parent_disk(part.name)
    family = {disk, *_partitions_of(disk)}
    devnos = {}
    for member in family:
        try:
            devnos[(SYS_BLOCK / member / "dev").read_text().strip()] = member
        except OSError:
            continue
    paths = {str(Path("/dev") / name): name for name in family}
    ours = False
    for entry in _mounts():
        name = devnos.get(entry.devno) or paths.get(_resolved(entry.source))
        if name is None:
            continue
        if entry.mount_point == str(mount_point) and name == part.name:
            ours = True
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
    swaps = Path("/proc/swaps")
    if swaps.is_file():
        for line in swaps.read_text().splitlines()[1:]:
            swap_name = Path(_resolved(line.split()[0])).name
            if swap_name in family:
                raise StorageError(
                    f"/dev/{swap_name} is used as swap space.",
                    "Choose the USB drive meant for backups.",
                )
    return ours


def _resolved(source: str) -> str:
    """Resolve a /dev path given as a mount source; other sources stay as they are."""
    return str(Path(source).resolve()) if source.startswith("/dev/") else source


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
        result = _run(
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
        if not _which(program):
            continue
        options = ",".join(SAFE_OPTIONS)
        result = _run([program, *extra, "-o", options, str(part.path), str(mount_point)])
        if result.returncode == 0 and mounted_source(mount_point) is not None:
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


def _which(program: str) -> bool:
    """Tell whether `program` can be run (also from the sbin folders)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(program, path=search) is not None


def _enforce_safe_options(mount_point: Path) -> None:
    """Make sure nothing on the storage can run or act as a device, whatever the driver did."""
    # FUSE drivers (exfat-fuse) drop some options; a bind remount sets the per-mount flags.
    options = ",".join(SAFE_OPTIONS)
    _run(["mount", "-o", f"remount,bind,{options}", str(mount_point)])
    entry = mounted_source(mount_point)
    missing = {"nosuid", "nodev", "noexec"} - (entry.flags if entry else frozenset())
    if missing:
        _run(["umount", str(mount_point)])
        raise StorageError(
            f"The storage at {mount_point} could not be mounted with {', '.join(sorted(missing))}.",
            "Check that the add-on is allowed to mount (its AppArmor profile), then restart it.",
        )


def _prepare_mount_point(mount_point: Path) -> None:
    """Create the mount point as an empty folder nobody may write into."""
    mount_point.mkdir(parents=True, exist_ok=True)
    # Without the drive the folder must stay empty: the server refuses it (--require-mount), and
    # mode 000 stops anything but root from writing into the container's own disk here.
    if mounted_source(mount_point) is None:
        if any(mount_point.iterdir()):
            raise StorageError(
                f"The mount point {mount_point} is not empty.",
                "This is a bug in the add-on's image; please report it.",
            )
        mount_point.chmod(0)


def mount_drive(spec: str, mount_point: Path) -> MountedStorage:
    """Mount the drive `spec` read-write at `mount_point` and prepare the backups folder."""
    mount_point = Path(os.path.realpath(mount_point))
    device = resolve_device(spec)
    part = choose_partition(device)
    already = check_not_in_use(part, mount_point)
    _LOGGER.info(
        "Drive: %s, %s, %s",
        part.describe(),
        FILESYSTEM_NAMES[part.fstype],
        human_size(part.size),
    )
    if already:
        driver = "already mounted"
    else:
        _prepare_mount_point(mount_point)
        if mounted_source(mount_point) is not None:
            raise StorageError(
                f"Something else is already mounted at {mount_point}.",
                "Restart the add-on.",
            )
        driver = _try_mount(part, mount_point)
        _enforce_safe_options(mount_point)
    storage = _finish(mount_point, source=part.describe(), fstype=part.fstype, driver=driver)
    if part.fstype == "vfat":
        _LOGGER.warning(
            "FAT32 cannot hold files larger than 4 GB: backups bigger than that will fail. "
            "Format the drive as exFAT or ext4 to lift the limit."
        )
    return storage


def use_folder(
    folder: Path,
    mount_point: Path,
    allowed_roots: tuple[Path, ...] = DEFAULT_FOLDER_ROOTS,
) -> MountedStorage:
    """Bind-mount `folder` at `mount_point`, so the server treats it like a drive."""
    mount_point = Path(os.path.realpath(mount_point))
    folder = Path(os.path.normpath(folder))
    if not folder.is_absolute() or not any(
        folder != root and folder.is_relative_to(root) for root in allowed_roots
    ):
        roots = " or ".join(str(root) for root in allowed_roots)
        raise StorageError(
            f"The folder {folder} is not inside {roots}.",
            f"Choose a USB drive, or set the folder option to a folder inside {roots} "
            f"(for example {allowed_roots[0]}/backup_drive).",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(
            f"Cannot create the folder {folder}: {err.strerror}.",
            "Choose another folder, or check the network storage it lives on.",
        ) from err
    _prepare_mount_point(mount_point)
    if mounted_source(mount_point) is None:
        result = _run(["mount", "--bind", str(folder), str(mount_point)])
        if result.returncode != 0:
            raise StorageError(
                f"Cannot use the folder {folder}: {(result.stderr or result.stdout).strip()}",
                "Check that the add-on is allowed to mount (its AppArmor profile and "
                "SYS_ADMIN privilege), then restart it.",
            )
        _enforce_safe_options(mount_point)
    entry = mounted_source(mount_point)
    fstype = entry.fstype if entry else "unknown"
    storage = _finish(mount_point, source=str(folder), fstype=fstype, driver="bind")
    if fstype not in NETWORK_FILESYSTEMS:
        # Home Assistant's own backups include /share and /media (network storage excepted):
        # each backup would then carry all the earlier ones.
        _LOGGER.warning(
            "%s is on Home Assistant's own disk, and Home Assistant's backups include it: "
            "in the backup settings leave out the %s folder, or each backup will contain the "
            "earlier ones. A USB drive or network storage is the safer place.",
            folder,
            folder.relative_to(folder.anchor).parts[0],
        )
    return storage


def _finish(mount_point: Path, *, source: str, fstype: str, driver: str) -> MountedStorage:
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
    if driver not in {fstype, "already mounted"}:
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
    if mounted_source(mount_point) is None:
        return False
    os.sync()
    result = _run(["umount", str(mount_point)])
    if result.returncode != 0:
        # A client may still hold a file open; detach now, the kernel finishes when it closes.
        result = _run(["umount", "-l", str(mount_point)])
        if result.returncode != 0:
            raise StorageError(
                f"Cannot unmount {mount_point}: {(result.stderr or result.stdout).strip()}",
                "Stop the add-on before unplugging the drive.",
            )
    _LOGGER.info("Released the storage at %s (a drive can be unplugged now)", mount_point)
    return True
