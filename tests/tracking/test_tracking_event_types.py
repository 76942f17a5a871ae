"""Every history event type botocore's Step Functions model lists is classified by the tracker, and
the histories the tests run against are in the shape GetExecutionHistory returns."""

from __future__ import annotations

import botocore.session
import pytest

from tracker.aws.arns import check_execution_arn, check_map_run_arn, check_state_machine_arn, state_machine_of
from tracker.aws.errors import MalformedArnError
from tracker.aws.event_types import ROLES, EventRole, entered_type_of, role_of
from tracker.aws.events import END_EVENTS, REDRIVEN_EVENT, HistoryEvent, state_visits


def botocore_event_types() -> list[str]:
    model = botocore.session.get_session().get_service_model("stepfunctions")
    return list(model.shape_for("HistoryEventType").enum)


def test_every_type_botocore_lists_is_classified():
    listed = botocore_event_types()
    unclassified = sorted(set(listed) - set(ROLES))
    assert not unclassified, f"history event types the tracker does not classify: {unclassified}"
    assert len(listed) >= 62  # the installed botocore's count when this table was written


def test_the_classification_agrees_with_what_the_trace_reads():
    ends = {t for t, role in ROLES.items() if role is EventRole.ENDS_EXECUTION}
    assert ends == set(END_EVENTS)
    assert {t for t, role in ROLES.items() if role is EventRole.REDRIVES_EXECUTION} == {REDRIVEN_EVENT}
    for event_type, role in ROLES.items():
        if role is EventRole.LEAVES_STATE:
            assert ROLES[entered_type_of(event_type)] is EventRole.ENTERS_STATE
    for inside in ("EvaluationFailed", "MapRunStarted", "MapRunRedriven", "TaskSubmitted", "ExecutionStarted"):
        assert ROLES[inside] is EventRole.OTHER
    assert ROLES["TaskStateAborted"] is EventRole.LEAVES_STATE
    # a type Step Functions adds later is read by its name's ending
    assert role_of("FutureStateEntered") is EventRole.ENTERS_STATE
    assert role_of("SomethingNew") is EventRole.OTHER


def test_an_aborted_branch_state_is_left_and_does_not_hold_the_trace():
    """A Parallel whose one branch fails aborts the other's Task: the visit is left, the
    execution goes on (Catch) and later states are released before the execution ends."""
    events = [
        HistoryEvent(1, 0, "ExecutionStarted", 1),
        HistoryEvent(2, 1, "ParallelStateEntered", 2, {"name": "Both"}),
        HistoryEvent(3, 2, "TaskStateEntered", 3, {"name": "Slow"}),
        HistoryEvent(4, 2, "FailStateEntered", 4, {"name": "Broken"}),
        HistoryEvent(5, 3, "TaskStateAborted", 5),
        HistoryEvent(6, 5, "ParallelStateFailed", 6),
        HistoryEvent(7, 6, "ParallelStateExited", 7, {"name": "Both", "output": "{}"}),
        HistoryEvent(8, 7, "PassStateEntered", 8, {"name": "Recover"}),
        HistoryEvent(9, 8, "PassStateExited", 9, {"name": "Recover", "output": "{}"}),
    ]
    visits = state_visits(events)
    assert [v.name for v in visits] == ["Both", "Slow"]  # Broken (a Fail state) never exits
    assert visits[1].exited is not None and visits[1].exited.type == "TaskStateAborted"


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:states:us-east-1:123456789012:stateMachine:etl",
        "arn:aws:states:us-east-1:123456789012:stateMachine:etl:7",
        "arn:aws:states:us-east-1:123456789012:stateMachine:etl:PROD",
        "arn:aws:states:us-east-1:123456789012:stateMachine:etl/fan-out",
    ],
)
def test_state_machine_arns_plain_qualified_and_labelled_are_accepted(arn):
    assert check_state_machine_arn(arn) == arn


def test_map_run_children_arns():
    child = "arn:aws:states:us-east-1:123456789012:execution:etl/fan-out:0f1e2d3c"
    express = "arn:aws:states:us-east-1:123456789012:express:etl/fan-out:run-id:child-id"
    assert check_execution_arn(child) == child and check_execution_arn(express) == express
    assert (
        state_machine_of(child)
        == state_machine_of(express)
        == "arn:aws:states:us-east-1:123456789012:stateMachine:etl/fan-out"
    )
    run = "arn:aws:states:us-east-1:123456789012:mapRun:etl/fan-out:1f13443b-e492"
    assert check_map_run_arn(run) == run
    with pytest.raises(MalformedArnError, match="malformed Map Run ARN"):
        check_map_run_arn("arn:aws:states:us-east-1:123456789012:mapRun:etl:1f13443b")
    with pytest.raises(MalformedArnError, match="malformed state machine ARN"):
        check_state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:etl/a/b")
