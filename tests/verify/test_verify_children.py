"""verify walks from a parent to the executions it started and back: a Distributed Map's children
and a nested startExecution child, each verified with the five checks, each naming the parent's
instance and the visit that started it (moto and its emulation run the children: see
tests/tracking/test_tracking_children.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.publish.targets import DirectoryPublisher
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track
from tracker.verify.report import CHECK_CHILDREN, CHECK_ENS, CheckResult, VerifyOptions
from tracker.verify.verifier import verify_protocol

sys.path.insert(0, str(Path(__file__).parent.parent / "tracking"))
from test_tracking_children import NESTED_CHILD, create, fan_out, nested_parent, run


def tracked(aws, tmp_path, serve, tracker, owner, register_certificate, machines, parent_arn):
    root = tmp_path / "protocol"
    root.mkdir()
    server = serve(root)
    register_certificate(tracker, owner, server.fingerprint)
    publisher = DirectoryPublisher(root, server.origin)
    track(TrackConfig(state_dir=tmp_path / "state"), HistorySource(aws, Selection(machines)), tracker, publisher)
    for path in root.glob("*.json"):
        protocol = json.loads(path.read_text())
        instance = json.loads((root / "documents" / f"{protocol['instance_hash']}.json").read_text())
        if instance["execution_arn"] == parent_arn:
            return server, root, path.name
    raise AssertionError("the parent's protocol was not published")


def test_verify_walks_a_distributed_map_and_a_nested_child(aws, tmp_path, serve, tracker, owner, register_certificate):
    child_machine = create(aws, "greeter", NESTED_CHILD)
    definition = fan_out("STANDARD")
    definition["States"]["Report"] = nested_parent(child_machine)["States"]["Call"] | {"End": True}
    del definition["States"]["Report"]["Next"]
    machine = create(aws, "fan", definition, logged=True)
    parent_arn = run(aws, machine, "batch-1", {"items": [1, 2, 3]})
    server, root, name = tracked(aws, tmp_path, serve, tracker, owner, register_certificate, (machine,), parent_arn)

    report = verify_protocol(server.url(name), tracker, VerifyOptions(timeout=5.0))
    children = report.check(CHECK_CHILDREN)
    assert children.ok is True and children.reason.startswith("4 child executions of 2 states verified"), children
    assert report.failed_checks == [] and [c.check for c in report.checks if c.ok is None] == [CHECK_ENS]

    # a child's protocol withdrawn: the walk says which one
    listing = next(
        json.loads(p.read_text())
        for p in (root / "documents").glob("*.json")
        if p.read_text().startswith('{"event_id"') and '"kind":"children"' in p.read_text()
    )
    (root / f"{listing['instances'][0]}.json").unlink()
    failed = verify_protocol(server.url(name), tracker, VerifyOptions(timeout=5.0)).check(CHECK_CHILDREN)
    assert failed.ok is False and f"child {listing['instances'][0][:12]}" in failed.reason


# Verifying costs about a second per child on ape's in-process chain (each child protocol is a
# verification of its own): 1,000 Express children are tracked in bench/children.py, not verified here.
# On anvil (bin/test's second run): 201 full verifications take about 25 s there, and over 15
# minutes on ape's in-process chain, whose log queries are slow.
@pytest.mark.anvil
@pytest.mark.parametrize(("execution_type", "count"), [("STANDARD", 200)])
def test_verify_from_the_parent_of_a_large_map_run(
    aws, tmp_path, serve, tracker, owner, register_certificate, execution_type, count
):
    machine = create(aws, "fan", fan_out(execution_type), logged=True)
    parent_arn = run(aws, machine, "batch-1", {"items": list(range(count))}, timeout=900)
    server, _root, name = tracked(aws, tmp_path, serve, tracker, owner, register_certificate, (machine,), parent_arn)
    started = time.perf_counter()
    # Check 4 is left out: other tests on the same anvil install ENS and names of their own, and
    # ENS is checked elsewhere; this test is about walking to every child.
    ens = CheckResult(CHECK_ENS, None, "not checked: ENS is not part of this test")
    report = verify_protocol(
        server.url(name), tracker, VerifyOptions(timeout=10.0, total_timeout=600.0), ens_result=ens
    )
    seconds = time.perf_counter() - started
    children = report.check(CHECK_CHILDREN)
    assert children.ok is True and children.reason.startswith(f"{count} child executions of 1 states"), children
    assert report.failed_checks == []
    print(f"verified the parent and {count} {execution_type} children in {seconds:.1f} s")
