"""Choose the SSH ciphers to offer from what OpenSSL does fast on this machine.

In SSH the client's preference wins among what the server offers, and OpenSSH clients put
chacha20-poly1305 first. So the choice is made by what is offered: AES-GCM only on a CPU with
AES instructions (asyncssh's chacha20-poly1305 costs about twice the CPU there, bench/README.md),
chacha20-poly1305 first on a CPU without them (AES-GCM is ten times slower in software), AES-GCM
after it for clients that lack chacha. Measuring, rather than reading /proc/cpuinfo, follows what
OpenSSL really uses, including `OPENSSL_ia32cap` masks. Self-contained on purpose: the
integration carries a copy of this logic (it is deployed apart from the server).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

AES_GCM = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
CHACHA20_POLY1305 = "chacha20-poly1305@openssh.com"
# Eight blocks of 256 KiB per cipher: a few milliseconds with AES instructions, tens without.
SAMPLE_BLOCK = bytes(256 * 1024)
SAMPLE_ROUNDS = 8
# asyncssh spends about twice OpenSSL's cost per byte on chacha20-poly1305 (several Python-level
# calls per packet), so AES-GCM stays the choice unless chacha20 is more than that much faster.
CHACHA_OVERHEAD = 2.0


@dataclass(frozen=True)
class CipherChoice:
    """The ciphers to offer, best first, and the measured speeds behind the choice."""

    encryption_algs: list[str]
    aes_gcm_mb_per_s: float
    chacha20_mb_per_s: float

    def describe(self) -> str:
        """Say what was chosen and why, for the log."""
        return (
            f"{', '.join(self.encryption_algs)} (AES-GCM {self.aes_gcm_mb_per_s:.0f} MB/s, "
            f"chacha20-poly1305 {self.chacha20_mb_per_s:.0f} MB/s in OpenSSL)"
        )


def _seconds(cipher: AESGCM | ChaCha20Poly1305) -> float:
    """Return how long sealing SAMPLE_BLOCK once takes."""
    started = time.perf_counter()
    cipher.encrypt(bytes(12), SAMPLE_BLOCK, None)
    return max(time.perf_counter() - started, 1e-9)


def choose_ciphers() -> CipherChoice:
    """Time AES-GCM and chacha20-poly1305 in OpenSSL and return the ciphers to offer."""
    aes_gcm, chacha20 = AESGCM(bytes(16)), ChaCha20Poly1305(bytes(32))
    for cipher in (aes_gcm, chacha20):
        _seconds(cipher)  # warm up outside the timing
    # Alternating rounds, best of each (as the integration measures): a busy neighbour on a
    # shared CPU slows one round, not one cipher. A single total was once off by enough to offer
    # AES-GCM alone under the no-AES emulation.
    aes_best = chacha_best = float("inf")
    for _round in range(SAMPLE_ROUNDS):
        aes_best = min(aes_best, _seconds(aes_gcm))
        chacha_best = min(chacha_best, _seconds(chacha20))
    aes = len(SAMPLE_BLOCK) / aes_best / 1e6
    chacha = len(SAMPLE_BLOCK) / chacha_best / 1e6
    if chacha > aes * CHACHA_OVERHEAD:
        return CipherChoice([CHACHA20_POLY1305, *AES_GCM], aes, chacha)
    return CipherChoice(list(AES_GCM), aes, chacha)
