"""An execution's documents as far as its history goes: model, instance, hash-chained states and
the end of every attempt."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracker.aws.errors import InconsistentHistoryError
from tracker.aws.events import state_visits
from tracker.aws.executions import Execution, state_names
from tracker.aws.tasks import TaskCall, TaskReader, task_calls
from tracker.documents.facts import (
    ChildrenFacts,
    Document,
    EndFacts,
    InstanceFacts,
    StateFacts,
    chain_head,
    model_document,
)
from tracker.documents.ids import sha256_hex


@dataclass(frozen=True)
class AttemptDocuments:
    """How one attempt ended: its end document and how many states the trace had by then."""

    attempt: int
    status: str
    end: Document
    state_count: int
    end_event_id: int = 0


@dataclass(frozen=True)
class ExecutionDocuments:
    """The documents of one execution as far as its history goes.

    `attempts` lists the end of every attempt that ended, in order; `final` says whether the
    execution can no longer change (the last end then is the final one)."""

    execution: Execution
    execution_id: str
    model: Document
    instance: Document
    states: tuple[Document, ...]
    state_event_ids: tuple[int, ...]
    attempts: tuple[AttemptDocuments, ...]
    final: bool
    # the task document of each state (None for a state that runs no task), in state order
    tasks: tuple[Document | None, ...] = field(default_factory=tuple)
    children: tuple[Document, ...] = ()  # children documents its states name

    def task_id(self, seq: int) -> str | None:
        task = self.tasks[seq] if seq < len(self.tasks) else None
        return task.id if task is not None else None

    @property
    def model_id(self) -> str:
        return self.model.id

    @property
    def instance_id(self) -> str:
        return self.instance.id

    @property
    def state_ids(self) -> list[str]:
        return [d.id for d in self.states]

    def head(self, count: int | None = None) -> str:
        """The chain head over the first `count` states (all of them by default)."""
        ids = self.state_ids if count is None else self.state_ids[:count]
        return chain_head(self.execution_id, self.model_id, self.instance_id, ids)


def _digest(value: Any) -> str | None:
    return None if value is None else sha256_hex(str(value))


# Builds the task document of one call for an instance id (the engine's reads and pins).
TaskDocumentSource = Callable[[TaskCall, str], Document]


def read_task_documents(reader: TaskReader) -> TaskDocumentSource:
    """Task documents read from the services each time (no pinning: the engine pins them)."""
    return lambda call, instance_id: reader.facts(call, instance_id).document()


@dataclass(frozen=True)
class ParentOf:
    """The parent of a child execution: its instance, execution and the visit that started the child."""

    instance_id: str
    execution_arn: str
    event_id: int
    state_name: str
    map_run_arn: str | None = None


def instance_facts(execution: Execution, parent: ParentOf | None = None) -> InstanceFacts:
    return InstanceFacts(
        execution_arn=execution.execution_arn,
        state_machine_arn=execution.state_machine_arn,
        name=execution.name,
        start_date_ms=execution.start_date_ms,
        model_id=model_document(execution.definition).id,
        input_sha256=sha256_hex(execution.input or ""),
        state_machine_version_arn=execution.state_machine_version_arn,
        state_machine_alias_arn=execution.state_machine_alias_arn,
        account_id=execution.account_id,
        role_arn=execution.role_arn,
        parent_instance_id=parent.instance_id if parent else None,
        parent_execution_arn=parent.execution_arn if parent else None,
        parent_event_id=parent.event_id if parent else None,
        parent_state_name=parent.state_name if parent else None,
        map_run_arn=parent.map_run_arn if parent else None,
    )


def build_documents(
    execution: Execution,
    include_data: bool = False,
    now_ms: int | None = None,
    parent: ParentOf | None = None,
    children: Mapping[int, ChildrenFacts | None] | None = None,
    task_document: TaskDocumentSource | None = None,
) -> ExecutionDocuments:
    """Model, instance, hash-chained state documents and the end document of every attempt.

    `now_ms` (default: now) decides whether an unsuccessful end is final: only once Step Functions
    can no longer redrive the execution. `children` maps the entered event id of each visit that
    started executions to what it started; None while they are not all known, which holds the
    trace back at that visit (its document names them, so it is written only once they are).
    With `task_document`, each Task state's document names the task document it returns for the
    state's call (see `tracker.aws.tasks`).
    """
    import time

    model = model_document(execution.definition)
    facts = instance_facts(execution, parent)
    instance = facts.document()
    states: list[Document] = []
    event_ids: list[int] = []
    previous = ""
    declared = state_names(execution.definition)
    calls = task_calls(execution.definition, execution.events) if task_document is not None else {}
    tasks: list[Document | None] = []
    children = children or {}
    children_documents: list[Document] = []
    held_at: int | None = None  # the entered event id of the first visit whose children are not all known
    for seq, visit in enumerate(state_visits(execution.events)):
        started = children.get(visit.entered.id, ())
        if started is None:
            held_at = visit.entered.id
            break
        children_document = started.document() if started else None
        if children_document is not None:
            children_documents.append(children_document)
        if visit.name not in declared:
            raise InconsistentHistoryError(
                f"execution {execution.execution_arn} entered state {visit.name!r}, which the definition it ran "
                f"(model {model.id[:12]}…) does not have: the endpoint's history does not belong to it (a moto "
                "server that does not execute state machines answers such canned histories: enable "
                "stepfunctions.execute_state_machine)"
            )
        raw_input = visit.entered.details.get("input")
        raw_output = visit.exited.details.get("output") if visit.exited else None
        call = calls.get(visit.entered.id)
        task = task_document(call, instance.id) if call is not None and task_document is not None else None
        tasks.append(task)
        document = StateFacts(
            instance_id=instance.id,
            seq=seq,
            previous_state_id=previous,
            attempt=visit.attempt,
            event_id=visit.entered.id,
            event_type=visit.entered.type,
            state_name=visit.name,
            timestamp_ms=visit.entered.timestamp_ms,
            input_sha256=_digest(raw_input),
            output_sha256=_digest(raw_output),
            input=raw_input if include_data else None,
            output=raw_output if include_data else None,
            task_id=task.id if task is not None else None,
            children=children_document.id if children_document else None,
        ).document()
        states.append(document)
        event_ids.append(visit.entered.id)
        previous = document.id
    attempts = tuple(
        attempt
        for attempt in _attempt_documents(instance.id, execution, states, event_ids)
        if held_at is None or attempt.end_event_id < held_at
    )
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return ExecutionDocuments(
        execution,
        facts.execution_id,
        model,
        instance,
        tuple(states),
        tuple(event_ids),
        attempts,
        execution.is_final(now) and held_at is None,
        tuple(tasks),
        tuple(children_documents),
    )


def _attempt_documents(
    instance_id: str, execution: Execution, states: Sequence[Document], event_ids: Sequence[int]
) -> list[AttemptDocuments]:
    documents = []
    for end in execution.attempt_ends:
        count = sum(1 for event_id in event_ids if event_id < end.event.id)
        details = end.event.details
        facts = EndFacts(
            instance_id=instance_id,
            attempt=end.attempt,
            status=end.status,
            stop_date_ms=end.event.timestamp_ms,
            state_count=count,
            last_state_id=states[count - 1].id if count else "",
            output_sha256=_digest(details.get("output")),
            error=details.get("error"),
            cause=details.get("cause"),
        )
        documents.append(AttemptDocuments(end.attempt, end.status, facts.document(), count, end.event.id))
    return documents
