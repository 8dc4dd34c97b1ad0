"""The page's command-line flags and settings, kept apart from the servers' own."""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class WebPageSettings:
    """Where the page listens and who may open it."""

    port: int
    # Under ingress only Supervisor's proxy may connect, and it has already checked the login.
    allow_from: str | None = None
    # The name computers use for this machine; None means the name in the request.
    public_host: str | None = None
    # The host ports Supervisor maps to WebDAV and SFTP: None means the listening port, 0 closed.
    public_webdav_port: int | None = None
    public_sftp_port: int | None = None

    @property
    def ingress(self) -> bool:
        """Return whether the page sits behind Supervisor's ingress proxy."""
        return self.allow_from is not None


def add_web_page_flags(parser: argparse.ArgumentParser) -> None:
    """Describe the page's flags."""
    group = parser.add_argument_group("the add-on's page")
    group.add_argument("--ui-port", type=int,
                       help="serve the add-on's page on this port (off unless given)")  # fmt: skip
    group.add_argument("--ui-allow-from", type=_address, metavar="ADDR",
                       help="answer only this address, without a login (Supervisor's "
                       "ingress proxy); otherwise the page asks for an account")  # fmt: skip
    group.add_argument("--public-host", metavar="NAME",
                       help="host name shown in the connection addresses (default: the name "
                       "the browser used)")  # fmt: skip
    for protocol in ("webdav", "sftp"):
        group.add_argument(f"--public-{protocol}-port", type=_published_port, metavar="N",
                           help=f"host port of {protocol.upper()} shown in the addresses "
                           "(default: the one it listens on; empty or 'null': closed)")  # fmt: skip


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an IP address: {value!r}") from err


def _published_port(value: str) -> int:
    # bashio prints "null" (or nothing) for a port the user closed under Network.
    if value.strip() in ("", "null"):
        return 0
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}")
    return port


def web_page_settings(args: argparse.Namespace) -> WebPageSettings | None:
    """Return the page's settings, or None when no --ui-port was given."""
    if args.ui_port is None:
        return None
    return WebPageSettings(
        port=args.ui_port,
        allow_from=args.ui_allow_from,
        public_host=args.public_host or None,
        public_webdav_port=args.public_webdav_port,
        public_sftp_port=args.public_sftp_port,
    )
