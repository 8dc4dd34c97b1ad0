"""Prefer the SSH cipher this machine runs fastest: AES-GCM with AES instructions, else chacha20.

Many Home Assistant machines (Raspberry Pi 4, the CM4 in Home Assistant Yellow) have no AES
instructions; there OpenSSL runs AES-GCM in software at a tenth of chacha20-poly1305's speed.
Timing both through `cryptography` asks OpenSSL what it actually does fast here, which also
honours OPENSSL_ia32cap (how the benchmarks and tests emulate such a CPU). The add-on's server
makes the same choice for its side in backup_drive_server/cipher_choice.py; the two packages are
deployed separately, so each carries its own copy of this small decision.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from .const import LOGGER

# A few MB: a few milliseconds on either kind of CPU, long enough to be above timer noise.
SAMPLE_BYTES: Final = 1024 * 1024
ROUNDS: Final = 5
AES_GCM_FIRST: Final = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
# Where AES-GCM is the fallback (a server without chacha20), AES-128 costs fewer rounds than
# asyncssh's default first pick, AES-256.
CHACHA20_FIRST: Final = (
    "^chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com"
)


@dataclass(frozen=True, kw_only=True)
class CipherChoice:
    """Both ciphers' speed on this machine and the preference that follows."""

    aes_gcm_mb_s: float
    chacha20_mb_s: float

    @property
    def aes_first(self) -> bool:
        """Whether AES-GCM is at least as fast as chacha20-poly1305 here."""
        return self.aes_gcm_mb_s >= self.chacha20_mb_s

    @property
    def encryption_algs(self) -> str:
        """Return asyncssh's encryption_algs: the faster cipher first, its defaults after."""
        return AES_GCM_FIRST if self.aes_first else CHACHA20_FIRST


def _seconds(cipher: AESGCM | ChaCha20Poly1305, sample: bytes) -> float:
    """Return how long sealing `sample` once takes."""
    start = time.perf_counter()
    cipher.encrypt(bytes(12), sample, None)
    return time.perf_counter() - start


@functools.cache
def measure_ciphers() -> CipherChoice:
    """Time AES-GCM and chacha20-poly1305 once for this process (blocking, a few ms)."""
    sample = os.urandom(SAMPLE_BYTES)
    aes_gcm, chacha20 = AESGCM(bytes(16)), ChaCha20Poly1305(bytes(32))
    # Alternating rounds, best of each: a busy neighbour on a shared CPU slows one round, not
    # one cipher.
    aes_best = chacha20_best = float("inf")
    for _round in range(ROUNDS):
        aes_best = min(aes_best, _seconds(aes_gcm, sample))
        chacha20_best = min(chacha20_best, _seconds(chacha20, sample))
    choice = CipherChoice(
        aes_gcm_mb_s=SAMPLE_BYTES / max(aes_best, 1e-9) / 1e6,
        chacha20_mb_s=SAMPLE_BYTES / max(chacha20_best, 1e-9) / 1e6,
    )
    LOGGER.info(
        "SSH cipher: %s first (this machine seals AES-GCM at %.0f MB/s, "
        "chacha20-poly1305 at %.0f MB/s)",
        "AES-GCM" if choice.aes_first else "chacha20-poly1305",
        choice.aes_gcm_mb_s,
        choice.chacha20_mb_s,
    )
    return choice


async def async_preferred_ciphers() -> str:
    """Return the encryption_algs to connect with, measuring in the executor the first time."""
    if measure_ciphers.cache_info().currsize:
        return measure_ciphers().encryption_algs
    choice = await asyncio.get_running_loop().run_in_executor(None, measure_ciphers)
    return choice.encryption_algs
