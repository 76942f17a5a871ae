"""The peak memory of a command in its own process, as the kernel counts it (for the benchmarks
and the test that keeps `ape run verify` small).

The command is started by a small Python launcher that waits for it with `os.wait4` and reports
its `ru_maxrss`. Not by the caller itself: at `exec` the kernel carries the high-water mark of the
memory a child was forked (or vforked) with into the program it then runs, so a command started
straight from a large process (a benchmark holding a chain's worth of documents, a test session)
would never report less than that process's own resident size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Runs argv[2:], passing its output through, and writes its peak RSS (kilobytes on Linux) and
# exit status into the file argv[1].
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_pid, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


@dataclass(frozen=True)
class Measured:
    """How a command ended, what it printed, and its own peak resident memory."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    peak_rss_mb: float


def run_measured(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Measured:
    """Runs `command` to its end and measures its peak RSS (see the module docstring)."""
    with (
        tempfile.TemporaryFile() as out_file,
        tempfile.TemporaryFile() as err_file,
        tempfile.NamedTemporaryFile("r", suffix=".peak") as peak_file,
    ):
        launcher = [sys.executable, "-c", _LAUNCHER, peak_file.name, *command]
        subprocess.run(
            launcher,
            cwd=cwd,
            env=env if env is not None else dict(os.environ),
            stdout=out_file,
            stderr=err_file,
            check=False,
        )
        peak_kb, exit_code = (int(part) for part in peak_file.read().split())
        out_file.seek(0)
        err_file.seek(0)
        return Measured(exit_code, out_file.read(), err_file.read(), round(peak_kb / 1024, 1))
