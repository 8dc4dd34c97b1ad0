"""The exact addresses to type into Explorer, Finder, Linux file managers and SFTP clients."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Address:
    """One thing to type (or paste), and where."""

    where: str
    text: str


@dataclass(frozen=True, kw_only=True)
class ConnectSection:
    """How one kind of computer connects."""

    title: str
    addresses: tuple[Address, ...]
    note: str = ""


def url_host(host: str) -> str:
    """Bracket an IPv6 address for use in a URL."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _unc_host(host: str) -> str:
    # Windows spells an IPv6 address in a UNC path as a `.ipv6-literal.net` name.
    if ":" in host:
        return host.strip("[]").replace(":", "-") + ".ipv6-literal.net"
    return host


def connect_sections(
    host: str, *, webdav_port: int, webdav_tls: bool, sftp_port: int
) -> tuple[ConnectSection, ...]:
    """Build the addresses for each system, with `host` filled in."""
    http = "https" if webdav_tls else "http"
    dav = "davs" if webdav_tls else "dav"
    webdav = f"{http}://{url_host(host)}:{webdav_port}/"
    ssl = "@SSL" if webdav_tls else ""
    return (
        ConnectSection(
            title="Windows (File Explorer)",
            addresses=(
                Address(where="Map network drive, Folder", text=webdav),
                Address(
                    where="Address bar",
                    text=f"\\\\{_unc_host(host)}{ssl}@{webdav_port}\\DavWWWRoot",
                ),
            ),
            note="Tick “Connect using different credentials” and log in with an account below.",
        ),
        ConnectSection(
            title="macOS (Finder)",
            addresses=(Address(where="Go > Connect to Server", text=webdav),),
            note="Choose “Registered User” and log in with an account below.",
        ),
        ConnectSection(
            title="Linux (file manager)",
            addresses=(
                Address(
                    where="GNOME Files, Other Locations",
                    text=f"{dav}://{url_host(host)}:{webdav_port}/",
                ),
                Address(where="KDE Dolphin", text=f"web{dav}://{url_host(host)}:{webdav_port}/"),
                Address(where="SFTP", text=f"sftp://{url_host(host)}:{sftp_port}/"),
            ),
        ),
        ConnectSection(
            title="SFTP (FileZilla, WinSCP, Cyberduck)",
            addresses=(
                Address(where="Host", text=host.strip("[]")),
                Address(where="Port", text=str(sftp_port)),
                Address(where="Command line", text=f"sftp -P {sftp_port} USER@{url_host(host)}"),
            ),
            note="Protocol SFTP; check that the host key matches the fingerprint below.",
        ),
    )
