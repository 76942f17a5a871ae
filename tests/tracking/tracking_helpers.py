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
