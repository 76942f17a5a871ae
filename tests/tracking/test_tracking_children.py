"""Executions started by executions: Distributed Map children (Standard through the history API,
Express through CloudWatch Logs) and a nested `states:startExecution.sync` child, each tracked as
an instance of its own that names its parent, the visit that started it and its Map Run, while the
parent's state document names them through a children document.

moto runs a Distributed Map's items inside the parent and fails startExecution tasks: the
emulation in `tracker.dev.sfn_emulation` runs them as child executions, as the API reference
describes (ListExecutions with mapRunArn, DescribeExecution's mapRunArn, the labelled child
workflow ARN, Express children in the parent's log group)."""

from __future__ import annotations

import json
import time

import pytest
from tracking_helpers import ROLE

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track

GROUP = "fan-out-logs"


def fan_out(execution_type: str, concurrency: int = 50) -> dict:
    return {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Next": "Fan"},
            "Fan": {
                "Type": "Map",
                "Label": "fan",
                "ItemsPath": "$.items",
                "MaxConcurrency": concurrency,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
                    "StartAt": "Work",
                    "States": {"Work": {"Type": "Pass", "Next": "Done"}, "Done": {"Type": "Succeed"}},
                },
                "ResultPath": "$.results",
                "Next": "Report",
            },
            "Report": {"Type": "Succeed"},
        },
    }


NESTED_CHILD = {"StartAt": "Greet", "States": {"Greet": {"Type": "Pass", "Result": "hi", "End": True}}}


def nested_parent(child_arn: str, pattern: str = ".sync") -> dict:
    return {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": f"arn:aws:states:::states:startExecution{pattern}",
                "Parameters": {"StateMachineArn": child_arn, "Input": {"who": "child"}},
                "Next": "After",
            },
            "After": {"Type": "Succeed"},
        },
    }


def create(session, name: str, definition: dict, logged: bool = False) -> str:
    sfn = session.client("stepfunctions")
    extra = {}
    if logged:
        logs = session.client("logs")
        logs.create_log_group(logGroupName=GROUP)
        group_arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}:*"
        extra["loggingConfiguration"] = {
            "level": "ALL",
            "includeExecutionData": True,
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": group_arn}}],
        }
    return sfn.create_state_machine(name=name, definition=json.dumps(definition, indent=2), roleArn=ROLE, **extra)[
        "stateMachineArn"
    ]


def run(session, machine: str, name: str, payload: dict, timeout: float = 300) -> str:
    sfn = session.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + timeout
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    return arn


def document(tmp_path, identifier: str) -> dict:
    return json.loads((tmp_path / "protocol" / "documents" / f"{identifier}.json").read_bytes())


def walk(tmp_path, read_protocol, parent_instance: str) -> dict[str, list[dict]]:
    """From the parent's protocol to every child's instance document, by the state documents."""
    found: dict[str, list[dict]] = {}
    for entry in read_protocol(parent_instance)["instance_protocol"]:
        state = document(tmp_path, entry["state_hash"])
        if "children" in state:
            listing = document(tmp_path, state["children"])
            assert (listing["instance_id"], listing["event_id"]) == (parent_instance, state["event_id"])
            found[state["state_name"]] = [
                {"instance": document(tmp_path, child), "protocol": read_protocol(child)}
                for child in listing["instances"]
            ]
    return found


@pytest.mark.parametrize(("execution_type", "count"), [("STANDARD", 4), ("EXPRESS", 3)])
def test_distributed_map_children_are_instances_linked_both_ways(
    aws, tracker, publisher, state_dir, read_protocol, tmp_path, execution_type, count
):
    machine = create(aws, "fan", fan_out(execution_type), logged=True)
    parent_arn = run(aws, machine, "batch-1", {"items": list(range(count))})
    summary = track(TrackConfig(state_dir=state_dir), HistorySource(aws, Selection((machine,))), tracker, publisher)
    assert summary.instances_terminated == count + 1 and not summary.skipped
    parents = [
        json.loads(p.read_text())
        for p in (tmp_path / "protocol").glob("*.json")
        if document(tmp_path, json.loads(p.read_text())["instance_hash"])["execution_arn"] == parent_arn
    ]
    assert len(parents) == 1
    parent_instance = parents[0]["instance_hash"]
    children = walk(tmp_path, read_protocol, parent_instance)["Fan"]
    assert len(children) == count
    fan_event = next(
        document(tmp_path, e["state_hash"])["event_id"]
        for e in parents[0]["instance_protocol"]
        if document(tmp_path, e["state_hash"])["state_name"] == "Fan"
    )
    kind = "express" if execution_type == "EXPRESS" else "execution"
    for child in children:
        facts = child["instance"]
        assert facts["parent_instance_id"] == parent_instance and facts["parent_execution_arn"] == parent_arn
        assert (facts["parent_event_id"], facts["parent_state_name"]) == (fan_event, "Fan")
        assert facts["map_run_arn"].startswith("arn:aws:states:us-east-1:123456789012:mapRun:fan/fan:")
        assert facts["state_machine_arn"] == "arn:aws:states:us-east-1:123456789012:stateMachine:fan/fan"
        assert f":{kind}:fan/fan:" in facts["execution_arn"]
        assert [document(tmp_path, e["state_hash"])["state_name"] for e in child["protocol"]["instance_protocol"]] == [
            "Work",
            "Done",
        ]
        assert child["protocol"]["final"] is True
    # nothing left to do on a second run
    again = track(TrackConfig(state_dir=state_dir), HistorySource(aws, Selection((machine,))), tracker, publisher)
    assert again.transactions == 0


def test_a_nested_sync_child_and_its_parent_name_each_other(
    aws, tracker, publisher, state_dir, read_protocol, tmp_path
):
    child_machine = create(aws, "greeter", NESTED_CHILD)
    parent_machine = create(aws, "caller", nested_parent(child_machine))
    parent_arn = run(aws, parent_machine, "call-1", {})
    # the child's machine is selected too: its execution is tracked once, as the parent's child
    source = HistorySource(aws, Selection((parent_machine, child_machine)))
    summary = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert summary.instances_terminated == 2 and not summary.skipped
    protocols = [json.loads(p.read_text()) for p in (tmp_path / "protocol").glob("*.json")]
    assert len(protocols) == 2
    parent = next(p for p in protocols if document(tmp_path, p["instance_hash"])["execution_arn"] == parent_arn)
    (child,) = walk(tmp_path, read_protocol, parent["instance_hash"])["Call"]
    assert child["instance"]["parent_execution_arn"] == parent_arn
    assert child["instance"]["parent_state_name"] == "Call" and "map_run_arn" not in child["instance"]
    assert child["instance"]["state_machine_arn"] == child_machine
