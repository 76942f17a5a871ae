"""`ape test` on the Sepolia fork without its upstream node: one line saying what to set, not an
INTERNALERROR traceback from ape's configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_fork_suite_without_an_upstream_says_what_to_set():
    environment = {key: value for key, value in os.environ.items() if key != "SEPOLIA_NODE_URI"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ape"), "test", "tests/fork", "--network", "ethereum:sepolia-fork:foundry"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 4 and "INTERNALERROR" not in output
    assert (
        "the fork suite forks Sepolia from SEPOLIA_NODE_URI, which is not set: set it to a Sepolia node's URL" in output
    )
