"""Tracking a Distributed Map's children on anvil: one execution whose Map Run started 1,000
Express children (read from CloudWatch Logs) and one with 200 Standard children (read through the
history API), each child an instance of its own linked to the parent.

Run as `.venv/bin/python bench/children.py`. moto runs the executions in-process with the
emulation of `tracker.dev.sfn_emulation` (which runs each item as a child execution); the figures
are `tracker.tracking.engine.track` over them on an anvil of its own (started as
bench/tracker.py starts it), after the executions ended: seconds, transactions, gas. Prints the
figures and writes bench/results/children.json; it never fails on a figure.
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
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "tests" / "tracking"))
RESULTS_FILE = ROOT / "bench" / "results" / "children.json"
CASES = (("EXPRESS", 1000), ("STANDARD", 200))


def measure(execution_type: str, count: int, sender: Any) -> dict[str, Any]:
    import boto3
    from ape import project
    from moto import mock_aws
    from test_tracking_children import create, fan_out, run

    from tracker.aws.executions import Selection
    from tracker.aws.history import HistorySource
    from tracker.chain.contract import TrackerContract
    from tracker.dev import sfn_emulation
    from tracker.publish.targets import DirectoryPublisher
    from tracker.tracking.config import TrackConfig
    from tracker.tracking.engine import track

    sfn_emulation.install()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    contract = TrackerContract(sender.deploy(project.InstanceTracker), sender)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        session = boto3.session.Session(region_name="us-east-1")
        machine = create(session, "fan", fan_out(execution_type), logged=True)
        started = time.perf_counter()
        run(session, machine, "batch-1", {"items": list(range(count))}, timeout=900)
        ran = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="bench-children-") as scratch:
            publisher = DirectoryPublisher(Path(scratch) / "protocol")
            config = TrackConfig(state_dir=Path(scratch) / "state")
            started = time.perf_counter()
            summary = track(config, HistorySource(session, Selection((machine,))), contract, publisher)
            elapsed = time.perf_counter() - started
    return {
        "children": count,
        "child_type": execution_type,
        "moto_run_seconds": round(ran, 2),
        "track_seconds": round(elapsed, 2),
        "instances_registered": summary.instances_registered,
        "instances_terminated": summary.instances_terminated,
        "states": summary.states_registered,
        "transactions": summary.transactions,
        "gas_used": summary.gas_used,
        "skipped": len(summary.skipped),
    }


def main() -> int:
    os.chdir(ROOT)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    import importlib.util

    from ape import accounts, networks
    from ape.logging import logger

    spec = importlib.util.spec_from_file_location("bench_tracker", ROOT / "bench" / "tracker.py")
    assert spec is not None and spec.loader is not None
    bench_tracker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_tracker)  # its anvil, started the same way
    start_anvil = bench_tracker.start_anvil

    logger.set_level("WARNING")
    anvil, url = start_anvil()
    try:
        with networks.parse_network_choice(url):
            sender = accounts.test_accounts[0]
            runs = [measure(kind, count, sender) for kind, count in CASES]
    finally:
        anvil.terminate()
        anvil.wait(timeout=10)
    document = {"benchmark": "Distributed Map children", "network": "anvil (own process, automine)", "runs": runs}
    for r in runs:
        print(
            f"{r['children']} {r['child_type']} children: tracked in {r['track_seconds']} s, "
            f"{r['transactions']} transactions, {r['instances_terminated']} instances final, {r['states']} states"
        )
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
