"""A failed Distributed Map redriven the AWS way: the parent's redrive redrives the SAME Map Run
(`MapRunRedriven`, DescribeMapRun's redriveCount), and only its unsuccessful Standard children run
again, each redriven under its own ARN (their histories continue after `ExecutionRedriven`).

moto has neither redrive nor Map Run children: the emulation in `tracker.dev.sfn_emulation` adds
both from the Step Functions developer guide ("Redriving Map Runs") and the API reference
(RedriveExecution, DescribeMapRun, MapRunRedrivenEventDetails). The children's Work task fails for
real: it reads a DynamoDB table that does not exist yet; creating it is the operator's fix before
the redrive. What a verifier must then see: each child one instance with two attempts, the parent
one continuous trace, the visit that started the Map Run naming every child, nothing twice."""

from __future__ import annotations

import json
import time

from support.task_services import create_lookup_table
from tracking_helpers import ROLE

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.chain.contract import Status
from tracker.documents.facts import execution_id
from tracker.documents.ids import to_millis
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track

LOOKUPS = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Next": "Fan"},
        "Fan": {
            "Type": "Map",
            "Label": "lookups",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Work",
                "States": {
                    "Work": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::dynamodb:getItem",
                        "Parameters": {"TableName": "fan-lookup", "Key": {"id": {"S": "a"}}},
                        "Next": "Done",
                    },
                    "Done": {"Type": "Succeed"},
                },
            },
            "ResultPath": "$.results",
            "Next": "Report",
        },
        "Report": {"Type": "Succeed"},
    },
}


def wait_for_end(sfn, arn: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} did not end"
        time.sleep(0.05)
    return described


def document(tmp_path, identifier: str) -> dict:
    return json.loads((tmp_path / "protocol" / "documents" / f"{identifier}.json").read_bytes())


def states_of(tmp_path, protocol: dict) -> list[dict]:
    return [document(tmp_path, entry["state_hash"]) for entry in protocol["instance_protocol"]]


def test_a_redriven_map_run_redrives_its_children_in_their_own_traces(
    aws, tracker, publisher, state_dir, read_protocol, tmp_path
):
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(name="fanredo", definition=json.dumps(LOOKUPS, indent=2), roleArn=ROLE)[
        "stateMachineArn"
    ]
    parent_arn = sfn.start_execution(stateMachineArn=machine, name="batch-1", input=json.dumps({"items": [1, 2, 3]}))[
        "executionArn"
    ]
    assert wait_for_end(sfn, parent_arn)["status"] == "FAILED"
    [run] = sfn.list_map_runs(executionArn=parent_arn)["mapRuns"]
    map_run = run["mapRunArn"]
    failed = {c["executionArn"] for c in sfn.list_executions(mapRunArn=map_run)["executions"]}
    assert len(failed) == 3

    source = HistorySource(aws, Selection((machine,)))
    first = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert (first.instances_terminated, first.attempts_ended, first.child_executions) == (0, 4, 3)
    protocols = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "protocol").glob("*.json")}
    parent_instance = next(i for i in protocols if document(tmp_path, i)["execution_arn"] == parent_arn)
    [fan_before] = [s for s in states_of(tmp_path, protocols[parent_instance]) if s["state_name"] == "Fan"]
    listing = document(tmp_path, fan_before["children"])
    assert len(listing["instances"]) == 3 and listing["map_run_arn"] == map_run

    dynamodb = aws.client("dynamodb")
    create_lookup_table(dynamodb, "fan-lookup", {"id": {"S": "a"}})
    sfn.redrive_execution(executionArn=parent_arn)
    assert wait_for_end(sfn, parent_arn)["status"] == "SUCCEEDED"

    # AWS's shapes: the same Map Run redriven, its children redriven under their own ARNs
    event_types = set(sfn.meta.service_model.shape_for("HistoryEventType").enum)
    events = sfn.get_execution_history(executionArn=parent_arn)["events"]
    assert all(event["type"] in event_types for event in events)
    after_redrive = [e["type"] for e in events[[e["type"] for e in events].index("ExecutionRedriven") :]]
    assert after_redrive[:2] == ["ExecutionRedriven", "MapStateEntered"] and "MapRunStarted" not in after_redrive
    [redriven] = [e for e in events if e["type"] == "MapRunRedriven"]
    assert redriven["mapRunRedrivenEventDetails"] == {"mapRunArn": map_run, "redriveCount": 1}
    assert [r["mapRunArn"] for r in sfn.list_map_runs(executionArn=parent_arn)["mapRuns"]] == [map_run]
    described_run = sfn.describe_map_run(mapRunArn=map_run)
    assert (described_run["status"], described_run["redriveCount"]) == ("SUCCEEDED", 1)
    assert described_run["executionCounts"]["total"] == 3 and described_run["executionCounts"]["failed"] == 0
    children = sfn.list_executions(mapRunArn=map_run)["executions"]
    assert {c["executionArn"] for c in children} == failed
    assert {(c["status"], c["redriveCount"]) for c in children} == {("SUCCEEDED", 1)}

    second = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert (second.instances_terminated, second.child_executions) == (4, 3) and not second.skipped
    protocols = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "protocol").glob("*.json")}
    assert len(protocols) == 4  # the parent and its three children, nothing twice

    parent = protocols[parent_instance]
    parent_states = states_of(tmp_path, parent)
    assert parent["final"] is True
    assert [(s["state_name"], s["attempt"]) for s in parent_states] == [
        ("Prepare", 0),
        ("Fan", 0),
        ("Fan", 1),
        ("Report", 1),
    ]
    assert [s["seq"] for s in parent_states] == [0, 1, 2, 3]
    assert [s["previous_state_id"] for s in parent_states] == [
        "",
        *(e["state_hash"] for e in parent["instance_protocol"][:-1]),
    ]
    # the visit that started the Map Run names every child, as it did before the redrive; the
    # redriven visit started none (its MapRunRedriven names the same Map Run)
    assert parent_states[1] == fan_before
    assert "children" not in parent_states[2]
    assert sorted(listing["instances"]) == sorted(i for i in protocols if i != parent_instance)

    owner = str(tracker.sender.address)
    for child in listing["instances"]:
        facts = document(tmp_path, child)
        assert facts["execution_arn"] in failed
        assert (facts["parent_instance_id"], facts["parent_event_id"], facts["map_run_arn"]) == (
            parent_instance,
            fan_before["event_id"],
            map_run,
        )
        protocol = protocols[child]
        assert protocol["final"] is True
        assert [(s["state_name"], s["attempt"]) for s in states_of(tmp_path, protocol)] == [
            ("Work", 0),
            ("Work", 1),
            ("Done", 1),
        ]
        assert [(a["attempt"], a["final"]) for a in protocol["attempts"]] == [(0, False), (1, True)]
        described = sfn.describe_execution(executionArn=facts["execution_arn"])
        record = tracker.instance(owner, execution_id(facts["execution_arn"], to_millis(described["startDate"])))
        assert (record.state_count, record.attempts, record.status) == (3, 2, Status.FINAL)
    record = tracker.instance(owner, execution_id(parent_arn, document(tmp_path, parent_instance)["start_date_ms"]))
    assert (record.state_count, record.attempts, record.status) == (4, 2, Status.FINAL)
    # and nothing more to do
    assert track(TrackConfig(state_dir=state_dir), source, tracker, publisher).transactions == 0


def test_a_redriven_map_run_starts_its_failed_express_children_again_at_the_redriven_visit(
    aws, tracker, publisher, state_dir, read_protocol, tmp_path
):
    """Express children are never redriven: the Map Run's redrive starts each failed item again as
    a new execution (a new ARN; AWS: StartExecution). The first visit's children document keeps
    naming the children it started (final, FAILED: an Express execution never changes once ended);
    the redriven visit gets a children document of its own naming the new ones, which name it."""
    group = "fan-logs"
    aws.client("logs").create_log_group(logGroupName=group)
    express = json.loads(json.dumps(LOOKUPS))
    express["States"]["Fan"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] = "EXPRESS"
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="fanfast",
        definition=json.dumps(express, indent=2),
        roleArn=ROLE,
        loggingConfiguration={
            "level": "ALL",
            "includeExecutionData": True,
            "destinations": [
                {"cloudWatchLogsLogGroup": {"logGroupArn": f"arn:aws:logs:us-east-1:123456789012:log-group:{group}:*"}}
            ],
        },
    )["stateMachineArn"]
    parent_arn = sfn.start_execution(stateMachineArn=machine, name="batch-2", input=json.dumps({"items": [1, 2]}))[
        "executionArn"
    ]
    assert wait_for_end(sfn, parent_arn)["status"] == "FAILED"
    [run] = sfn.list_map_runs(executionArn=parent_arn)["mapRuns"]
    map_run = run["mapRunArn"]

    source = HistorySource(aws, Selection((machine,)))
    first = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    # the two Express children ended for good; the parent can still be redriven
    assert (first.instances_terminated, first.child_executions) == (2, 2) and not first.skipped
    protocols = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "protocol").glob("*.json")}
    parent_instance = next(i for i in protocols if document(tmp_path, i)["execution_arn"] == parent_arn)
    [fan_before] = [s for s in states_of(tmp_path, protocols[parent_instance]) if s["state_name"] == "Fan"]
    first_children = document(tmp_path, fan_before["children"])["instances"]
    assert len(first_children) == 2

    dynamodb = aws.client("dynamodb")
    create_lookup_table(dynamodb, "fan-lookup", {"id": {"S": "a"}})
    sfn.redrive_execution(executionArn=parent_arn)
    assert wait_for_end(sfn, parent_arn)["status"] == "SUCCEEDED"
    [redriven] = [
        e for e in sfn.get_execution_history(executionArn=parent_arn)["events"] if e["type"] == "MapRunRedriven"
    ]
    assert redriven["mapRunRedrivenEventDetails"] == {"mapRunArn": map_run, "redriveCount": 1}

    second = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert (second.instances_terminated, second.child_executions) == (3, 4) and not second.skipped
    protocols = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "protocol").glob("*.json")}
    assert len(protocols) == 5  # the parent, the two failed children and the two started again
    parent_states = states_of(tmp_path, protocols[parent_instance])
    assert [(s["state_name"], s["attempt"]) for s in parent_states] == [
        ("Prepare", 0),
        ("Fan", 0),
        ("Fan", 1),
        ("Report", 1),
    ]
    assert protocols[parent_instance]["final"] is True
    assert parent_states[1] == fan_before  # the first visit's document, children and all, unchanged
    again = document(tmp_path, parent_states[2]["children"])
    assert (again["instance_id"], again["event_id"], again["map_run_arn"]) == (
        parent_instance,
        parent_states[2]["event_id"],
        map_run,
    )
    assert len(again["instances"]) == 2 and not set(again["instances"]) & set(first_children)
    assert set(protocols) == {parent_instance, *first_children, *again["instances"]}
    for child, visit, outcome in [
        *((c, parent_states[1], ["Work"]) for c in first_children),
        *((c, parent_states[2], ["Work", "Done"]) for c in again["instances"]),
    ]:
        facts = document(tmp_path, child)
        assert ":express:fanfast/lookups:" in facts["execution_arn"]
        assert (facts["parent_instance_id"], facts["parent_event_id"], facts["map_run_arn"]) == (
            parent_instance,
            visit["event_id"],
            map_run,
        )
        assert [s["state_name"] for s in states_of(tmp_path, protocols[child])] == outcome
        assert protocols[child]["final"] is True
    assert track(TrackConfig(state_dir=state_dir), source, tracker, publisher).transactions == 0


def test_each_child_of_a_redriven_map_run_belongs_to_exactly_one_visit():
    """The split by start date: before the first MapRunRedriven the visit that started the run,
    from it on the redriven visit (a start at that very millisecond included); a child whose start
    the listing does not tell stays with the first visit, never with both."""
    from tracker.aws.children import started_children
    from tracker.aws.events import HistoryEvent

    run = "arn:aws:states:us-east-1:123456789012:mapRun:fan/fan:0b7d"
    events = [
        HistoryEvent(1, 0, "ExecutionStarted", 1000),
        HistoryEvent(2, 1, "MapStateEntered", 1001, {"name": "Fan"}),
        HistoryEvent(3, 2, "MapRunStarted", 1002, {"mapRunArn": run}),
        HistoryEvent(4, 3, "MapRunFailed", 1050),
        HistoryEvent(5, 4, "ExecutionFailed", 1060),
        HistoryEvent(6, 5, "ExecutionRedriven", 2000, {"redriveCount": 1}),
        HistoryEvent(7, 6, "MapStateEntered", 2001, {"name": "Fan"}),
        HistoryEvent(8, 7, "MapRunRedriven", 2002, {"mapRunArn": run, "redriveCount": 1}),
        HistoryEvent(9, 8, "MapRunFailed", 2050),
        HistoryEvent(10, 9, "ExecutionFailed", 2060),
        HistoryEvent(11, 10, "ExecutionRedriven", 3000, {"redriveCount": 2}),
        HistoryEvent(12, 11, "MapStateEntered", 3001, {"name": "Fan"}),
        HistoryEvent(13, 12, "MapRunRedriven", 3002, {"mapRunArn": run, "redriveCount": 2}),
    ]
    visits = started_children(events)
    assert [(v.event_id, v.map_run_arn, v.from_ms, v.until_ms) for v in visits] == [
        (2, run, None, 2002),
        (7, run, 2002, 3002),
        (12, run, 3002, None),
    ]
    for start, owner in [(1003, 2), (2001, 2), (2002, 7), (3001, 7), (3002, 12), (9999, 12), (None, 2)]:
        assert [v.event_id for v in visits if v.started(start)] == [owner], start
    # a MapRunRedriven naming something that is not a Map Run ARN starts nothing
    forged = [*events[:7], HistoryEvent(8, 7, "MapRunRedriven", 2002, {"mapRunArn": "arn:aws:s3:::bucket"})]
    assert [(v.event_id, v.until_ms) for v in started_children(forged)] == [(2, None)]
