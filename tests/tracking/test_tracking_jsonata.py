"""A JSONata state machine (QueryLanguage JSONata, Output, Assign) whose expression fails with
`EvaluationFailed`: tracked like any other, the model id still the definition text.

moto cannot run JSONata (its parser's JSONata runtime is not installed: every expression fails
with States.Runtime), so this history is a fixture in the shape GetExecutionHistory returns,
written from the API reference and validated here against botocore's model of that answer."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import botocore.session
from botocore.validate import ParamValidator

from tracker.aws.event_types import EventRole, role_of
from tracker.aws.events import history_event
from tracker.aws.executions import Execution, ExecutionRef
from tracker.documents.ids import sha256_hex, to_millis
from tracker.tracking.build import build_documents
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "jsonata_evaluation_failed.json").read_text())


def parsed_history() -> list[dict]:
    events = []
    for raw in FIXTURE["history"]["events"]:
        when = datetime.datetime.fromisoformat(raw["timestamp"].replace("Z", "+00:00"))
        events.append({**raw, "timestamp": when})
    return events


def test_the_fixture_is_a_get_execution_history_answer_by_botocores_model():
    model = botocore.session.get_session().get_service_model("stepfunctions")
    shape = model.operation_model("GetExecutionHistory").output_shape
    report = ParamValidator().validate({"events": parsed_history()}, shape)
    assert not report.has_errors(), report.generate_report()
    assert role_of("EvaluationFailed") is EventRole.OTHER


class FixtureSource:
    """The fixture's execution as the history source would load it (DescribeExecution's facts and
    the definition beside its history)."""

    name = "fixture"

    def list_executions(self) -> list[ExecutionRef]:
        return [ExecutionRef(FIXTURE["execution_arn"], FIXTURE["state_machine_arn"], "FAILED")]

    def load(self, ref: ExecutionRef) -> Execution:
        events = tuple(history_event(raw) for raw in parsed_history())
        return Execution(
            execution_arn=ref.execution_arn,
            state_machine_arn=ref.state_machine_arn,
            name="order-7",
            start_date_ms=to_millis(events[0].timestamp_ms),
            definition=FIXTURE["definition"],
            input=FIXTURE["input"],
            events=events,
            role_arn="arn:aws:iam::123456789012:role/pricing",
            # a JSONata evaluation failure is not redrivable by fixing the input: the machine must change
            redrive_status="NOT_REDRIVABLE",
        )


def test_a_jsonata_machine_with_evaluation_failed_is_tracked_and_ended(tracker, publisher, state_dir):
    docs = build_documents(FixtureSource().load(FixtureSource().list_executions()[0]))
    assert docs.model_id == sha256_hex(FIXTURE["definition"])
    states = [json.loads(d.content) for d in docs.states]
    assert [(s["state_name"], "output_sha256" in s) for s in states] == [("Price", True), ("Split", False)]
    (attempt,) = docs.attempts
    end = json.loads(attempt.end.content)
    assert (end["status"], end["error"], end["state_count"]) == ("FAILED", "States.QueryEvaluationError", 2)
    assert docs.final

    summary = track(TrackConfig(state_dir=state_dir), FixtureSource(), tracker, publisher)
    assert (summary.states_registered, summary.instances_terminated, summary.skipped) == (2, 1, [])
    record = tracker.instance(str(tracker.sender.address), docs.execution_id)
    assert record.final and record.state_count == 2 and record.head == docs.head()
