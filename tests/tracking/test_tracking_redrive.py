"""Redrive: a failed execution is the end of an attempt, not final, while Step Functions may still
redrive it; a redrive continues the same trace (same instance, seq and hash chain continuing).

moto has no RedriveExecution: the emulation in `tracker.dev.sfn_emulation` adds it as the API
reference describes it (same ARN, history continued after `ExecutionRedriven`, restart from the
unsuccessful state with its input, refused with ExecutionNotRedrivable after 14 days). The
"Transform" task fails for real: it reads a DynamoDB table that does not exist yet, as a task
whose dependency is down does; creating the table is the fix an operator makes before redriving.
"""

from __future__ import annotations

import datetime
import json
import time

import pytest
from support.task_services import create_lookup_table as create_table_holding
from tracking_helpers import ROLE

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.aws.tasks import TaskReader
from tracker.chain.contract import Status
from tracker.tracking.build import build_documents, read_task_documents
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track

ETL = {
    "StartAt": "Load",
    "States": {
        "Load": {"Type": "Pass", "Result": {"id": "a"}, "ResultPath": "$.load", "Next": "Transform"},
        "Transform": {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:getItem",
            "Parameters": {"TableName": "lookup", "Key": {"id": {"S": "a"}}},
            "ResultPath": "$.item",
            "Next": "Store",
        },
        "Store": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


def wait_for_end(sfn, arn: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"{arn} did not end"
        time.sleep(0.05)


def create_lookup_table(session) -> None:
    ddb = session.client("dynamodb")
    create_table_holding(ddb, "lookup", {"id": {"S": "a"}, "value": {"S": "x"}})


@pytest.fixture
def failed_etl(aws):
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(name="etl", definition=json.dumps(ETL, indent=2), roleArn=ROLE)
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="nightly-1")["executionArn"]
    described = wait_for_end(sfn, arn)
    assert (described["status"], described["redriveStatus"]) == ("FAILED", "REDRIVABLE")
    return machine["stateMachineArn"], arn


def test_a_redriven_execution_continues_one_trace_and_becomes_final(
    aws, failed_etl, tracker, publisher, state_dir, read_protocol
):
    machine, arn = failed_etl
    source = HistorySource(aws, Selection((machine,)))
    owner = str(tracker.sender.address)

    first = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    docs = build_documents(source.load(source.list_executions()[0]), task_document=read_task_documents(TaskReader(aws)))
    record = tracker.instance(owner, docs.execution_id)
    # Load and Transform entered; the failure is an attempt's end, and the instance stays open
    assert (first.states_registered, first.attempts_ended, first.instances_terminated) == (2, 1, 0)
    assert (record.state_count, record.attempts, record.status) == (2, 1, Status.OPEN)
    protocol = read_protocol(docs.instance_id)
    assert protocol["final"] is False and [a["attempt"] for a in protocol["attempts"]] == [0]

    create_lookup_table(aws)
    sfn = aws.client("stepfunctions")
    sfn.redrive_execution(executionArn=arn)
    described = wait_for_end(sfn, arn)
    assert (described["status"], described["redriveCount"]) == ("SUCCEEDED", 1)

    second = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    redriven = build_documents(
        source.load(source.list_executions()[0]), task_document=read_task_documents(TaskReader(aws))
    )
    record = tracker.instance(owner, redriven.execution_id)
    # the same instance: Transform again, Store, Done continue the sequence; one chain head
    assert redriven.instance_id == docs.instance_id and redriven.state_ids[:2] == docs.state_ids
    assert (second.states_registered, second.instances_terminated) == (3, 1)
    assert (record.state_count, record.attempts, record.status) == (5, 2, Status.FINAL)
    assert record.head == redriven.head()
    names = [json.loads(d.content)["state_name"] for d in redriven.states]
    attempts = [json.loads(d.content)["attempt"] for d in redriven.states]
    assert names == ["Load", "Transform", "Transform", "Store", "Done"] and attempts == [0, 0, 1, 1, 1]
    protocol = read_protocol(docs.instance_id)
    assert protocol["final"] is True
    assert [(a["attempt"], a["state_count"], a["final"]) for a in protocol["attempts"]] == [(0, 2, False), (1, 5, True)]
    assert [e["seq"] for e in protocol["instance_protocol"]] == [0, 1, 2, 3, 4]
    # and nothing more to do
    assert track(TrackConfig(state_dir=state_dir), source, tracker, publisher).transactions == 0


def test_an_execution_past_the_redrive_window_is_refused_by_aws_and_then_final(
    aws, failed_etl, tracker, publisher, state_dir, read_protocol
):
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    machine, arn = failed_etl
    source = HistorySource(aws, Selection((machine,)))
    owner = str(tracker.sender.address)
    track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    # 15 days pass: the emulation keeps real time, so the execution's end is moved back instead
    execution = stepfunctions_parser_backends["123456789012"]["us-east-1"].describe_execution(arn)
    execution.stop_date -= datetime.timedelta(days=15)
    with pytest.raises(ClientError) as refused:
        aws.client("stepfunctions").redrive_execution(executionArn=arn)
    assert refused.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    assert aws.client("stepfunctions").describe_execution(executionArn=arn)["redriveStatus"] == "NOT_REDRIVABLE"

    later = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    docs = build_documents(source.load(source.list_executions()[0]), task_document=read_task_documents(TaskReader(aws)))
    record = tracker.instance(owner, docs.execution_id)
    # the same end, now final: terminated with the attempt it already reported, no new state
    assert (later.states_registered, later.instances_terminated, later.transactions) == (0, 1, 1)
    assert (record.state_count, record.attempts, record.status) == (2, 1, Status.FINAL)
    protocol = read_protocol(docs.instance_id)
    # both ends the chain holds of attempt 0: ended while redrivable, then terminated with the same end
    assert protocol["final"] is True
    assert [(a["attempt"], a["final"], a["end_hash"]) for a in protocol["attempts"]] == [
        (0, False, docs.attempts[0].end.id),
        (0, True, docs.attempts[0].end.id),
    ]


def test_the_redrive_emulation_answers_in_the_api_references_shapes(aws, failed_etl):
    """GetExecutionHistory and DescribeExecution after a redrive, checked against botocore's model."""
    _machine, arn = failed_etl
    create_lookup_table(aws)
    sfn = aws.client("stepfunctions")
    sfn.redrive_execution(executionArn=arn)
    wait_for_end(sfn, arn)
    model = sfn.meta.service_model
    event_types = set(model.shape_for("HistoryEventType").enum)
    events = sfn.get_execution_history(executionArn=arn)["events"]
    assert all(event["type"] in event_types for event in events)
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    redriven = next(event for event in events if event["type"] == "ExecutionRedriven")
    assert redriven["executionRedrivenEventDetails"] == {"redriveCount": 1}
    assert set(sfn.describe_execution(executionArn=arn)) >= {"redriveCount", "redriveDate", "redriveStatus"}
