"""Bind-mount the chosen folder where the server keeps its storage, as if it were a drive."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from backup_drive_addon.mount_point import (
    MountedStorage,
    enforce_safe_options,
    prepare_mount_point,
    ready_storage,
)
from backup_drive_addon.storage_error import StorageError
from backup_drive_addon.system_tools import run_tool
from backup_drive_server.mount_table import mount_at

_LOGGER = logging.getLogger(__name__)

DEFAULT_FOLDER_ROOTS = (Path("/share"), Path("/media"))
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3"}


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
    prepare_mount_point(mount_point)
    if mount_at(mount_point) is None:
        result = run_tool(["mount", "--bind", str(folder), str(mount_point)])
        if result.returncode != 0:
            raise StorageError(
                f"Cannot use the folder {folder}: {(result.stderr or result.stdout).strip()}",
                "Check that the add-on is allowed to mount (its AppArmor profile and "
                "SYS_ADMIN privilege), then restart it.",
            )
        enforce_safe_options(mount_point)
    entry = mount_at(mount_point)
    fstype = entry.fstype if entry else "unknown"
    storage = ready_storage(mount_point, source=str(folder), fstype=fstype, driver="bind")
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
