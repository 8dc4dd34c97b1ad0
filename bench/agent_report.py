"""Tables of the agent benchmark: the measurements of each CPU mode and the issue's targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.process_stats import markdown_table

MIB = 1024 * 1024
GIB = 1024 * MIB
SIDECARS = 1000


@dataclass
class Row:
    """One line of the result table: wall time and the CPU both ends spent."""

    what: str
    size: int
    seconds: float
    client_cpu: float = 0.0
    server_cpu: float = 0.0

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10^6 bytes)."""
        return self.size / self.seconds / 1e6 if self.size else 0.0


def net_of_handshake(rows: dict[str, Row]) -> None:
    """Add OpenSSH transfer rows without the process start and login measured on their own."""
    handshake = rows["openssh handshake"]
    for verb in ("put", "get"):
        row = rows[f"openssh {verb}"]
        rows[f"openssh {verb} net"] = Row(
            f"{row.what}, without start + login",
            row.size,
            row.seconds - handshake.seconds,
            row.client_cpu - handshake.client_cpu,
            row.server_cpu - handshake.server_cpu,
        )


def mode_table(rows: dict[str, Row]) -> list[str]:
    """Format one mode's measurements."""
    header = ["measurement", "seconds", "MB/s", "client CPU s", "server CPU s", "client s/GiB"]
    header.append("server s/GiB")
    body = []
    for row in rows.values():
        per_gib = [
            f"{c / (row.size / GIB):.2f}" if row.size else ""
            for c in (row.client_cpu, row.server_cpu)
        ]
        body.append(
            [
                row.what,
                f"{row.seconds:.2f}",
                f"{row.mb_per_s:.0f}" if row.size else "",
                f"{row.client_cpu:.2f}",
                f"{row.server_cpu:.2f}",
                *per_gib,
            ]
        )
    return markdown_table(header, body)


def targets(modes: dict[str, dict[str, Row]], facts: dict[str, dict[str, Any]]) -> list[str]:
    """Hold the measurements against the issue's targets."""
    lines: list[list[str]] = []

    def check(what: str, value: float, goal: float, *, lower: bool = False, unit: str = "") -> None:
        ok = value <= goal if lower else value >= goal
        lines.append([what, f"{value:.2f}{unit}", "yes" if ok else "**NO**"])

    def speed(mode: str, key: str) -> float:
        return modes[mode][key].mb_per_s

    for mode in modes:
        check(
            f"agent upload / OpenSSH put, {mode} >= 0.9",
            speed(mode, "agent put") / speed(mode, "openssh put net"),
            0.9,
        )
        check(
            f"agent download / OpenSSH get, {mode} >= 1.3",
            speed(mode, "agent get") / speed(mode, "openssh get net"),
            1.3,
        )
    if {"aes", "no-aes"} <= set(modes):
        check(
            "agent upload no-aes / aes >= 0.7",
            speed("no-aes", "agent put") / speed("aes", "agent put"),
            0.7,
        )
    if "aes" in modes:
        put = modes["aes"]["agent put"]
        check(
            "client CPU s/GiB, agent upload, aes <= 3.0",
            put.client_cpu / (put.size / GIB),
            3.0,
            lower=True,
        )
        aes = modes["aes"]
        check(
            f"listing {SIDECARS} cold: sequential / agent >= 5",
            aes["list core"].seconds / aes["list cold"].seconds,
            5,
        )
        for fact, value in facts["aes"].items():
            if fact.startswith("RSS growth"):
                check(f"{fact.removesuffix(' (MiB)')} < 64 MiB", value, 64, lower=True, unit=" MiB")
        if "agent put big" in aes:
            big = aes["agent put big"]
            check(
                "time per GiB, big upload / 1 GiB upload (linear: about 1)",
                (big.seconds / big.size) / (put.seconds / put.size),
                1.25,
                lower=True,
            )
    return markdown_table(["target", "measured", "met"], lines)
