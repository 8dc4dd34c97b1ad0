"""The integration's temporary upload names are the ones backup-drive-server hides and cleans up."""

from __future__ import annotations

import pytest

from backup_drive_server.staged_upload import is_staging_name
from custom_components.backup_drive.sidecar import sidecar_name
from custom_components.backup_drive.upload import staging_name

ARCHIVE = "Automatic_backup_2025.5.3_2025-06-03_01.00_00004595.tar"


@pytest.mark.parametrize("final", [ARCHIVE, sidecar_name("00004595")], ids=["archive", "sidecar"])
def test_temporary_names_are_staging_names(final: str) -> None:
    """The server hides the temporary names (and removes them on abort), not the final ones."""
    temporary = staging_name(final)
    assert temporary.startswith(".")
    assert is_staging_name(temporary)
    assert not is_staging_name(final), "a finished upload must stay visible"
    assert staging_name(final) != temporary, "two uploads of one name must not share a file"
