"""What the tracker reads from Step Functions: which executions (Selection), references to them, and one execution as read at one moment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tracker.aws.arns import check_execution_arn, check_state_machine_arn
from tracker.aws.errors import MalformedDefinitionError
from tracker.aws.events import END_EVENTS as END_EVENTS_STATUS
from tracker.aws.events import AttemptEnd, HistoryEvent, attempt_ends, execution_end

# Step Functions accepts a redrive within 14 days of an unsuccessful end (RedriveExecution).
REDRIVE_WINDOW_MS = 14 * 24 * 3600 * 1000
REDRIVABLE_STATUSES = frozenset({"FAILED", "ABORTED", "TIMED_OUT"})


@dataclass(frozen=True)
class ExecutionRef:
    """An execution found by listing; `status` is None when the source cannot tell before loading.

    `redrive_count` (ListExecutions reports it) tells a tracker that an execution it saw end has
    been redriven since; `start_date_ms`, when the listing tells, places a Map Run's child in the
    run (first or redriven) that started it."""

    execution_arn: str
    state_machine_arn: str
    status: str | None = None
    redrive_count: int | None = None
    start_date_ms: int | None = None


@dataclass(frozen=True)
class Execution:
    """Everything the tracker needs about one execution, as read at one moment."""

    execution_arn: str
    state_machine_arn: str
    name: str
    start_date_ms: int
    definition: str
    input: str | None
    events: tuple[HistoryEvent, ...]
    held_events: int = 0
    state_machine_version_arn: str | None = None
    state_machine_alias_arn: str | None = None
    role_arn: str | None = None
    # What DescribeExecution says of redrives: REDRIVABLE, NOT_REDRIVABLE, REDRIVABLE_BY_MAP_RUN,
    # or None where the source does not say (then only the 14-day window closes the execution).
    redrive_status: str | None = None
    redrive_count: int = 0
    # For a child execution: whether the execution that started it can no longer change. A child
    # REDRIVABLE_BY_MAP_RUN can be redriven only by redriving its parent, so it is final with it.
    parent_final: bool = False

    @property
    def account_id(self) -> str | None:
        parts = self.execution_arn.split(":")
        return parts[4] if len(parts) > 4 and parts[4].isdigit() else None

    @property
    def end_event(self) -> HistoryEvent | None:
        """The end of the execution as it stands (None while an attempt runs)."""
        return execution_end(self.events)

    @property
    def attempt_ends(self) -> list[AttemptEnd]:
        return attempt_ends(self.events)

    def is_final(self, now_ms: int) -> bool:
        """Whether the execution can no longer change: it succeeded, or it ended unsuccessfully and
        can no longer be redriven (Step Functions says so, or 14 days passed since the end)."""
        end = self.end_event
        if end is None:
            return False
        status = END_EVENTS_STATUS.get(end.type)
        if status not in REDRIVABLE_STATUSES:
            return True
        if self.redrive_status == "NOT_REDRIVABLE":
            return True
        if self.redrive_status == "REDRIVABLE_BY_MAP_RUN" and self.parent_final:
            return True
        return now_ms - end.timestamp_ms > REDRIVE_WINDOW_MS


class ExecutionSource(Protocol):
    """What the tracking engine reads executions from."""

    name: str

    def list_executions(self) -> list[ExecutionRef]: ...

    def load(self, ref: ExecutionRef) -> Execution: ...


def state_names(definition: str) -> set[str]:
    """Every state name an ASL definition declares, nested ones included (Map iterators and item
    processors, Parallel branches)."""
    names: set[str] = set()

    def visit(machine: Any) -> None:
        if not isinstance(machine, Mapping):
            return
        for name, state in (machine.get("States") or {}).items():
            names.add(str(name))
            if isinstance(state, Mapping):
                visit(state.get("Iterator"))
                visit(state.get("ItemProcessor"))
                for branch in state.get("Branches") or []:
                    visit(branch)

    try:
        visit(json.loads(definition))
    except (TypeError, ValueError):
        pass
    return names


def check_definition(definition: str, state_machine_arn: str) -> str:
    """Returns the definition text unchanged after checking it is an ASL object (StartAt, States)."""
    try:
        parsed = json.loads(definition)
    except (TypeError, ValueError) as error:
        raise MalformedDefinitionError(
            f"state machine {state_machine_arn} has a malformed definition: not JSON ({error})"
        ) from None
    if not isinstance(parsed, Mapping) or "StartAt" not in parsed or not isinstance(parsed.get("States"), Mapping):
        raise MalformedDefinitionError(
            f"state machine {state_machine_arn} has a malformed definition: no StartAt and States"
        )
    return definition


@dataclass(frozen=True)
class Selection:
    """Which executions to track: machines (none: every machine of the region), one execution, since."""

    state_machine_arns: tuple[str, ...] = ()
    execution_arn: str | None = None
    since_ms: int | None = None

    def __post_init__(self) -> None:
        for arn in self.state_machine_arns:
            check_state_machine_arn(arn)
        if self.execution_arn is not None:
            check_execution_arn(self.execution_arn)
