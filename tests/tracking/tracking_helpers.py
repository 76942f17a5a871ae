"""Machines and helpers shared by the tracking suite (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import time
from typing import Any

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/tracker-test"

# Pass, Choice, Wait (short), Map, Parallel and Succeed; input {"ok": false} takes the Fail branch.
ORDER_MACHINE = {
    "Comment": "order workflow",
    "StartAt": "Receive",
    "States": {
        "Receive": {"Type": "Pass", "Result": {"items": [1, 2], "ok": True}, "ResultPath": "$.order", "Next": "Check"},
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ok", "BooleanEquals": False, "Next": "Reject"}],
            "Default": "Settle",
        },
        "Settle": {"Type": "Wait", "Seconds": 1, "Next": "Pack"},
        "Pack": {
            "Type": "Map",
            "ItemsPath": "$.order.items",
            "ResultPath": "$.packed",
            "Iterator": {"StartAt": "PackItem", "States": {"PackItem": {"Type": "Pass", "End": True}}},
            "Next": "Ship",
        },
        "Ship": {
            "Type": "Parallel",
            "ResultPath": "$.shipped",
            "Branches": [
                {"StartAt": "Label", "States": {"Label": {"Type": "Pass", "End": True}}},
                {"StartAt": "Notify", "States": {"Notify": {"Type": "Pass", "End": True}}},
            ],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
        "Reject": {"Type": "Fail", "Error": "OrderRejected", "Cause": "the order was not ok"},
    },
}
# states entered by a succeeding run: Receive, Check, Settle, Pack, PackItem x2, Ship, Label, Notify, Done
SUCCEEDING_STATES = ["Receive", "Check", "Settle", "Pack", "PackItem", "PackItem", "Ship", "Label", "Notify", "Done"]
FAILING_STATES = ["Receive", "Check", "Reject"]


def create_machine(session, name: str = "orders", definition: dict | None = None, **kwargs: Any) -> str:
    sfn = session.client("stepfunctions")
    text = json.dumps(definition or ORDER_MACHINE, indent=2)
    return sfn.create_state_machine(name=name, definition=text, roleArn=ROLE, **kwargs)["stateMachineArn"]


def run_execution(session, machine_arn: str, name: str, payload: dict, wait: bool = True, timeout: float = 20) -> str:
    sfn = session.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine_arn, name=name, input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + timeout
    while wait and sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution {name} did not end"
        time.sleep(0.05)
    return arn


def history_as_log_messages(session, execution_arn: str, express_arn: str) -> list[str]:
    """A real execution's history in the CloudWatch Logs format AWS documents for Step Functions
    (id, previous_event_id, type, details, event_timestamp, execution_arn), under an Express ARN."""
    sfn = session.client("stepfunctions")
    messages = []
    for event in sfn.get_execution_history(executionArn=execution_arn)["events"]:
        details = next((value for key, value in event.items() if key.endswith("EventDetails")), None)
        message = {
            "id": str(event["id"]),
            "previous_event_id": str(event["previousEventId"]),
            "type": event["type"],
            "event_timestamp": str(int(event["timestamp"].timestamp() * 1000)),
            "execution_arn": express_arn,
            "redrive_count": "0",
        }
        if details is not None:
            message["details"] = details
        messages.append(json.dumps(message, separators=(",", ":")))
    return messages


def put_messages(session, group: str, stream: str, messages: list[str], timestamp_ms: int) -> None:
    logs = session.client("logs")
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": timestamp_ms + i, "message": m} for i, m in enumerate(messages)],
    )


def branch_order_ignored(names: list[str], branches: frozenset[str] = frozenset({"Label", "Notify"})) -> list[str]:
    """A trace with each run of Parallel branch states sorted: branches run concurrently, so the
    history (rightly) orders them as they happened, which differs from run to run."""
    result: list[str] = []
    run: list[str] = []
    for name in [*names, None]:
        if name in branches:
            run.append(name)
            continue
        result.extend(sorted(run))
        run = []
        if name is not None:
            result.append(name)
    return result
