"""Send one file of the storage root to a browser, through the shared path jail."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import quote

from backup_drive_server.storage_root import (
    OutsideStorageRootError,
    StorageRoot,
    StorageUnavailableError,
)
from backup_drive_server.web_page.backup_catalog import is_hidden_name
from backup_drive_server.web_page.render import text_answer

_LOGGER = logging.getLogger(__name__)

# The same block size WebDAV's GET uses: 8 KiB blocks cost two thirds of the throughput.
BLOCK_SIZE = 1024 * 1024


class _FileChunks:
    """Iterate over an open file in blocks; the server calls close() when the answer ends."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def __iter__(self) -> Iterator[bytes]:
        while block := self._file.read(BLOCK_SIZE):
            yield block

    def close(self) -> None:
        self._file.close()


def content_disposition(name: str) -> str:
    """Name the download, with an ASCII fallback for old browsers (RFC 6266)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"


def _open_regular_file(storage: StorageRoot, client_path: str, who: str) -> tuple[BinaryIO, int]:
    """Open a visible regular file inside the storage root; return it and its size."""
    if any(is_hidden_name(part) for part in client_path.split("/") if part):
        raise FileNotFoundError(client_path)
    file = open(storage.resolve(client_path, who=who), "rb", buffering=0)  # noqa: SIM115
    info = os.fstat(file.fileno())
    if not stat.S_ISREG(info.st_mode):
        file.close()
        raise FileNotFoundError(client_path)
    return file, info.st_size


def send_file(
    environ: dict[str, Any], start_response: Any, storage: StorageRoot, client_path: str, who: str
) -> Any:
    """Answer with the file at `client_path`; hidden names are never served."""
    try:
        file, size = _open_regular_file(storage, client_path, who)
    except OutsideStorageRootError:
        return text_answer(start_response, "403 Forbidden", "Permission denied.")
    except StorageUnavailableError as err:
        return text_answer(start_response, "503 Service Unavailable", str(err))
    except OSError:
        return text_answer(start_response, "404 Not Found", "No such file.")
    name = client_path.rstrip("/").rpartition("/")[2]
    content_type = "application/x-tar" if name.endswith(".tar") else "application/octet-stream"
    start_response(
        "200 OK",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(size)),
            ("Content-Disposition", content_disposition(name)),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    if environ.get("REQUEST_METHOD") == "HEAD":
        file.close()
        return []
    _LOGGER.info("Download of %s by %s (%d bytes)", client_path, who, size)
    # The server closes the file (through close()) when the answer ends or the client leaves.
    return _FileChunks(file)
