"""start_execution --expect-code: refuse to start when a function the model's previous execution
ran now runs other code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.task_services import create_function, publish_new_code, run

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.tracking.config import TrackConfig
from tracker.tracking.control import CodeMismatchError, deploy_model, start_execution
from tracker.tracking.engine import track

NEW_CODE = "def handler(event, context):\n    return {'new': True}\n"


def definition(function: str) -> str:
    return json.dumps({"StartAt": "Transform", "States": {"Transform": {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload.$": "$"},
        "End": True,
    }}})  # fmt: skip


def deployed(aws, tracker, function: str) -> str:
    return deploy_model(
        aws, tracker, "etl", definition(function), role_arn="arn:aws:iam::123456789012:role/r"
    ).version_arn


def test_an_alias_moved_to_new_code_refuses_the_start(aws, tracker, publisher, tmp_path):
    first = create_function(aws, "transform")
    lam = aws.client("lambda")
    lam.create_alias(FunctionName="transform", Name="live", FunctionVersion="1")
    version = deployed(aws, tracker, "transform:live")
    run(aws, version, name="before")
    # the same code still: the start goes ahead
    started = start_execution(aws, tracker, publisher, version, expect_code=True, state_dir=tmp_path / "state")
    assert started.transaction_hash is not None  # started and its instance registered
    second = publish_new_code(aws, "transform", NEW_CODE)
    lam.update_alias(FunctionName="transform", Name="live", FunctionVersion=second["Version"])
    count = len(aws.client("stepfunctions").list_executions(stateMachineArn=version.rsplit(":", 1)[0])["executions"])
    with pytest.raises(CodeMismatchError) as refused:
        start_execution(aws, tracker, publisher, version, expect_code=True, state_dir=tmp_path / "state")
    assert str(refused.value) == (
        f"transform:live now runs version 2 with code sha256 {second['CodeSha256']}, but Transform of the previous "
        f"execution {started.execution_arn.rsplit(':', 1)[1]} of model {started.model_id[:12]}… ran version 1 with "
        f"{first['CodeSha256']}: refusing to start"
    )
    # nothing started
    after = len(aws.client("stepfunctions").list_executions(stateMachineArn=version.rsplit(":", 1)[0])["executions"])
    assert after == count


def test_latest_is_compared_with_the_code_the_tracker_recorded(aws, tracker, publisher, tmp_path):
    first = create_function(aws, "transform")
    version = deployed(aws, tracker, "transform")
    run(aws, version, name="before")
    state_dir = tmp_path / "state"
    # without a record of what $LATEST was when it ran, there is nothing honest to compare
    with pytest.raises(CodeMismatchError, match=r"whose code was never recorded when it ran"):
        start_execution(aws, tracker, publisher, version, expect_code=True, state_dir=state_dir)
    track(
        TrackConfig(state_dir=state_dir),
        HistorySource(aws, Selection((version.rsplit(":", 1)[0],))),
        tracker,
        publisher,
    )
    publish_new_code(aws, "transform", NEW_CODE)
    with pytest.raises(CodeMismatchError) as refused:
        start_execution(aws, tracker, publisher, version, expect_code=True, state_dir=state_dir)
    assert f"ran version $LATEST with {first['CodeSha256']}: refusing to start" in str(refused.value)


def test_no_previous_execution_to_compare_with(aws, tracker, publisher, tmp_path):
    create_function(aws, "transform")
    version = deployed(aws, tracker, "transform:1")
    with pytest.raises(
        CodeMismatchError, match=r"^no earlier execution of model [0-9a-f]{64} on .* start once without"
    ):
        start_execution(aws, tracker, publisher, version, expect_code=True, state_dir=tmp_path / "state")
