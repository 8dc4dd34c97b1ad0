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


def _unpublished(what: str) -> str:
    return (
        f"The {what} port is closed to your network: give it a host port under Network on the "
        "add-on's Configuration tab, then restart the add-on."
    )


def connect_sections(
    host: str, *, webdav_port: int | None, webdav_tls: bool, sftp_port: int | None
) -> tuple[ConnectSection, ...]:
    """Build the addresses for each system, with `host` filled in; None marks a closed port."""
    http = "https" if webdav_tls else "http"
    dav = "davs" if webdav_tls else "dav"
    name = url_host(host)
    webdav = f"{http}://{name}:{webdav_port}/"
    ssl = "@SSL" if webdav_tls else ""
    no_webdav = _unpublished("WebDAV") if webdav_port is None else ""
    no_sftp = _unpublished("SFTP") if sftp_port is None else ""
    linux = []
    if webdav_port is not None:
        linux += [
            Address(where="GNOME Files, Other Locations", text=f"{dav}://{name}:{webdav_port}/"),
            Address(where="KDE Dolphin", text=f"web{dav}://{name}:{webdav_port}/"),
        ]
    if sftp_port is not None:
        linux.append(Address(where="SFTP", text=f"sftp://{name}:{sftp_port}/"))
    return (
        ConnectSection(
            title="Windows (File Explorer)",
            addresses=()
            if webdav_port is None
            else (
                Address(where="Map network drive, Folder", text=webdav),
                Address(
                    where="Address bar",
                    text=f"\\\\{_unc_host(host)}{ssl}@{webdav_port}\\DavWWWRoot",
                ),
            ),
            note=no_webdav
            or "Tick “Connect using different credentials” and log in with an account below.",
        ),
        ConnectSection(
            title="macOS (Finder)",
            addresses=()
            if webdav_port is None
            else (Address(where="Go > Connect to Server", text=webdav),),
            note=no_webdav or "Choose “Registered User” and log in with an account below.",
        ),
        ConnectSection(
            title="Linux (file manager)", addresses=tuple(linux), note=no_webdav or no_sftp
        ),
        ConnectSection(
            title="SFTP (FileZilla, WinSCP, Cyberduck)",
            addresses=()
            if sftp_port is None
            else (
                Address(where="Host", text=host.strip("[]")),
                Address(where="Port", text=str(sftp_port)),
                Address(where="Command line", text=f"sftp -P {sftp_port} USER@{name}"),
            ),
            note=no_sftp or "Protocol SFTP; check that the host key matches the fingerprint below.",
        ),
    )
