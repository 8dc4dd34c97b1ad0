"""Bound what one SFTP session may hold: request size and open handles.

asyncssh's server reads a whole SFTP packet of whatever length the client declares before
looking at it (a declared 4 GiB was buffered to half a gigabyte), and opens handles without a
limit. It has no option or hook for either: the handler class is looked up by name when a
session starts, so `install_sftp_limits` puts a subclass in its place once per process.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import asyncssh
from asyncssh import sftp as asyncssh_sftp
from asyncssh.constants import FXP_OPEN, FXP_OPENDIR
from asyncssh.packet import SSHPacket

_LOGGER = logging.getLogger(__name__)

# asyncssh clients (our integration among them) write up to 4 MiB per request and say so in
# limits@openssh.com; OpenSSH sends at most 256 KiB and rclone 32 KiB. Nothing larger is a
# client we serve, so a longer packet ends the connection before any of it is buffered.
MAX_PACKET_BYTES = asyncssh_sftp.MAX_SFTP_PACKET_LEN
# Files and folders one session may hold open at once: sshfs keeps one per file a program has
# open, rclone one per transfer and checker; a thousand exhausted the process's descriptors.
MAX_OPEN_HANDLES = 64
TOO_MANY_HANDLES_MESSAGE = (
    f"Too many files open in this session (at most {MAX_OPEN_HANDLES}): close some and retry"
)

_BaseHandler: Any = asyncssh_sftp.SFTPServerHandler


class OversizedPacketError(asyncssh.SFTPBadMessage):
    """A client declared an SFTP packet longer than any client we serve sends."""


class BoundedSFTPServerHandler(_BaseHandler):  # type: ignore[misc]
    """asyncssh's SFTP server handler with a packet length and an open-handle cap."""

    async def recv_packet(self) -> SSHPacket:
        """Read one packet, refusing a declared length above MAX_PACKET_BYTES unread."""
        length = int.from_bytes(await self._reader.readexactly(4), "big")
        if length > MAX_PACKET_BYTES:
            channel = self._reader.channel
            peer = channel.get_extra_info("peername")
            _LOGGER.warning(
                "Closed the SFTP connection of %s from %s: it sent a request of %d bytes "
                "(at most %d are accepted)",
                channel.get_extra_info("username"), peer[0] if peer else "unknown",
                length, MAX_PACKET_BYTES,
            )  # fmt: skip
            channel.get_connection().abort()
            raise OversizedPacketError(f"SFTP packet of {length} bytes is too long")
        return SSHPacket(await self._reader.readexactly(length))

    def _check_handle_room(self) -> None:
        if len(self._file_handles) + len(self._dir_handles) >= MAX_OPEN_HANDLES:
            raise asyncssh.SFTPFailure(TOO_MANY_HANDLES_MESSAGE)

    async def _process_open_bounded(self, packet: SSHPacket) -> bytes:
        self._check_handle_room()
        handle: bytes = await _BaseHandler._process_open(self, packet)
        return handle

    async def _process_opendir_bounded(self, packet: SSHPacket) -> bytes:
        self._check_handle_room()
        handle: bytes = await _BaseHandler._process_opendir(self, packet)
        return handle

    async def _process_limits_bounded(self, packet: SSHPacket) -> asyncssh.SFTPLimits:
        limits: asyncssh.SFTPLimits = await _BaseHandler._process_limits(self, packet)
        limits.max_open_handles = MAX_OPEN_HANDLES
        return limits

    # asyncssh dispatches through this table of functions, not through methods.
    _packet_handlers: ClassVar[dict[int | bytes, Any]] = {
        **_BaseHandler._packet_handlers,
        FXP_OPEN: _process_open_bounded,
        FXP_OPENDIR: _process_opendir_bounded,
        b"limits@openssh.com": _process_limits_bounded,
    }


def install_sftp_limits() -> None:
    """Make every SFTP session of this process use BoundedSFTPServerHandler."""
    asyncssh_sftp.SFTPServerHandler = BoundedSFTPServerHandler  # type: ignore[misc]
