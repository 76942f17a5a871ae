"""Every Step Functions history event type and what it means for a trace.

The tracker reads a history as a sequence of states entered and left, and of attempts ended and
redriven; everything else happens inside a state (task progress, Map iterations and Map Runs,
JSONata evaluation failures) or is the start itself. `ROLES` classifies each type botocore's
`HistoryEventType` enum lists (stepfunctions 2016-11-23); a test fails when botocore lists one
this table lacks, so a new type is a decision, not an accident.
"""

from __future__ import annotations

import enum


class EventRole(enum.Enum):
    ENTERS_STATE = "enters a state"
    LEAVES_STATE = "leaves a state"  # with its output (`*StateExited`) or abandoned (`*StateAborted`)
    ENDS_EXECUTION = "ends the execution's attempt"
    REDRIVES_EXECUTION = "redrives the execution"
    OTHER = "other"  # the start, and what happens inside a state


_ENTERED = ("Choice", "Fail", "Map", "Parallel", "Pass", "Succeed", "Task", "Wait")
_EXITED = ("Choice", "Map", "Parallel", "Pass", "Succeed", "Task", "Wait")  # a Fail state never exits
_ABORTED = ("Map", "Parallel", "Task", "Wait")
_INSIDE = (
    # activities, Lambda functions and service integrations a Task state runs
    *(f"Activity{s}" for s in ("Failed", "Scheduled", "ScheduleFailed", "Started", "Succeeded", "TimedOut")),
    *(
        f"LambdaFunction{s}"
        for s in ("Failed", "Scheduled", "ScheduleFailed", "Started", "StartFailed", "Succeeded", "TimedOut")
    ),
    *(
        f"Task{s}"
        for s in ("Failed", "Scheduled", "Started", "StartFailed", "SubmitFailed", "Submitted", "Succeeded", "TimedOut")
    ),
    # a Map or Parallel state's own progress, inline iterations and Distributed Map Runs
    *(f"MapIteration{s}" for s in ("Aborted", "Failed", "Started", "Succeeded")),
    *(f"MapState{s}" for s in ("Failed", "Started", "Succeeded")),
    *(f"ParallelState{s}" for s in ("Failed", "Started", "Succeeded")),
    *(f"MapRun{s}" for s in ("Aborted", "Failed", "Started", "Succeeded", "Redriven")),
    # a JSONata expression (Arguments, Output, Assign, a Choice condition) that failed: the state fails
    "EvaluationFailed",
    "ExecutionStarted",
)

ROLES: dict[str, EventRole] = {
    **{f"{state}StateEntered": EventRole.ENTERS_STATE for state in _ENTERED},
    **{f"{state}StateExited": EventRole.LEAVES_STATE for state in _EXITED},
    **{f"{state}StateAborted": EventRole.LEAVES_STATE for state in _ABORTED},
    "ExecutionSucceeded": EventRole.ENDS_EXECUTION,
    "ExecutionFailed": EventRole.ENDS_EXECUTION,
    "ExecutionAborted": EventRole.ENDS_EXECUTION,
    "ExecutionTimedOut": EventRole.ENDS_EXECUTION,
    "ExecutionRedriven": EventRole.REDRIVES_EXECUTION,
    **dict.fromkeys(_INSIDE, EventRole.OTHER),
}


def role_of(event_type: str) -> EventRole:
    """What an event type means for a trace; a type Step Functions adds later is taken by its
    name's ending (`...StateEntered`, `...StateExited`) and otherwise as happening inside a state."""
    role = ROLES.get(event_type)
    if role is not None:
        return role
    if event_type.endswith("StateEntered"):
        return EventRole.ENTERS_STATE
    if event_type.endswith(("StateExited", "StateAborted")):
        return EventRole.LEAVES_STATE
    return EventRole.OTHER


def entered_type_of(leaving_type: str) -> str:
    """The `*StateEntered` type a leaving event closes (`TaskStateAborted` -> `TaskStateEntered`)."""
    for suffix in ("StateExited", "StateAborted"):
        if leaving_type.endswith(suffix):
            return leaving_type[: -len(suffix)] + "StateEntered"
    raise ValueError(f"{leaving_type} does not leave a state")
