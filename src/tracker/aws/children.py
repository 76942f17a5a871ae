"""Executions an execution started: the children of its Distributed Map states' Map Runs, and the
executions its `arn:aws:states:::states:startExecution` tasks started (`.sync`, `.sync:2`,
`.waitForTaskToken` or fire and forget).

`started_children(events)` finds them in the history: a `MapRunStarted` event names its Map Run,
a `TaskSubmitted` (or `TaskSucceeded`) event of a `states` startExecution task names the child in
its output (`ExecutionArn`); each belongs to the visit of the Map or Task state it happened in,
the nearest `MapStateEntered` / `TaskStateEntered` before it along `previousEventId`.

A redriven parent redrives a failed Map Run itself ("Redriving Map Runs"): its redriven attempt
enters the Map state again, and a `MapRunRedriven` event names the same Map Run. The Map Run's
children are then split by when they started: those started before its first redrive belong to
the visit that started the run (a Standard child redriven keeps its ARN and start date, so it
stays there: one instance, its own redrive continuing its trace), those started after a
`MapRunRedriven` to that redriven visit (Express children run again as new executions)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from tracker.aws.arns import EXECUTION_ARN, MAP_RUN_ARN
from tracker.aws.events import HistoryEvent

# Step Functions adds this to a child's input when the parent passes `$$.Execution.Id` under it
# (the console's "started by" link): such an execution is tracked through its parent.
STARTED_BY_KEY = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"


@dataclass(frozen=True)
class StartedChildren:
    """What one visit of a Map or Task state started: a Map Run, or one execution."""

    event_id: int  # the visit's entered event
    state_name: str
    map_run_arn: str | None = None
    execution_arn: str | None = None
    # a Map Run's children this visit started: those whose start is in [from_ms, until_ms)
    from_ms: int | None = None  # the MapRunRedriven's time; None for the visit that started the run
    until_ms: int | None = None  # the next MapRunRedriven's time, if any

    def started(self, start_date_ms: int | None) -> bool:
        """Whether a child of this visit's Map Run that started then is this visit's (an unknown
        start: the visit that started the run)."""
        if start_date_ms is None:
            return self.from_ms is None
        after = self.from_ms is None or start_date_ms >= self.from_ms
        return after and (self.until_ms is None or start_date_ms < self.until_ms)


def _visit_of(event: HistoryEvent, by_id: dict[int, HistoryEvent], entered_type: str) -> HistoryEvent | None:
    ancestor = by_id.get(event.previous_event_id)
    seen = 0
    while ancestor is not None and seen < len(by_id):
        if ancestor.type == entered_type:
            return ancestor
        ancestor = by_id.get(ancestor.previous_event_id)
        seen += 1
    return None


def _child_arn(event: HistoryEvent) -> str | None:
    details = event.details
    resource = str(details.get("resource", ""))
    if details.get("resourceType") != "states" or not resource.startswith("startExecution"):
        return None
    try:
        output = json.loads(details.get("output") or "")
    except (TypeError, ValueError):
        return None
    if not isinstance(output, dict):
        return None
    arn = output.get("ExecutionArn") or output.get("executionArn")
    if isinstance(arn, str) and EXECUTION_ARN.match(arn):
        return arn
    return None


def started_children(events: Sequence[HistoryEvent]) -> list[StartedChildren]:
    """Every Map Run and nested execution the history shows, once each, in history order."""
    by_id = {event.id: event for event in events}
    found: list[StartedChildren] = []
    seen: set[str] = set()
    latest_run: dict[str, int] = {}  # Map Run ARN -> index in `found` of its latest (re)start
    for event in events:
        if event.type in ("MapRunStarted", "MapRunRedriven"):
            run = str(event.details.get("mapRunArn", ""))
            visit = _visit_of(event, by_id, "MapStateEntered")
            if not MAP_RUN_ARN.match(run) or visit is None or f"{visit.id} {run}" in seen:
                continue
            seen.add(f"{visit.id} {run}")
            redriven = event.type == "MapRunRedriven"
            if redriven and run in latest_run:
                earlier = found[latest_run[run]]
                found[latest_run[run]] = dataclasses.replace(earlier, until_ms=event.timestamp_ms)
            latest_run[run] = len(found)
            found.append(
                StartedChildren(
                    visit.id,
                    str(visit.details.get("name", "")),
                    map_run_arn=run,
                    from_ms=event.timestamp_ms if redriven else None,
                )
            )
        elif event.type in ("TaskSubmitted", "TaskSucceeded"):
            arn = _child_arn(event)
            visit = _visit_of(event, by_id, "TaskStateEntered")
            if arn is not None and visit is not None and arn not in seen:
                seen.add(arn)
                found.append(StartedChildren(visit.id, str(visit.details.get("name", "")), execution_arn=arn))
    return found


def started_by_parent(execution_input: str | None) -> bool:
    """Whether an execution's input says another execution started it."""
    try:
        data = json.loads(execution_input or "")
    except (TypeError, ValueError):
        return False
    return isinstance(data, dict) and STARTED_BY_KEY in data
