"""What each Task state ran and read, in task documents committed by the state documents."""

from __future__ import annotations

import json
import time

import pytest
from support.task_services import (
    bucket,
    create_function,
    ecs_task_definition,
    machine,
    publish_new_code,
    put_json,
    run,
)

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.documents.ids import sha256_hex
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track


def invoke(function: str, next_state: str | None = None) -> dict:
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload.$": "$"},
        "ResultSelector": {"payload.$": "$.Payload"},
        "OutputPath": "$.payload",
    }
    return {**state, "Next": next_state} if next_state else {**state, "End": True}


def tracked(aws, machine_arn, tracker, publisher, state_dir, tmp_path) -> dict[str, list[dict]]:
    """Tracks the machine; returns, per execution ARN, each state's (state document, task document or None)."""
    source = HistorySource(aws, Selection((machine_arn,)))
    summary = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert not summary.skipped, summary.skipped
    documents = tmp_path / "protocol" / "documents"
    found: dict[str, list[dict]] = {}
    for path in (tmp_path / "protocol").glob("*.json"):
        protocol = json.loads(path.read_text())
        instance = json.loads((documents / f"{protocol['instance_hash']}.json").read_text())
        rows = []
        for entry in protocol["instance_protocol"]:
            state_bytes = (documents / f"{entry['state_hash']}.json").read_bytes()
            assert sha256_hex(state_bytes) == entry["state_hash"]
            state = json.loads(state_bytes)
            task = None
            if "task_id" in state:
                task_bytes = (documents / f"{state['task_id']}.json").read_bytes()
                assert sha256_hex(task_bytes) == state["task_id"], "the state document commits to the task document"
                assert entry["task_data"].endswith(f"/documents/{state['task_id']}.json")
                task = json.loads(task_bytes)
                assert state["version"] == 3 and task["instance_id"] == protocol["instance_hash"]
                assert task["state_name"] == state["state_name"] and task["event_id"] == state["event_id"]
            else:
                assert state["version"] == 2 and "task_data" not in entry
            rows.append({"state": state, "task": task})
        found[instance["execution_arn"]] = rows
    return found


def task_of(rows: list[dict], name: str) -> dict:
    return next(row["task"] for row in rows if row["state"]["state_name"] == name)


def test_a_lambda_task_on_a_published_version_records_that_versions_code(aws, tracker, publisher, state_dir, tmp_path):
    function = create_function(aws, "transform")
    arn = machine(
        aws,
        "etl",
        {
            "StartAt": "Prepare",
            "States": {
                "Prepare": {"Type": "Pass", "Next": "Transform"},
                "Transform": invoke("transform:1"),
            },
        },
    )
    execution = run(aws, arn, {"records": [1, 2]})
    rows = tracked(aws, arn, tracker, publisher, state_dir, tmp_path)[execution]
    assert rows[0]["task"] is None  # a Pass state runs nothing
    task = task_of(rows, "Transform")
    assert task["service"] == "lambda" and task["integration"] == "lambda:invoke"
    assert task["code_identity"] == "recorded"
    code = task["code"]
    assert code["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:transform"
    assert code["version"] == "1" and code["invoked"] == "transform:1"
    assert code["version_source"].startswith("TaskSucceeded output (ExecutedVersion")
    assert code["code_sha256"] == function["CodeSha256"]
    assert code["code_source"] == "lambda:GetFunction (Qualifier 1)"
    assert "read_after_the_fact" not in code
    assert task["parameters_sha256"]


def test_the_same_model_after_the_code_behind_its_alias_changed_shows_the_new_code(
    aws, tracker, publisher, state_dir, tmp_path
):
    first = create_function(aws, "transform")
    client = aws.client("lambda")
    client.create_alias(FunctionName="transform", Name="live", FunctionVersion="1")
    arn = machine(aws, "etl", {"StartAt": "Transform", "States": {"Transform": invoke("transform:live")}})
    before = run(aws, arn, name="before")
    second = publish_new_code(aws, "transform", "def handler(event, context):\n    return {'changed': True}\n")
    client.update_alias(FunctionName="transform", Name="live", FunctionVersion=second["Version"])
    after = run(aws, arn, name="after")
    assert second["CodeSha256"] != first["CodeSha256"]

    traces = tracked(aws, arn, tracker, publisher, state_dir, tmp_path)
    old, new = task_of(traces[before], "Transform"), task_of(traces[after], "Transform")
    # an alias is fine: Invoke reports which version ran, and that version's code is read
    assert old["code"]["version"] == "1" and old["code"]["code_sha256"] == first["CodeSha256"]
    assert new["code"]["version"] == "2" and new["code"]["code_sha256"] == second["CodeSha256"]
    assert old["code_identity"] == new["code_identity"] == "recorded"
    states = [row["state"] for row in traces[before]] + [row["state"] for row in traces[after]]
    assert len({state["task_id"] for state in states}) == 2


def test_latest_is_recorded_as_such_read_after_the_fact_and_pinned(aws, tracker, publisher, state_dir, tmp_path):
    function = create_function(aws, "transform")
    arn = machine(aws, "etl", {"StartAt": "Transform", "States": {"Transform": invoke("transform")}})
    execution = run(aws, arn)
    task = task_of(tracked(aws, arn, tracker, publisher, state_dir, tmp_path)[execution], "Transform")
    assert task["code_identity"] == "read after the fact"
    assert task["code"]["version"] == "$LATEST" and task["code"]["read_after_the_fact"] is True
    assert task["code"]["code_sha256"] == function["CodeSha256"]
    assert "when tracked" in task["code"]["code_source"]
    assert "not proven to be the code that ran" in task["code_note"]

    # $LATEST changes; tracking again must not change the registered state (the document is pinned)
    publish_new_code(aws, "transform", "def handler(event, context):\n    return 2\n")
    again = track(TrackConfig(state_dir=state_dir), HistorySource(aws, Selection((arn,))), tracker, publisher)
    assert not again.skipped and again.states_registered == 0


def test_the_legacy_function_arn_resource_with_a_version(aws, tracker, publisher, state_dir, tmp_path):
    function = create_function(aws, "load")
    arn = machine(
        aws,
        "etl",
        {
            "StartAt": "Load",
            "States": {"Load": {"Type": "Task", "Resource": f"{function['FunctionArn']}:1", "End": True}},
        },
    )
    execution = run(aws, arn)
    task = task_of(tracked(aws, arn, tracker, publisher, state_dir, tmp_path)[execution], "Load")
    assert task["integration"] == "lambda (function ARN)" and task["code_identity"] == "recorded"
    assert task["code"]["version"] == "1" and task["code"]["code_sha256"] == function["CodeSha256"]
    assert task["code"]["version_source"].startswith("the version the task invoked")


def test_an_ecs_task_with_two_containers(aws, tracker, publisher, state_dir, tmp_path):
    definition = ecs_task_definition(aws)
    arn = machine(
        aws,
        "etl",
        {
            "StartAt": "Extract",
            "States": {
                "Extract": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::ecs:runTask.sync",
                    "Parameters": {"Cluster": "etl", "TaskDefinition": "etl:1", "LaunchType": "FARGATE"},
                    "End": True,
                }
            },
        },
    )
    execution = run(aws, arn)
    task = task_of(tracked(aws, arn, tracker, publisher, state_dir, tmp_path)[execution], "Extract")
    assert task["service"] == "ecs" and task["integration"] == "ecs:runTask.sync"
    assert task["code_identity"] == "recorded"
    code = task["code"]
    assert code["task_definition_arn"] == definition["taskDefinitionArn"]
    assert code["family"] == "etl" and code["revision"] == 1
    assert [(c["name"], c["image"]) for c in code["containers"]] == [
        (c["name"], c["image"]) for c in definition["containerDefinitions"]
    ]
    digests = [c["image_digest"] for c in code["containers"]]
    assert all(d.startswith("sha256:") for d in digests) and len(set(digests)) == 2


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_a_distributed_map_reading_its_items_from_s3(aws, tracker, publisher, state_dir, tmp_path, versioned):
    bucket(aws, "batches", versioned)
    put = put_json(aws, "batches", "day-1.json", [{"id": 1}, {"id": 2}])
    arn = machine(
        aws,
        "etl",
        {
            "StartAt": "Each",
            "States": {
                "Each": {
                    "Type": "Map",
                    "ItemReader": {
                        "Resource": "arn:aws:states:::s3:getObject",
                        "ReaderConfig": {"InputType": "JSON"},
                        "Parameters": {"Bucket": "batches", "Key.$": "$.key"},
                    },
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "Item",
                        "States": {"Item": {"Type": "Pass", "End": True}},
                    },
                    "End": True,
                }
            },
        },
    )
    execution = run(aws, arn, {"key": "day-1.json"})
    # written after the run: a versioned bucket still says which version the state read (S3 lists
    # LastModified to the second, so the newer version comes a second later)
    time.sleep(1.1)
    put_json(aws, "batches", "day-1.json", [{"id": 3}])
    task = task_of(tracked(aws, arn, tracker, publisher, state_dir, tmp_path)[execution], "Each")
    assert task["state_type"] == "Map" and task["code_identity"] == "not applicable"
    [item] = task["data"]
    assert (item["bucket"], item["key"], item["role"]) == ("batches", "day-1.json", "item_reader")
    if versioned:
        assert item["versioned"] is True and item["version_id"] == put["VersionId"]
        assert item["etag"] == put["ETag"].strip('"')
        assert item["checksum_algorithm"] == "SHA256" and item["checksum"] == put["ChecksumSHA256"]
        assert "read_after_the_fact" not in item
    else:
        assert "versioned" not in item and "version_id" not in item  # false values are left out
        assert item["read_after_the_fact"] is True
        assert item["note"].startswith("unversioned bucket")


def test_a_service_without_code_identity_says_so(aws, tracker, publisher, state_dir, tmp_path):
    aws.client("dynamodb").create_table(
        TableName="catalog",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    arn = machine(
        aws,
        "etl",
        {
            "StartAt": "Lookup",
            "States": {
                "Lookup": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::dynamodb:getItem",
                    "Parameters": {"TableName": "catalog", "Key": {"k": {"S": "a"}}},
                    "End": True,
                }
            },
        },
    )
    execution = run(aws, arn)
    task = task_of(tracked(aws, arn, tracker, publisher, state_dir, tmp_path)[execution], "Lookup")
    assert task["service"] == "dynamodb" and task["integration"] == "dynamodb:getItem"
    assert task["code_identity"] == "not available for this service"
    assert task["code_note"] == "code identity not available for this service"
    assert "code" not in task and task["data"] == []
    scheduled = '{"TableName": "catalog", "Key": {"k": {"S": "a"}}}'
    assert task["parameters_sha256"] == sha256_hex(scheduled)


def test_a_container_image_function_records_its_image_digest(aws, tracker, publisher, state_dir, tmp_path):
    from support.task_services import ROLE

    from tracker.verify.content import TaskContent, read_task

    create_function(aws, "warmup")  # creates the role
    lam = aws.client("lambda")
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/score:3"
    function = lam.create_function(
        FunctionName="score", Role=ROLE, PackageType="Image", Code={"ImageUri": image}, Publish=True
    )
    resolved = lam.get_function(FunctionName="score", Qualifier="1")["Code"]["ResolvedImageUri"]
    arn = machine(aws, "etl", {"StartAt": "Score", "States": {"Score": invoke("score:1")}})
    execution = run(aws, arn)
    task = task_of(tracked(aws, arn, tracker, publisher, state_dir, tmp_path)[execution], "Score")
    assert task["code"]["package_type"] == "Image" and task["code"]["code_sha256"] == function["CodeSha256"]
    assert task["code"]["image_digest"] == resolved.rsplit("@", 1)[1]
    # and the verifier's strict reading accepts it
    documents = tmp_path / "protocol" / "documents"
    state = next(
        json.loads(path.read_text())
        for path in documents.glob("*.json")
        if json.loads(path.read_text()).get("state_name") == "Score" and json.loads(path.read_text())["kind"] == "state"
    )
    content = read_task((documents / f"{state['task_id']}.json").read_bytes())
    assert isinstance(content, TaskContent), content
    assert content.ran.endswith(f"image {task['code']['image_digest']}")


def test_an_s3_object_named_in_the_parameters(aws, tracker, publisher, state_dir, tmp_path):
    bucket(aws, "inputs", versioned=True)
    put = put_json(aws, "inputs", "orders.json", {"orders": 3})
    arn = machine(aws, "etl", {"StartAt": "Fetch", "States": {"Fetch": {
        "Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
        "Parameters": {"Bucket": "inputs", "Key.$": "$.key"},
        "ResultSelector": {"size.$": "$.ContentLength"},
        "End": True,
    }}})  # fmt: skip
    execution = run(aws, arn, {"key": "orders.json"})
    task = task_of(tracked(aws, arn, tracker, publisher, state_dir, tmp_path)[execution], "Fetch")
    assert task["service"] == "aws-sdk:s3" and task["integration"] == "aws-sdk:s3:getObject"
    assert task["code_identity"] == "not available for this service"
    [item] = task["data"]
    assert (item["bucket"], item["key"], item["role"]) == ("inputs", "orders.json", "parameters")
    assert item["versioned"] is True and item["version_id"] == put["VersionId"]
    assert item["checksum"] == put["ChecksumSHA256"]
