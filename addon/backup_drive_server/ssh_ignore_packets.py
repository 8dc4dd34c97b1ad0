"""Stop asyncssh's server from sending an empty SSH_MSG_IGNORE ahead of every packet.

Once encryption is on, asyncssh sends an empty ignore message before each packet it sends. That
guards CBC ciphers, where an attacker who knows the next packet's IV can test guesses at the
plaintext (OpenSSH sends it only for CBC). This server offers AEAD ciphers only
(cipher_choice.py): there the guard buys nothing, and each ignore message is one more packet
to encrypt, frame and write, which makes every download cost twice the packets (bench/README.md
has the figures). asyncssh has no option for it, so `install_ignore_packet_filter` gives the
server's connection class a `send_packet` that drops exactly that message while an AEAD cipher
is in use; everything else goes through unchanged. The asyncssh range in requirements/server.txt
pins the attribute names used here; tests/server/test_ssh_packets.py counts the ignore messages
OpenSSH's client receives.
"""

from __future__ import annotations

from typing import Any

from asyncssh.connection import SSHServerConnection
from asyncssh.constants import MSG_IGNORE

# The ignore message asyncssh inserts: an empty string, as SSH encodes it.
_EMPTY_IGNORE = (b"\x00\x00\x00\x00",)
_AEAD_CIPHERS = frozenset(
    {b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com", b"chacha20-poly1305@openssh.com"}
)

_send_packet: Any = SSHServerConnection.send_packet


def _send_packet_without_empty_ignore(
    self: SSHServerConnection, pkttype: int, *args: bytes, handler: Any = None
) -> None:
    """Send a packet, except an empty ignore message while an AEAD cipher protects the link."""
    if (
        pkttype == MSG_IGNORE
        and args == _EMPTY_IGNORE
        and getattr(self, "_enc_alg_sc", b"") in _AEAD_CIPHERS
    ):
        return
    _send_packet(self, pkttype, *args, handler=handler)


def install_ignore_packet_filter() -> None:
    """Make every server connection of this process skip the empty ignore messages."""
    SSHServerConnection.send_packet = _send_packet_without_empty_ignore  # type: ignore[method-assign, assignment]
