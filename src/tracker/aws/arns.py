"""Step Functions ARNs: checking and taking them apart."""

from __future__ import annotations

import re

from tracker.aws.errors import MalformedArnError

_NAME = r"[A-Za-z0-9_.-]{1,80}"
# A machine, one of its versions or aliases (NAME:QUALIFIER), or the child workflow of one of its
# Distributed Map states (NAME/LABEL: the machine Map Run children run under).
STATE_MACHINE_ARN = re.compile(
    rf"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{{12}}:stateMachine:{_NAME}(/{_NAME}|:[A-Za-z0-9_.$-]+)?$"
)
EXECUTION_ARN = re.compile(
    rf"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{{12}}:(execution|express):{_NAME}(/{_NAME})?:[^:\s]+(:[^:\s]+)?$"
)
MAP_RUN_ARN = re.compile(rf"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{{12}}:mapRun:{_NAME}/{_NAME}:[^:\s]+$")


def check_state_machine_arn(arn: str) -> str:
    if not STATE_MACHINE_ARN.match(arn):
        raise MalformedArnError(
            f"malformed state machine ARN {arn!r} (expected arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)"
        )
    return arn


def check_execution_arn(arn: str) -> str:
    if not EXECUTION_ARN.match(arn):
        raise MalformedArnError(
            f"malformed execution ARN {arn!r} (expected arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME)"
        )
    return arn


def check_map_run_arn(arn: str) -> str:
    if not MAP_RUN_ARN.match(arn):
        raise MalformedArnError(
            f"malformed Map Run ARN {arn!r} (expected arn:aws:states:REGION:ACCOUNT:mapRun:MACHINE/LABEL:ID)"
        )
    return arn


def state_machine_of(execution_arn: str) -> str:
    """The state machine ARN an execution ARN (standard or express) belongs to; for a Map Run's
    child, the labelled ARN of the child workflow (`stateMachine:NAME/LABEL`)."""
    parts = execution_arn.split(":")
    return ":".join(parts[:5] + ["stateMachine", parts[6]])


def execution_name(execution_arn: str) -> str:
    return execution_arn.split(":")[7]
