"""Tracker throughput on anvil: a backlog of 100 executions x 20 states, in direct mode, anchor mode
and the published prototype's one-transaction-per-state way, measured in the same process.

Run as `.venv/bin/python bench/tracker.py`. It starts its own anvil (without the
`--steps-tracing` that ape-foundry always turns on, which makes anvil several times slower at
executing large batches), connects ape to it by URL, deploys a fresh InstanceTracker per mode and runs `tracker.tracking.engine.track` (the engine behind
`ape run track_execution`, publishing to a temporary directory) over a synthetic backlog served
through the same `ExecutionSource` interface as the AWS sources: moto would spend minutes running
100 real executions, and the figure measured here is the tracker's, not the workflow engine's.
The one-transaction-per-state run covers a smaller backlog (it waits for a receipt per state).
Prints a table and writes bench/results/tracker.json; it never fails on a figure.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path and its name would shadow the package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
RESULTS_FILE = ROOT / "bench" / "results" / "tracker.json"
NETWORK = "anvil (own process, automine) via ape's URL network choice"
EXECUTIONS = 100
STATES = 20
PER_STATE_EXECUTIONS = 10
TARGET_STATES_PER_S = 500


def measure(mode: str, executions: int, sender: Any) -> dict[str, Any]:
    from ape import project

    from tracker.chain.contract import TrackerContract
    from tracker.dev.synthetic import SyntheticExecutions
    from tracker.publish.targets import DirectoryPublisher
    from tracker.tracking.config import TrackConfig
    from tracker.tracking.engine import track

    contract = TrackerContract(sender.deploy(project.InstanceTracker), sender)
    with tempfile.TemporaryDirectory(prefix=f"bench-tracker-{mode}-") as scratch:
        publisher = DirectoryPublisher(Path(scratch) / "protocol")
        config = TrackConfig(mode=mode, state_dir=Path(scratch) / "state")
        started = time.perf_counter()
        summary = track(config, SyntheticExecutions([STATES] * executions, mode), contract, publisher)
        elapsed = time.perf_counter() - started
    states = summary.states_registered
    return {
        "mode": mode,
        "executions": executions,
        "states": states,
        "seconds": round(elapsed, 3),
        "states_per_s": round(states / elapsed, 1),
        "transactions": summary.transactions,
        "gas_used": summary.gas_used,
        "gas_per_state": round(summary.gas_used / states) if states else None,
        "transactions_per_state": round(summary.transactions / states, 4) if states else None,
    }


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_anvil() -> tuple[Any, str]:
    import subprocess
    import urllib.request

    port = free_port()
    process = subprocess.Popen(
        ["anvil", "--port", str(port), "--silent", "--gas-limit", "60000000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    for _ in range(300):
        try:
            request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=1).read()
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("anvil did not start")


def run(on_status) -> dict[str, Any]:
    from ape.logging import logger

    logger.set_level("WARNING")
    anvil, url = start_anvil()
    try:
        return _run(on_status, url)
    finally:
        anvil.terminate()
        anvil.wait(timeout=10)


def _run(on_status, url: str) -> dict[str, Any]:
    from ape import accounts, networks

    with networks.parse_network_choice(url) as provider:
        sender = accounts.test_accounts[0]
        on_status("warming up")
        measure("direct", 1, sender)  # imports and caches, so that no mode pays for them
        runs = []
        for mode, executions in (("direct", EXECUTIONS), ("anchor", EXECUTIONS), ("per-state", PER_STATE_EXECUTIONS)):
            on_status(f"{mode}: {executions} executions x {STATES} states")
            runs.append(measure(mode, executions, sender))
        chain_id = int(provider.chain_id)
    by_mode = {r["mode"]: r for r in runs}
    return {
        "benchmark": "tracker backlog",
        "network": NETWORK,
        "chain_id": chain_id,
        "backlog": f"{EXECUTIONS} executions x {STATES} states (one-tx-per-state: {PER_STATE_EXECUTIONS} executions)",
        "histories": "synthetic GetExecutionHistory-shaped events through the ExecutionSource interface",
        "target_states_per_s": TARGET_STATES_PER_S,
        "states_per_s_direct": by_mode["direct"]["states_per_s"],
        "states_per_s_anchor": by_mode["anchor"]["states_per_s"],
        "states_per_s_one_tx_per_state": by_mode["per-state"]["states_per_s"],
        "runs": runs,
    }


def print_table(document: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tracker backlog on anvil: {document['backlog']}")
    for column in ("mode", "states", "seconds", "states/s", "txs", "gas/state", "meets >= 500/s"):
        table.add_column(column, justify="right")
    for r in document["runs"]:
        meets = "yes" if r["states_per_s"] >= TARGET_STATES_PER_S else "NO"
        table.add_row(
            r["mode"],
            str(r["states"]),
            f"{r['seconds']:.2f}",
            f"{r['states_per_s']:,.0f}",
            str(r["transactions"]),
            f"{r['gas_per_state']:,}",
            meets if r["mode"] != "per-state" else "(reference)",
        )
    Console(width=None if sys.stdout.isatty() else 110).print(table)
    print(f"target: >= {TARGET_STATES_PER_S} states/s; histories: {document['histories']}")


def main() -> int:
    os.chdir(ROOT)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting anvil") as status:
        document = run(lambda message: status.update(message))
    print_table(document)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    console.print(f"wrote {RESULTS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
