"""verify and task documents: what each state ran, the strict content checks of the document, and
`--aws` comparing the recorded code with what Lambda says today."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.task_services import create_function, machine, publish_new_code, run

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.documents.canonical import canonical_json
from tracker.publish.targets import DirectoryPublisher
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track
from tracker.verify.content import Malformed, TaskContent, read_task
from tracker.verify.report import VerifyOptions
from tracker.verify.verifier import verify_protocol

REGION = "us-east-1"
INSTANCE = "ab" * 32


@pytest.fixture
def tracked_alias(aws, tmp_path, serve, tracker, owner, register_certificate):
    """An execution whose Transform task invoked transform:live (version 1), tracked and served."""
    function = create_function(aws, "transform")
    aws.client("lambda").create_alias(FunctionName="transform", Name="live", FunctionVersion="1")
    arn = machine(aws, "etl", {"StartAt": "Prepare", "States": {
        "Prepare": {"Type": "Pass", "Next": "Transform"},
        "Transform": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "transform:live", "Payload.$": "$"},
            "End": True,
        },
    }})  # fmt: skip
    run(aws, arn)
    root = tmp_path / "protocol"
    root.mkdir()
    server = serve(root)
    register_certificate(tracker, owner, server.fingerprint)
    summary = track(
        TrackConfig(state_dir=tmp_path / "state"),
        HistorySource(aws, Selection((arn,))),
        tracker,
        DirectoryPublisher(root, server.origin),
    )
    [protocol_file] = set(summary.protocols_written)
    return function, server.url(protocol_file), root


def test_verify_shows_what_each_task_ran(tracked_alias, tracker):
    function, url, _root = tracked_alias
    report = verify_protocol(url, tracker, VerifyOptions(timeout=5.0))
    assert [state.ok for state in report.states] == [True, True]
    assert report.states[0].ran is None
    assert report.states[1].ran == f"Transform: lambda transform v1, code sha256 {function['CodeSha256']}"
    assert "task document ok" in report.states[1].reason
    assert report.to_json()["results"][6]["ran"] == report.states[1].ran
    assert report.code_today == []  # only with --aws


def test_a_task_document_replaced_on_the_server_fails_its_state(tracked_alias, tracker):
    _function, url, root = tracked_alias
    protocol = json.loads((root / url.rsplit("/", 1)[1]).read_text())
    task_path = root / protocol["instance_protocol"][1]["task_data"].split("/", 3)[3]
    task = json.loads(task_path.read_text())
    task["code"]["code_sha256"] = "A" * 43 + "="  # other code, still a well-formed document
    task_path.write_bytes(canonical_json(task))
    report = verify_protocol(url, tracker, VerifyOptions(timeout=5.0))
    assert report.states[0].ok is True and report.states[1].ok is False
    assert "task document hashes to" in report.states[1].reason and report.states[1].ran is None
    assert report.verdict == "failed"


def test_verify_aws_reports_no_drift_then_the_alias_moving(aws, tracked_alias, tracker):
    _function, url, _root = tracked_alias
    [same] = verify_protocol(url, tracker, VerifyOptions(timeout=5.0), aws_session=aws).code_today
    assert same.ok is True and same.state_name == "Transform" and same.position == 1
    assert (
        same.reason.startswith("lambda transform v1: the same code today")
        and "transform:live still runs it" in same.reason
    )

    second = publish_new_code(aws, "transform", "def handler(event, context):\n    return 'new'\n")
    aws.client("lambda").update_alias(FunctionName="transform", Name="live", FunctionVersion=second["Version"])
    [moved] = verify_protocol(url, tracker, VerifyOptions(timeout=5.0), aws_session=aws).code_today
    assert moved.ok is False
    assert f"transform:live now runs version 2 with code sha256 {second['CodeSha256']}: drift" in moved.reason


def test_verify_aws_reports_a_version_whose_code_is_gone(aws, tracked_alias, tracker):
    _function, url, _root = tracked_alias
    aws.client("lambda").delete_function(FunctionName="transform")
    [gone] = verify_protocol(url, tracker, VerifyOptions(timeout=5.0), aws_session=aws).code_today
    assert gone.ok is False and gone.reason.startswith("drift: lambda transform v1 cannot be read today")


# ---------------------------------------------------------------------- the content checks

SHA = "5MNha4uNaBR0aEvaRt7SE4zED8eW73t2oGKlMcVF10w="


def task(**changes) -> dict:
    document = {
        "kind": "task",
        "version": 1,
        "instance_id": INSTANCE,
        "state_name": "Transform",
        "event_id": 3,
        "state_type": "Task",
        "service": "lambda",
        "integration": "lambda:invoke",
        "resource": "arn:aws:states:::lambda:invoke",
        "code_identity": "recorded",
        "parameters_sha256": "cd" * 32,
        "code": {
            "kind": "lambda",
            "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:transform",
            "invoked": "transform:7",
            "version": "7",
            "version_source": "TaskSucceeded output (ExecutedVersion, from Lambda's Invoke)",
            "code_sha256": SHA,
            "code_source": "lambda:GetFunction (Qualifier 7)",
            "package_type": "Zip",
        },
        "data": [],
    }
    for key, value in changes.items():
        if key.startswith("code_") and key != "code_identity" and key != "code_note":
            if value is None:
                document["code"].pop(key[5:], None)
            else:
                document["code"][key[5:]] = value
        elif value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def test_a_well_formed_task_document_reads():
    content = read_task(canonical_json(task()))
    assert isinstance(content, TaskContent)
    assert (content.instance_id, content.state_name, content.event_id) == (INSTANCE, "Transform", 3)
    assert content.ran == f"lambda transform v7, code sha256 {SHA}"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (task(version=2), "has version '2', not 1"),
        (task(extra="x"), "fields this format does not define: extra"),
        (task(code_version="$LATEST"), "records $LATEST without marking it read after the fact"),
        (task(code_code_sha256=None), "recorded, but it was read after the fact or has no code_sha256"),
        (task(code_read_after_the_fact=True), "recorded, but it was read after the fact"),
        (task(code_read_after_the_fact=False), "a flag is written only as true"),
        (task(code_code_sha256="not base64"), "malformed code_sha256"),
        (
            task(code_function_arn="arn:aws:lambda:us-east-1:123456789012:function:transform:7"),
            "malformed function_arn",
        ),
        (task(code_identity="not available for this service"), "but records code"),
        (task(code_identity="fine"), "has code_identity 'fine'"),
        (task(code=None), "recorded but records no code"),
        (task(service="ecs"), "code of kind 'lambda' for service 'ecs'"),
        (task(state_type="Map"), "'not applicable' for a Task state"),
        (task(event_id=-1), "malformed event_id"),
        (task(instance_id="xyz"), "malformed instance_id"),
        (task(child={"instance_id": INSTANCE}), "child workflow"),
        (
            task(data=[{"bucket": "b", "key": "k", "role": "parameters", "source": "s3"}]),
            "unversioned bucket that is not flagged",
        ),
        (
            task(data=[{"bucket": "b", "key": "k", "role": "output", "source": "s3", "versioned": True}]),
            "role 'output'",
        ),
    ],
)
def test_a_task_document_that_contradicts_itself_is_malformed(document, reason):
    content = read_task(canonical_json(document))
    assert isinstance(content, Malformed) and reason in content.reason, content


def test_a_task_document_must_be_canonical_and_ours():
    text = json.dumps(task(), indent=1).encode()
    content = read_task(text)
    assert isinstance(content, Malformed) and "canonical" in content.reason
    content = read_task(b'{"no": "kind"}')
    assert isinstance(content, Malformed) and "not in this project's format" in content.reason


def test_an_ecs_task_document_is_checked_against_its_task_definition_arn():
    ecs = task(
        service="ecs",
        integration="ecs:runTask.sync",
        code={
            "kind": "ecs",
            "task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/etl:3",
            "family": "etl",
            "revision": 3,
            "source": "TaskSucceeded output",
            "containers": [{"name": "a", "image": "x:1", "image_digest": "sha256:" + "e" * 64}],
        },
    )
    content = read_task(canonical_json(ecs))
    assert isinstance(content, TaskContent) and content.ran == f"ecs task definition etl:3 (a sha256:{'e' * 64})"
    ecs["code"]["revision"] = 4
    content = read_task(canonical_json(ecs))
    assert isinstance(content, Malformed) and "family and revision that are not those of" in content.reason


class WithoutTaskReads:
    """A history source that gives the tracker no AWS session: it writes no task documents, as a
    tracker before task documents did (or a publisher leaving them out)."""

    name = "history"

    def __init__(self, source):
        self.source = source

    def list_executions(self):
        return self.source.list_executions()

    def load(self, ref):
        return self.source.load(ref)


def test_a_task_state_without_a_task_document_is_not_passed(aws, tmp_path, serve, tracker, owner, register_certificate):
    create_function(aws, "transform")
    arn = machine(aws, "etl", {"StartAt": "Prepare", "States": {
        "Prepare": {"Type": "Pass", "Next": "Transform"},
        "Transform": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "transform:1", "Payload.$": "$"},
            "End": True,
        },
    }})  # fmt: skip
    run(aws, arn)
    root = tmp_path / "protocol"
    root.mkdir()
    server = serve(root)
    register_certificate(tracker, owner, server.fingerprint)
    summary = track(
        TrackConfig(state_dir=tmp_path / "state"),
        WithoutTaskReads(HistorySource(aws, Selection((arn,)))),
        tracker,
        DirectoryPublisher(root, server.origin),
    )
    [protocol_file] = set(summary.protocols_written)
    report = verify_protocol(server.url(protocol_file), tracker, VerifyOptions(timeout=5.0))
    prepare, transform = report.states
    assert prepare.ok is True
    assert transform.ok is None and transform.ran is None
    assert "the model's state runs a task, but its state document names no task document" in transform.reason
    assert report.verdict == "incomplete"


def test_the_command_with_aws_lists_the_code_today(tracked_alias, verify_command):
    function, url, _root = tracked_alias
    outcome = verify_command(url, "--aws")
    [state] = [row for row in outcome.data["results"] if row.get("ran")]
    assert state["ran"] == f"Transform: lambda transform v1, code sha256 {function['CodeSha256']}"
    [today] = outcome.data["code_today"]
    assert today["check"] == "code_today" and today["ok"] is True and today["state_name"] == "Transform"


def test_region_without_aws_is_refused(tracked_alias, verify_command):
    _function, url, _root = tracked_alias
    outcome = verify_command(url, "--region", "eu-west-1")
    assert outcome.exit_code != 0 and "--region goes with --aws" in outcome.stderr
