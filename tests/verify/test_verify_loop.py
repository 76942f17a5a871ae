"""The whole loop: a state machine really runs on moto, track_execution registers and publishes it,
the protocol server serves the publish directory over TLS, and the verifier checks it."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.publish.targets import DirectoryPublisher
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track
from tracker.verify.report import CHECK_ENS, VerifyOptions
from tracker.verify.verifier import verify_protocol

REGION = "us-east-1"
MACHINE = {
    "StartAt": "Receive",
    "States": {
        "Receive": {"Type": "Pass", "Result": {"ok": True}, "Next": "Check"},
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Done"}],
            "Default": "Stop",
        },
        "Done": {"Type": "Succeed"},
        "Stop": {"Type": "Fail", "Error": "NotOk"},
    },
}


@pytest.fixture
def executed_machine(monkeypatch):
    """One finished execution on moto (which runs the state machine), and the boto3 session."""
    for key, value in {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        session = boto3.session.Session(region_name=REGION)
        sfn = session.client("stepfunctions")
        arn = sfn.create_state_machine(
            name="verify-loop", definition=json.dumps(MACHINE), roleArn="arn:aws:iam::123456789012:role/loop"
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, name="run-1", input="{}")["executionArn"]
        deadline = time.monotonic() + 20
        while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not end on moto"
            time.sleep(0.05)
        yield session, arn


@pytest.mark.parametrize("mode", ["direct", "anchor"])
def test_track_publish_serve_verify(mode, executed_machine, tmp_path, serve, tracker, owner, register_certificate):
    session, machine_arn = executed_machine
    root = tmp_path / "protocol"
    root.mkdir()
    server = serve(root)
    register_certificate(tracker, owner, server.fingerprint)
    publisher = DirectoryPublisher(root, server.origin)
    summary = track(
        TrackConfig(mode=mode, state_dir=tmp_path / "state"),
        HistorySource(session, Selection((machine_arn,))),
        tracker,
        publisher,
    )
    assert summary.executions == 1 and summary.states_registered == 3
    [protocol_file] = set(summary.protocols_written)  # a protocol is rewritten as its transactions are mined
    report = verify_protocol(server.url(protocol_file), tracker, VerifyOptions(timeout=5.0))
    assert report.failed_checks == [], [c.to_json() for c in report.checks if c.ok is False]
    assert [state.ok for state in report.states] == [True, True, True]
    if mode == "anchor":
        assert all("anchored under" in state.reason for state in report.states)
    # The execution ended SUCCEEDED: the tracker made the instance final with its end document.
    assert report.status == "final" and [(a.final, a.ok) for a in report.attempts] == [(True, True)]
    # ape's in-process chain has no ENS: the only check left open
    assert [c.check for c in report.checks if c.ok is None] == [CHECK_ENS]
