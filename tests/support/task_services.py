"""Lambda functions, ECS task definitions and S3 objects on moto for the task-identity tests.

Not tests: helpers that set up the services a Task state calls, through boto3 as a user would.
moto's simple Lambda backend (which `tracker.dev.sfn_emulation` makes the default) answers an
invocation with its payload without running the code, so a "function" is only its package."""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

ROLE = "arn:aws:iam::123456789012:role/tracker-test"


def package(source: str) -> bytes:
    """A zip deployment package holding handler.py."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()


def create_function(session: Any, name: str, source: str = "def handler(event, context):\n    return event\n") -> dict:
    """A Lambda function with its first published version (1), and its role when missing."""
    iam = session.client("iam")
    try:
        iam.get_role(RoleName=ROLE.rsplit("/", 1)[1])
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(RoleName=ROLE.rsplit("/", 1)[1], AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"}))
    return session.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="handler.handler",
        Code={"ZipFile": package(source)},
        Publish=True,
    )


def publish_new_code(session: Any, name: str, source: str) -> dict:
    """New code for the function, published as its next version."""
    client = session.client("lambda")
    client.update_function_code(FunctionName=name, ZipFile=package(source))
    return client.publish_version(FunctionName=name)


def run(
    session: Any, machine_arn: str, payload: dict | None = None, name: str | None = None, timeout: float = 20
) -> str:
    sfn = session.client("stepfunctions")
    arguments: dict[str, Any] = {"stateMachineArn": machine_arn, "input": json.dumps(payload or {})}
    if name:
        arguments["name"] = name
    arn = sfn.start_execution(**arguments)["executionArn"]
    deadline = time.monotonic() + timeout
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution {arn} did not end"
        time.sleep(0.05)
    return arn


def machine(session: Any, name: str, definition: dict) -> str:
    return session.client("stepfunctions").create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]


def ecs_task_definition(session: Any, cluster: str = "etl", family: str = "etl") -> dict:
    """A cluster and a task definition of two containers (an application and a log sidecar)."""
    ecs = session.client("ecs")
    ecs.create_cluster(clusterName=cluster)
    return ecs.register_task_definition(
        family=family,
        networkMode="bridge",
        containerDefinitions=[
            {"name": "extract", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/extract:1.4", "memory": 256},
            {"name": "logs", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32", "memory": 128},
        ],
    )["taskDefinition"]


def bucket(session: Any, name: str, versioned: bool) -> None:
    s3 = session.client("s3")
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def put_json(session: Any, bucket_name: str, key: str, value: Any) -> dict:
    return session.client("s3").put_object(
        Bucket=bucket_name, Key=key, Body=json.dumps(value).encode(), ChecksumAlgorithm="SHA256"
    )


def create_lookup_table(dynamodb: Any, name: str, item: dict) -> None:
    """A DynamoDB table keyed by the string `id`, holding `item`: the missing resource whose
    creation is the operator's fix before a redrive in the redrive tests."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=name, Item=item)
