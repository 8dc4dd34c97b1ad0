"""litmus, the WebDAV conformance suite, passes every test of its five suites."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.backup_target import BackupTarget
from tests.peers import require_tool
from tests.server.conftest import Accounts, partial_files

SUITES = ("basic", "copymove", "props", "locks", "http")
# litmus prints one of these per suite, e.g.
# <- summary for `props': of 30 tests run: 30 passed, 0 failed. 100.0%
SUMMARY = re.compile(
    r"<- summary for `(?P<suite>\w+)': of (?P<run>\d+) tests run: "
    r"(?P<passed>\d+) passed, (?P<failed>\d+) failed\. (?P<percent>[\d.]+)%"
)


def test_litmus_passes_all_suites(target: BackupTarget, accounts: Accounts, tmp_path: Path) -> None:
    litmus = require_tool("litmus", "litmus")
    (target.storage / "somecollection").mkdir()
    alice = accounts.alice
    # litmus exits 0 after failures with -k, so its summary lines are the verdict; it writes
    # debug.log and child.log into its working directory, kept in tmp_path for a failure's eyes.
    result = subprocess.run(
        [
            litmus, "-k", f"http://127.0.0.1:{target.webdav_port}/somecollection/",
            alice.username, alice.password,
        ],
        cwd=tmp_path,
        env={**os.environ, "TESTS": " ".join(SUITES)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    summaries = {match["suite"]: match for match in SUMMARY.finditer(output)}
    failures = [line for line in output.splitlines() if "FAIL" in line]
    for suite in SUITES:
        assert suite in summaries, f"no summary line for {suite}:\n{output}"
        summary = summaries[suite]
        assert summary["failed"] == "0", f"{suite}: {failures}"
        assert summary["percent"] == "100.0", f"{suite}: {summary.group(0)}\n{failures}"
        assert int(summary["run"]) > 0
    assert partial_files(target.storage) == []
