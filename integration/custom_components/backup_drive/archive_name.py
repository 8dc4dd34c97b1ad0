"""Names on the drive: a backup's archive is always one plain file inside the backup folder."""

from __future__ import annotations

import re
from typing import Final

from .errors import InvalidBackupId
from .sidecar import sidecar_name
from .upload import staging_name

ARCHIVE_SUFFIX: Final = ".tar"
# ext4, exFAT and NTFS allow 255 bytes (or UTF-16 units) in a name. The staging name a file is
# written under first is longer than the final one and must fit as well.
NAME_MAX: Final = 255
MAX_NAME_BYTES: Final = NAME_MAX - (len(staging_name("x").encode()) - len("x"))
# Separators, control characters (NUL included) and what exFAT and NTFS drives refuse.
UNSAFE_CHARACTERS: Final = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
FALLBACK_STEM: Final = "backup"


def plain_file_name(suggested: str) -> str:
    """Return `suggested` as a visible file name of the folder itself: no path, fits the drive."""
    name = UNSAFE_CHARACTERS.sub("_", suggested).strip()
    stem = name.removesuffix(ARCHIVE_SUFFIX) if name.endswith(ARCHIVE_SUFFIX) else name
    # A leading dot hides the file, and "." or ".." would name a folder.
    stem = stem.lstrip(". ") or FALLBACK_STEM
    room = MAX_NAME_BYTES - len(ARCHIVE_SUFFIX)
    stem = stem.encode()[:room].decode(errors="ignore").rstrip()
    return f"{stem}{ARCHIVE_SUFFIX}"


def check_backup_id(backup_id: str) -> None:
    """Raise InvalidBackupId unless the id can name a metadata file in the folder."""
    if not backup_id or UNSAFE_CHARACTERS.search(backup_id) or backup_id in (".", ".."):
        raise InvalidBackupId(f"The backup id {backup_id!r} cannot name a file on the drive")
    if len(staging_name(sidecar_name(backup_id)).encode()) > NAME_MAX:
        raise InvalidBackupId(f"The backup id {backup_id[:40]!r}... is too long for the drive")
