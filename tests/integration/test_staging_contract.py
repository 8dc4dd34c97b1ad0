"""The integration's temporary upload names are dot-files, which the server's HTML listing hides.

The server stages every upload in its own hidden folder, so it no longer recognises a temporary
name pattern. The contract left: the integration writes an archive under a dot-file name and
renames it when complete; the browser views (the page and WebDAV's HTML) leave dot-files out
(WebDAV and SFTP clients still see them, as any file manager shows hidden files on request).
"""

from __future__ import annotations

from fnmatch import fnmatch

import pytest

from backup_drive_server.web_page.backup_catalog import is_hidden_name
from backup_drive_server.webdav_server import HTML_LISTING_IGNORED
from custom_components.backup_drive.sidecar import sidecar_name
from custom_components.backup_drive.upload import staging_name

ARCHIVE = "Automatic_backup_2025.5.3_2025-06-03_01.00_00004595.tar"


def hidden_from_html_listing(name: str) -> bool:
    """Return whether the server's browser views (its page, wsgidav's index) leave `name` out."""
    return is_hidden_name(name) and any(fnmatch(name, p) for p in HTML_LISTING_IGNORED)


@pytest.mark.parametrize("final", [ARCHIVE, sidecar_name("00004595")], ids=["archive", "sidecar"])
def test_temporary_names_are_hidden_dot_files(final: str) -> None:
    """The HTML listing hides the temporary names; a finished archive stays visible."""
    temporary = staging_name(final)
    assert temporary.startswith(".")
    assert hidden_from_html_listing(temporary)
    assert staging_name(final) != temporary, "two uploads of one name must not share a file"


def test_a_finished_archive_is_listed() -> None:
    """Archives are not dot-files, so the HTML listing shows them."""
    assert not hidden_from_html_listing(ARCHIVE)
