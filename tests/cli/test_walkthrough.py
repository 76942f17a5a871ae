"""The getting-started walk-through, run exactly as the page prints it.

The commands are read from the page (the code block after the `walkthrough` marker), not copied
here, so the page cannot drift from what works. They run as a new operator runs them: `ape run
stack` in the background (anvil with ENS, moto, Postgres; its printed exports taken into the
environment), `ape run serve` as the page starts it, then the six commands in one shell, in a
project directory of their own (so the repository's deployment records are not touched), with
the user's own state machine definition in `my-machine.asl.json`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracker.dev.services import free_port

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "getting-started.md"
BIN = Path(sys.executable).parent

MY_MACHINE = {
    "Comment": "An operator's own machine: not the demo's",
    "StartAt": "Receive",
    "States": {
        "Receive": {"Type": "Pass", "Result": {"received": True}, "ResultPath": "$.receipt", "Next": "Check"},
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.order", "NumericGreaterThan": 0, "Next": "Ship"}],
            "Default": "Reject",
        },
        "Ship": {"Type": "Pass", "End": True},
        "Reject": {"Type": "Fail", "Error": "BadOrder"},
    },
}


def page_block(marker: str) -> list[str]:
    """The command lines of the first fenced block after `<!-- <marker>` on the page."""
    text = PAGE.read_text()
    start = text.index(f"<!-- {marker}")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None, f"no command block after the {marker} marker"
    return [line for line in block.group(1).splitlines() if line.strip()]


def serve_line() -> str:
    lines = [line for line in PAGE.read_text().splitlines() if "ape run serve ./protocol" in line]
    assert len(lines) == 1, "the page starts serve once, on ./protocol"
    return lines[0].strip()


def project_copy(directory: Path) -> None:
    """A project directory of a new operator: the repository's code, none of its records."""
    for name in ("ape-config.yaml", "scripts", "contracts", "contracts-dev", "node_modules"):
        (directory / name).symlink_to(ROOT / name)
    build = directory / ".build"
    build.mkdir()
    for compiled in (ROOT / ".build").glob("*.json"):
        if "deployments" not in compiled.name:
            shutil.copy(compiled, build / compiled.name)
    (directory / "my-machine.asl.json").write_text(json.dumps(MY_MACHINE, indent=2))


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def started(arguments: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        arguments,
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(process: subprocess.Popen, predicate, what: str, timeout: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} did not come up (exit {process.poll()}, {timeout:.0f} s at most):\n{logs.read_text()[-3000:]}")


def test_the_getting_started_walk_through_works_as_printed(tmp_path):
    commands = page_block("walkthrough")
    assert [line.split()[2] for line in commands] == [
        "deploy",
        "deploy_model",
        "start_execution",
        "track_execution",
        "index",
        "verify",
    ]
    project = tmp_path / "project"
    project.mkdir()
    project_copy(project)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("APE_", "AWS_", "TRACKER_"))}
    env.pop("DATABASE_URL", None)
    env["PATH"] = f"{BIN}:{env['PATH']}"
    # No DATABASE_URL: the stack embeds a Postgres of its own in the project, as on a machine
    # without one (and no other test's schema is touched).

    stack_log = tmp_path / "stack.log"
    stack = started(
        [str(BIN / "ape"), "run", "stack", "--anvil-port", str(free_port()), "--moto-port", str(free_port())],
        project,
        env,
        stack_log,
    )
    serve = None
    try:
        wait_for(stack, lambda: "Ctrl-C stops the stack" in stack_log.read_text(), "ape run stack", 300, stack_log)
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", stack_log.read_text(), re.M))
        assert {"APE_FOUNDRY_HOST", "AWS_ENDPOINT_URL", "DATABASE_URL", "TRACKER_NETWORK"} <= exports.keys()
        env.update({name: value.strip("'") for name, value in exports.items()})

        serve_log = tmp_path / "serve.log"
        serve = started(["bash", "-c", serve_line()], project, env, serve_log)
        wait_for(serve, lambda: "SHA-256 fingerprint" in serve_log.read_text(), "serve", 120, serve_log)

        outputs = []
        for line in commands:
            result = subprocess.run(
                ["bash", "-c", line], cwd=project, env=env, capture_output=True, text=True, timeout=300
            )
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"{line}\nexit {result.returncode}:\n{output[-3000:]}"
            outputs.append(output)
        deploy, deploy_model, start, track, index, verify = outputs
        assert "local.eth" in deploy
        assert "my-machine" in deploy_model
        assert "SUCCEEDED" in start
        # start_execution --wait registered everything already; the table is printed once.
        assert "0 states of 1 executions registered in 0 transactions" in track
        assert track.count("executions seen") == 1
        assert re.search(r"^indexed \d+ events \(blocks \d+-\d+\)", index, re.M)
        assert "Instances per model" in index
        protocols = list((project / "protocol").glob("*.json"))
        assert len(protocols) == 1
        # Receive, Check, Ship: the whole trace, final (a SUCCEEDED execution cannot be redriven).
        assert re.search(r"^verdict: PASSED, instance final \(attempt 0, 3 states\)", verify, re.M), verify
    finally:
        if serve is not None:
            stop(serve)
        stop(stack)
