"""The storage step on real block devices: filesystem images attached as loop devices."""

from __future__ import annotations

import os
import secrets
import signal
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from tests.addon.conftest import ToolRunner
from tests.backup_target import HOMEASSISTANT_USER, BackupTarget
from tests.peers import require_root, require_tool
from tests.server.conftest import dav, sftp_client

MiB = 1024 * 1024
NAMES = {"ext4": "ext4", "exfat": "exFAT", "ntfs": "NTFS", "vfat": "FAT32"}
# Where each filesystem's tools come from, and the FUSE driver used when the kernel has none.
MKFS = {
    "ext4": ("mkfs.ext4", "e2fsprogs"),
    "exfat": ("mkfs.exfat", "exfatprogs"),
    "ntfs": ("mkfs.ntfs", "ntfs-3g"),
    "vfat": ("mkfs.vfat", "dosfstools"),
}
KERNEL_TYPE = {"ext4": "ext4", "exfat": "exfat", "ntfs": "ntfs3", "vfat": "vfat"}
FUSE = {
    "exfat": ("mount.exfat-fuse", "exfat-fuse"),
    "ntfs": ("ntfs-3g", "ntfs-3g"),
    "vfat": ("fusefat", "fusefat"),
}


def kernel_has(fstype: str) -> bool:
    """Tell whether this kernel mounts `fstype` itself."""
    listed = Path("/proc/filesystems").read_text().split()
    return fstype in listed


def require_filesystem(fs: str) -> None:
    """Fail (or skip when opted out) unless `fs` can be made and mounted on this machine."""
    require_root("loop devices and mount")
    require_tool("losetup", "mount")
    require_tool(*MKFS[fs])
    if kernel_has(KERNEL_TYPE[fs]):
        return
    # No kernel driver here: the storage step falls back to FUSE, so the test does too.
    require_tool(*FUSE[fs])
    if not Path("/dev/fuse").exists():
        require_tool("/dev/fuse", "fuse3 (and a kernel with FUSE)")


def mkfs(fs: str, target: Path, label: str) -> None:
    """Make filesystem `fs` labelled `label` on `target` (an image file or a device)."""
    commands = {
        "ext4": ["mkfs.ext4", "-q", "-F", "-L", label, str(target)],
        "exfat": ["mkfs.exfat", "-L", label, str(target)],
        "ntfs": ["mkfs.ntfs", "-q", "-F", "-Q", "-L", label, str(target)],
        "vfat": ["mkfs.vfat", "-F", "32", "-n", label, str(target)],
    }
    subprocess.run(commands[fs], check=True, capture_output=True)


def blkid_value(device: Path, key: str) -> str:
    """Read one value (LABEL, UUID, TYPE) straight from the device."""
    result = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", key, str(device)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return result.stdout.strip()


def write_mbr(image: Path, partitions: list[tuple[int, int, int]]) -> None:
    """Write an MBR partition table: (first sector, sector count, type) per partition."""
    table = bytearray(512)
    for index, (start, count, kind) in enumerate(partitions):
        entry = struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", kind, b"\xfe\xff\xff", start, count)
        table[446 + 16 * index : 446 + 16 * (index + 1)] = entry
    table[510:512] = b"\x55\xaa"
    with image.open("r+b") as handle:
        handle.write(table)


@dataclass(frozen=True)
class LoopDrive:
    """An image file attached as a loop device."""

    image: Path
    device: Path

    def partition(self, number: int) -> Path:
        """Return the device node of partition `number`."""
        return Path(f"{self.device}p{number}")


def mounts_under(folder: Path) -> list[str]:
    """List mount points at or below `folder`, deepest last."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(folder) or point.startswith(f"{folder}/"):
            points.append(point)
    return points


def mounted_at(mount_point: Path) -> str | None:
    """Return the mount options of what is mounted at `mount_point`, if anything."""
    found = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(mount_point):
            found = fields[5]
    return found


@pytest.fixture
def drives(tmp_path: Path) -> Iterator[Callable[..., LoopDrive]]:
    """Attach images as loop devices; everything is unmounted and detached afterwards."""
    require_root("loop devices and mount")
    attached: list[LoopDrive] = []

    def attach(size: int = 64 * MiB, partitions: list[tuple[int, int, int]] | None = None
               ) -> LoopDrive:  # fmt: skip
        image = tmp_path / f"drive-{len(attached)}.img"
        with image.open("wb") as handle:
            handle.truncate(size)
        args = ["losetup", "--find", "--show"]
        if partitions:
            write_mbr(image, partitions)
            args.append("--partscan")
        device = subprocess.run(
            [*args, str(image)], capture_output=True, text=True, check=True
        ).stdout.strip()
        drive = LoopDrive(image, Path(device))
        attached.append(drive)
        if partitions and not drive.partition(1).exists():
            # Kernels built without partition-table parsers (some VM kernels) still accept
            # partitions that partx declares.
            subprocess.run([require_tool("partx", "util-linux"), "-a", device], check=False)
        for number in range(1, len(partitions or []) + 1):
            # devtmpfs creates the partition nodes right after the scan.
            deadline = time.monotonic() + 30
            while not drive.partition(number).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert drive.partition(number).exists(), f"{drive.partition(number)} did not appear"
        return drive

    yield attach
    for point in reversed(mounts_under(tmp_path)):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    for drive in attached:
        subprocess.run(["partx", "-d", str(drive.device)], check=False, capture_output=True)
        subprocess.run(["losetup", "-d", str(drive.device)], check=False, capture_output=True)


# A 96 MiB disk with a 24 MiB and a 68 MiB Linux partition.
TWO_PARTITIONS = [(2048, 24 * 2048, 0x83), (26 * 2048, 68 * 2048, 0x83)]


def two_partition_disk(drives: Callable[..., LoopDrive], *labels: str | None) -> LoopDrive:
    """Attach a partitioned disk; make ext4 with each given label (None leaves it empty)."""
    drive = drives(96 * MiB, TWO_PARTITIONS)
    for number, label in enumerate(labels, start=1):
        if label is not None:
            mkfs("ext4", drive.partition(number), label)
    return drive


def new_label() -> str:
    """A label no other drive on this machine has (FAT allows 11 upper-case characters)."""
    return f"BD{secrets.token_hex(4).upper()}"


def formatted_drive(drives: Callable[..., LoopDrive], fs: str) -> tuple[LoopDrive, str]:
    """Attach a new drive made `fs` with a fresh label; return the drive and its label."""
    label = new_label()
    drive = drives()
    mkfs(fs, drive.device, label)
    return drive, label


def mount_storage(run_tool: ToolRunner, device: str, mount_point: Path
                  ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the storage step as rootfs/etc/s6-overlay/scripts/init-storage.sh does."""
    return run_tool("mount-storage", "--device", device, "--mount-point", str(mount_point))


def serve_mount(mount_point: Path, data_dir: Path) -> BackupTarget:
    """Start the server on a mount point as the add-on does: it refuses to serve once unmounted."""
    return BackupTarget(
        storage=mount_point, data_dir=data_dir, extra_args=["--require-mount"]
    ).start()


def mount_and_serve(
    run_tool: ToolRunner, device: str, mount_point: Path, data_dir: Path
) -> BackupTarget:
    """Run the storage step for `device`, then start the server on what it mounted."""
    mounted = mount_storage(run_tool, device, mount_point)
    assert mounted.returncode == 0, mounted.stderr
    return serve_mount(mount_point, data_dir)


def release_storage(run_tool: ToolRunner, mount_point: Path) -> None:
    """Run the stop step (init-storage's `down`)."""
    result = run_tool("release-storage", "--mount-point", str(mount_point))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("fs", ["ext4", "exfat", "ntfs", "vfat"])
def test_mounts_by_label_and_uuid(
    fs: str, drives: Callable[..., LoopDrive], run_tool: ToolRunner, tmp_path: Path
) -> None:
    require_filesystem(fs)
    drive, label = formatted_drive(drives, fs)
    uuid = blkid_value(drive.device, "UUID")
    mount_point = tmp_path / "backup_drive"

    first = mount_storage(run_tool, f"LABEL={label}", mount_point)
    assert first.returncode == 0, first.stderr
    assert f'Drive: {drive.device}, label "{label}", UUID {uuid}, {NAMES[fs]}, 67.1 MB' in (
        first.stderr
    )
    assert f"Storage ready at {mount_point}: " in first.stderr
    assert " free" in first.stderr
    options = mounted_at(mount_point)
    assert options is not None
    assert {"rw", "nosuid", "nodev", "noexec"} <= set(options.split(","))
    assert (mount_point / "backups").is_dir()
    (mount_point / "backups" / "proof.tar").write_bytes(b"on the drive")
    release_storage(run_tool, mount_point)
    assert mounted_at(mount_point) is None
    # Without the drive the mount point is an empty folder nobody but root may enter.
    assert os.listdir(mount_point) == []
    assert mount_point.stat().st_mode & 0o777 == 0

    again = mount_storage(run_tool, f"UUID={uuid}", mount_point)
    assert again.returncode == 0, again.stderr
    assert (mount_point / "backups" / "proof.tar").read_bytes() == b"on the drive"
    release_storage(run_tool, mount_point)


def test_webdav_root_is_named_after_the_drive_label(
    drives: Callable[..., LoopDrive], run_tool: ToolRunner, tmp_path: Path
) -> None:
    """File managers show the WebDAV root by the mounted drive's label, with no flag given."""
    drive, label = formatted_drive(drives, "ext4")
    mount_point = tmp_path / "backup_drive"
    target = mount_and_serve(run_tool, str(drive.device), mount_point, tmp_path / "data")
    try:
        response = dav(
            target,
            "PROPFIND",
            "/",
            auth=(HOMEASSISTANT_USER, target.password),
            headers={"Depth": "0"},
        )
        assert response.status == 207, response.text
        assert f"displayname>{label}<" in response.text
    finally:
        target.stop()
        release_storage(run_tool, mount_point)


def test_fat32_warns_about_the_4_gb_limit(
    drives: Callable[..., LoopDrive], run_tool: ToolRunner, tmp_path: Path
) -> None:
    require_filesystem("vfat")
    drive, _ = formatted_drive(drives, "vfat")
    result = mount_storage(run_tool, str(drive.device), tmp_path / "mnt")
    assert result.returncode == 0, result.stderr
    assert "FAT32 cannot hold files larger than 4 GB" in result.stderr
    release_storage(run_tool, tmp_path / "mnt")


def test_whole_disk_uses_its_largest_partition(
    drives: Callable[..., LoopDrive], run_tool: ToolRunner, tmp_path: Path
) -> None:
    require_filesystem("ext4")
    small, large = new_label(), new_label()
    drive = two_partition_disk(drives, small, large)
    mount_point = tmp_path / "backup_drive"
    result = mount_storage(run_tool, str(drive.device), mount_point)
    assert result.returncode == 0, result.stderr
    assert f'Drive: {drive.partition(2)}, label "{large}"' in result.stderr
    assert f"using the largest, {drive.partition(2)}" in result.stderr
    assert f"also found: {drive.partition(1)}" in result.stderr
    release_storage(run_tool, mount_point)


def test_whole_disk_with_one_filesystem(
    drives: Callable[..., LoopDrive], run_tool: ToolRunner, tmp_path: Path
) -> None:
    require_filesystem("ext4")
    drive = two_partition_disk(drives, new_label(), None)
    result = mount_storage(run_tool, str(drive.device), tmp_path / "mnt")
    assert result.returncode == 0, result.stderr
    assert f"Drive: {drive.partition(1)}," in result.stderr
    assert "several usable partitions" not in result.stderr
    release_storage(run_tool, tmp_path / "mnt")


def test_whole_disk_without_its_partition_nodes(
    drives: Callable[..., LoopDrive], run_tool: ToolRunner, tmp_path: Path
) -> None:
    # In the add-on container only the chosen device exists under /dev, not its partitions.
    require_filesystem("ext4")
    drive = two_partition_disk(drives, new_label(), None)
    drive.partition(1).unlink()
    drive.partition(2).unlink()
    result = mount_storage(run_tool, str(drive.device), tmp_path / "mnt")
    assert result.returncode == 1
    assert f"The add-on can only reach {drive.device}, not the partitions on it" in result.stderr
    assert "ends in -part1" in result.stderr
    assert mounted_at(tmp_path / "mnt") is None


def test_refuses_a_disk_the_system_uses(
    drives: Callable[..., LoopDrive], run_tool: ToolRunner, tmp_path: Path
) -> None:
    require_filesystem("ext4")
    drive = two_partition_disk(drives, new_label(), new_label())
    # The "system" has the first partition mounted; the second belongs to the same disk.
    system = tmp_path / "system"
    system.mkdir()
    subprocess.run(["mount", str(drive.partition(1)), str(system)], check=True)
    mount_point = tmp_path / "backup_drive"
    for device in (drive.partition(2), drive.partition(1), drive.device):
        result = mount_storage(run_tool, str(device), mount_point)
        assert result.returncode == 1, result.stderr
        assert (
            f"FATAL: The disk {drive.device.name} is in use by the system: "
            f"{drive.partition(1)} is mounted at {system}"
        ) in result.stderr
        assert "Choose the USB drive meant for backups" in result.stderr
        assert mounted_at(mount_point) is None


def test_refuses_the_home_assistant_os_disk(
    drives: Callable[..., LoopDrive], run_tool: ToolRunner, tmp_path: Path
) -> None:
    require_filesystem("ext4")
    drive = two_partition_disk(drives, "hassos-data", new_label())
    result = mount_storage(run_tool, str(drive.partition(2)), tmp_path / "mnt")
    assert result.returncode == 1
    assert "holds the Home Assistant OS partition 'hassos-data'" in result.stderr
    assert mounted_at(tmp_path / "mnt") is None


UNUSABLE = {
    "nothing": ("has no ext4, exFAT, NTFS or FAT32 filesystem", "Format the drive"),
    "swap": ("holds a swap filesystem, which Backup Drive does not support", "exFAT works"),
    "missing": ("is not attached", "Plug the drive in"),
    "unknown-label": ("No attached drive has a filesystem with label", "plugged in"),
}


@pytest.mark.parametrize("prepare", sorted(UNUSABLE))
def test_explains_drives_it_cannot_use(
    prepare: str, drives: Callable[..., LoopDrive], run_tool: ToolRunner, tmp_path: Path
) -> None:
    message, hint = UNUSABLE[prepare]
    require_filesystem("ext4")
    device = "/dev/disk/by-id/usb-Nothing_Here_0000-0:0"
    if prepare in {"nothing", "swap"}:
        drive = drives()
        device = str(drive.device)
        if prepare == "swap":
            subprocess.run(["mkswap", device], check=True, capture_output=True)
    elif prepare == "unknown-label":
        device = f"LABEL={new_label()}"
    result = mount_storage(run_tool, device, tmp_path / "mnt")
    assert result.returncode == 1
    fatal = [line for line in result.stderr.splitlines() if "FATAL: " in line]
    assert len(fatal) == 2, result.stderr
    assert message in fatal[0]
    assert hint in fatal[1]
    assert mounted_at(tmp_path / "mnt") is None


def test_folder_storage(run_tool: ToolRunner, tmp_path: Path) -> None:
    require_root("bind mounts")
    # A separate filesystem plays /share, as it is in the add-on container.
    share = tmp_path / "share"
    share.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(share)], check=True)
    mount_point = tmp_path / "backup_drive"
    try:
        outside = run_tool(
            "mount-storage", "--folder", str(tmp_path / "elsewhere"),
            "--folder-root", str(share), "--mount-point", str(mount_point),
        )  # fmt: skip
        assert outside.returncode == 1
        assert f"The folder {tmp_path / 'elsewhere'} is not inside {share}" in outside.stderr

        result = run_tool(
            "mount-storage", "--folder", str(share / "backup_drive"),
            "--folder-root", str(share), "--mount-point", str(mount_point),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"using the folder {share / 'backup_drive'}" in result.stderr
        assert "Home Assistant's backups include it" in result.stderr
        assert {"nosuid", "nodev", "noexec"} <= set((mounted_at(mount_point) or "").split(","))
        target = serve_mount(mount_point, tmp_path / "data")
        try:
            put = dav(target, "PUT", "/backups/a.tar", auth=("homeassistant", target.password),
                      body=b"backup")  # fmt: skip
            assert put.status == 201, put.text
        finally:
            target.stop()
        assert (share / "backup_drive" / "backups" / "a.tar").read_bytes() == b"backup"
        release_storage(run_tool, mount_point)
    finally:
        for point in reversed(mounts_under(tmp_path)):
            subprocess.run(["umount", "-l", point], check=False)


async def sftp_upload_error(target: BackupTarget, path: str, data: bytes) -> Exception | None:
    """Upload over SFTP; return the error the server answered with, None on success."""
    try:
        async with sftp_client(target) as sftp, sftp.open(path, "wb") as handle:
            await handle.write(data)
    except (asyncssh.SFTPError, OSError) as err:
        return err
    return None


async def sftp_names(target: BackupTarget, path: str) -> list[str]:
    """List a folder over SFTP."""
    async with sftp_client(target) as sftp:
        return sorted(name for name in await sftp.listdir(path) if name not in {".", ".."})


async def check_drive_is_gone(
    target: BackupTarget, mount_point: Path, dav_statuses: set[int]
) -> None:
    """Every way in answers with an error; nothing lands under the empty mount point."""
    error = await sftp_upload_error(target, "/backups/after.tar", b"must not land anywhere")
    assert isinstance(error, asyncssh.SFTPError), error
    assert "not mounted" in error.reason or "not connected" in error.reason, error.reason
    with pytest.raises(asyncssh.SFTPError):
        await sftp_names(target, "/backups")
    auth = ("homeassistant", target.password)
    put = dav(target, "PUT", "/backups/after-dav.tar", auth=auth, body=b"must not land")
    assert put.status in dav_statuses, (put.status, put.text)
    listing = dav(target, "PROPFIND", "/backups/", auth=auth, headers={"Depth": "1"})
    assert listing.status >= 400, listing.status
    assert target.process is not None
    assert target.process.poll() is None, "the server must keep running"


@pytest.mark.parametrize("fs", ["ext4", "exfat", "ntfs", "vfat"])
async def test_serves_the_drive_and_survives_its_disappearance(
    fs: str, drives: Callable[..., LoopDrive], run_tool: ToolRunner, tmp_path: Path
) -> None:
    require_filesystem(fs)
    drive, label = formatted_drive(drives, fs)
    mount_point = tmp_path / "backup_drive"
    target = mount_and_serve(run_tool, f"LABEL={label}", mount_point, tmp_path / "data")
    try:
        assert await sftp_upload_error(target, "/backups/a.tar", b"over sftp") is None
        auth = ("homeassistant", target.password)
        put = dav(target, "PUT", "/backups/b.tar", auth=auth, body=b"over webdav")
        assert put.status == 201, put.text
        assert (mount_point / "backups" / "a.tar").read_bytes() == b"over sftp"

        # Unplugged: the kernel drops the mount and the device goes away.
        subprocess.run(["umount", "-l", str(mount_point)], check=True)
        subprocess.run(["losetup", "-d", str(drive.device)], check=True)
        await check_drive_is_gone(target, mount_point, {503})
        assert os.listdir(mount_point) == [], "nothing may land on the container's own disk"

        # Plugged back in and mounted again: the same server serves it without a restart.
        device = subprocess.run(
            ["losetup", "--find", "--show", str(drive.image)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        try:
            again = mount_storage(run_tool, f"LABEL={label}", mount_point)
            assert again.returncode == 0, again.stderr
            assert await sftp_names(target, "/backups") == ["a.tar", "b.tar"]
            release_storage(run_tool, mount_point)
        finally:
            subprocess.run(["losetup", "-d", device], check=False)
    finally:
        target.stop()


def fuse_daemon(mount_point: Path) -> int | None:
    """Return the pid of the FUSE driver serving `mount_point` (started by this test)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(mount_point).encode() in argv and any(b"fuse" in arg or b"ntfs-3g" in arg
                                                    for arg in argv[:1]):  # fmt: skip
            return int(entry.name)
    return None


async def test_a_dead_fuse_driver_gives_errors_not_a_crash(
    drives: Callable[..., LoopDrive], tmp_path: Path
) -> None:
    require_filesystem("exfat")
    # Mounted through FUSE by hand: the storage step prefers the kernel's exFAT, which most
    # kernels have, and then this test would never run. The FUSE driver dying is its subject.
    fuse_driver = require_tool(*FUSE["exfat"])
    if not Path("/dev/fuse").exists():
        require_tool("/dev/fuse", "fuse3 (and a kernel with FUSE)")
    drive, _ = formatted_drive(drives, "exfat")
    mount_point = tmp_path / "backup_drive"
    mount_point.mkdir()
    subprocess.run([fuse_driver, str(drive.device), str(mount_point)], check=True)
    target = serve_mount(mount_point, tmp_path / "data")
    try:
        assert await sftp_upload_error(target, "/backups/a.tar", b"before") is None
        pid = fuse_daemon(mount_point)
        assert pid is not None, "the exFAT FUSE driver is not running"
        # The driver dies as it does when the drive is pulled: the mount stays, every access
        # fails with "Transport endpoint is not connected".
        os.kill(pid, signal.SIGKILL)
        # wsgidav looks the parent folder up before the server's mount check runs: 409.
        await check_drive_is_gone(target, mount_point, {409, 503})
    finally:
        target.stop()
