"""Read what is mounted where from the kernel's mount table, /proc/self/mountinfo.

Shared by the server (--require-mount) and the add-on's drive code; it lives in the server
package because the server must not import backup_drive_addon.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    devno: str
    mount_point: str
    flags: frozenset[str]
    fstype: str
    source: str


def read_mounts() -> list[MountEntry]:
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


def mount_at(mount_point: Path) -> MountEntry | None:
    """Return what is mounted at `mount_point` (the topmost mount), if anything."""
    target = str(mount_point)
    found = None
    for entry in read_mounts():
        if entry.mount_point == target:
            found = entry
    return found
