"""Execution history events and the states they show an execution entered.

`state_visits(events)` turns ordered events into the states the execution entered: every event
that enters a state (`tracker.aws.event_types`; Map and Parallel iterations included) paired with
the one that leaves it (`*StateExited`, or `*StateAborted` when a failing branch abandoned it). A state is
ready once it exited (its output is then known and its document never changes) or the attempt it
belongs to ended, and only a prefix of ready states is released, so sequence numbers never change.

A redrive (`RedriveExecution`, Standard workflows) continues the same history: after an
unsuccessful end comes `ExecutionRedriven`, then the states the new attempt enters. Attempts are
numbered by the redrive count (0 for the first run); `attempt_ends` lists how each one ended, and
the execution has ended only when its last end is not followed by a redrive.
CloudWatch Logs delivers out of order and may repeat: `release_in_order` de-duplicates by id and
releases events only up to the first missing id."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracker.aws.arns import EXECUTION_ARN
from tracker.aws.errors import MalformedLogMessageError
from tracker.aws.event_types import EventRole, entered_type_of, role_of
from tracker.documents.ids import to_millis

END_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}


@dataclass(frozen=True)
class HistoryEvent:
    """One execution history event; `details` holds the event's `*EventDetails` (or log `details`)."""

    id: int
    previous_event_id: int
    type: str
    timestamp_ms: int
    details: Mapping[str, Any] = field(default_factory=dict)


REDRIVEN_EVENT = "ExecutionRedriven"


@dataclass(frozen=True)
class StateVisit:
    """One entered state and, when it already happened, the matching exit; `attempt` is the
    redrive count when it was entered."""

    entered: HistoryEvent
    exited: HistoryEvent | None
    attempt: int = 0

    @property
    def name(self) -> str:
        return str(self.entered.details.get("name", ""))


@dataclass(frozen=True)
class AttemptEnd:
    """How one attempt ended: its end event, the attempt (redrive count) and where it is."""

    attempt: int
    event: HistoryEvent
    position: int  # index of the end event in the history

    @property
    def status(self) -> str:
        return END_EVENTS[self.event.type]


def attempt_ends(events: Sequence[HistoryEvent]) -> list[AttemptEnd]:
    """Every attempt's end, in history order (one per attempt that ended)."""
    ends: list[AttemptEnd] = []
    attempt = 0
    for position, event in enumerate(events):
        if event.type == REDRIVEN_EVENT:
            attempt += 1
        elif event.type in END_EVENTS:
            ends.append(AttemptEnd(attempt, event, position))
    return ends


def execution_end(events: Sequence[HistoryEvent]) -> HistoryEvent | None:
    """The event that ended the execution as it stands: its last end, unless a redrive followed it."""
    for event in reversed(events):
        if event.type in END_EVENTS:
            return event
        if event.type == REDRIVEN_EVENT:
            return None
    return None


def state_visits(events: Sequence[HistoryEvent]) -> list[StateVisit]:
    """The ready prefix of the states entered, in history order (see the module docstring)."""
    by_id = {event.id: event for event in events}
    exits: dict[int, HistoryEvent] = {}
    for event in events:
        if role_of(event.type) is not EventRole.LEAVES_STATE:
            continue
        entered_type = entered_type_of(event.type)
        name = event.details.get("name")  # `*StateAborted` events name no state: the nearest open one
        ancestor = by_id.get(event.previous_event_id)
        seen = 0
        while ancestor is not None and seen < len(by_id):
            named = name is None or ancestor.details.get("name") == name
            if ancestor.type == entered_type and named and ancestor.id not in exits:
                exits[ancestor.id] = event
                break
            ancestor = by_id.get(ancestor.previous_event_id)
            seen += 1
    ends = attempt_ends(events)
    last_end = ends[-1].position if ends else -1
    visits: list[StateVisit] = []
    attempt = 0
    for position, event in enumerate(events):
        if event.type == REDRIVEN_EVENT:
            attempt += 1
            continue
        if role_of(event.type) is not EventRole.ENTERS_STATE:
            continue
        exited = exits.get(event.id)
        if exited is None and position > last_end:
            break  # still running in the current attempt: its document is not final yet
        visits.append(StateVisit(event, exited, attempt))
    return visits


def release_in_order(events: Iterable[HistoryEvent]) -> tuple[list[HistoryEvent], int]:
    """De-duplicates by id and releases events 1, 2, ... up to the first gap.

    Returns the released events and how many are held back waiting for a predecessor.
    """
    unique: dict[int, HistoryEvent] = {}
    for event in events:
        unique.setdefault(event.id, event)
    released: list[HistoryEvent] = []
    present: set[int] = {0}
    next_id = 1
    while next_id in unique:
        event = unique[next_id]
        if event.previous_event_id not in present:
            break
        released.append(event)
        present.add(event.id)
        next_id += 1
    return released, len(unique) - len(released)


def _details_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in raw.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping):
            return dict(value)
    return {}


def history_event(raw: Mapping[str, Any]) -> HistoryEvent:
    """A GetExecutionHistory event as a `HistoryEvent`."""
    return HistoryEvent(
        id=int(raw["id"]),
        previous_event_id=int(raw.get("previousEventId", 0)),
        type=str(raw["type"]),
        timestamp_ms=to_millis(raw["timestamp"]),
        details=_details_of(raw),
    )


@dataclass(frozen=True)
class LogMessage:
    execution_arn: str
    event: HistoryEvent


def parse_log_message(text: str, where: str) -> LogMessage:
    """Parses one CloudWatch Logs message of a Step Functions execution; `where` names it in errors."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        raise MalformedLogMessageError(f"malformed log message ({where}): not JSON: {text[:60]!r}") from None
    if not isinstance(data, Mapping):
        raise MalformedLogMessageError(f"malformed log message ({where}): not a JSON object")
    missing = [
        key for key in ("id", "previous_event_id", "type", "event_timestamp", "execution_arn") if key not in data
    ]
    if missing:
        raise MalformedLogMessageError(f"malformed log message ({where}): lacks {', '.join(missing)}")
    try:
        event_id = int(data["id"])
        previous = int(data["previous_event_id"])
        timestamp = int(data["event_timestamp"])
    except (TypeError, ValueError):
        raise MalformedLogMessageError(
            f"malformed log message ({where}): id, previous_event_id and event_timestamp must be integers"
        ) from None
    details = data.get("details") or {}
    if event_id < 1 or previous < 0 or previous >= event_id or not isinstance(details, Mapping):
        raise MalformedLogMessageError(
            f"malformed log message ({where}): inconsistent id {event_id} / previous {previous}"
        )
    arn = str(data["execution_arn"])
    if not EXECUTION_ARN.match(arn):
        raise MalformedLogMessageError(
            f"malformed log message ({where}): execution_arn {arn!r} is not an execution ARN"
        )
    return LogMessage(arn, HistoryEvent(event_id, previous, str(data["type"]), timestamp, dict(details)))
