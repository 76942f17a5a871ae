"""An execution's documents as far as its history goes: model, instance, hash-chained states and the end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracker.aws.events import END_EVENTS, state_visits
from tracker.aws.executions import Execution
from tracker.documents.facts import Document, EndFacts, InstanceFacts, StateFacts, model_document
from tracker.documents.ids import sha256_hex


@dataclass(frozen=True)
class ExecutionDocuments:
    """The documents of one execution as far as its history goes."""

    execution: Execution
    model: Document
    instance: Document
    states: tuple[Document, ...]
    end: Document | None
    state_event_ids: tuple[int, ...]

    @property
    def model_id(self) -> str:
        return self.model.id

    @property
    def instance_id(self) -> str:
        return self.instance.id

    @property
    def state_ids(self) -> list[str]:
        return [d.id for d in self.states]


def _digest(value: Any) -> str | None:
    return None if value is None else sha256_hex(str(value))


def build_documents(execution: Execution, include_data: bool = False) -> ExecutionDocuments:
    """Model, instance, hash-chained state documents and (once it ended) the end document."""
    model = model_document(execution.definition)
    instance = InstanceFacts(
        execution_arn=execution.execution_arn,
        state_machine_arn=execution.state_machine_arn,
        name=execution.name,
        start_date_ms=execution.start_date_ms,
        model_id=model.id,
        input_sha256=sha256_hex(execution.input or ""),
        state_machine_version_arn=execution.state_machine_version_arn,
        account_id=execution.account_id,
        role_arn=execution.role_arn,
    ).document()
    states: list[Document] = []
    event_ids: list[int] = []
    previous = ""
    for seq, visit in enumerate(state_visits(execution.events)):
        raw_input = visit.entered.details.get("input")
        raw_output = visit.exited.details.get("output") if visit.exited else None
        document = StateFacts(
            instance_id=instance.id,
            seq=seq,
            previous_state_id=previous,
            event_id=visit.entered.id,
            event_type=visit.entered.type,
            state_name=visit.name,
            timestamp_ms=visit.entered.timestamp_ms,
            input_sha256=_digest(raw_input),
            output_sha256=_digest(raw_output),
            input=raw_input if include_data else None,
            output=raw_output if include_data else None,
        ).document()
        states.append(document)
        event_ids.append(visit.entered.id)
        previous = document.id
    end_event = execution.end_event
    end = None
    if end_event is not None:
        details = end_event.details
        end = EndFacts(
            instance_id=instance.id,
            status=END_EVENTS[end_event.type],
            stop_date_ms=end_event.timestamp_ms,
            state_count=len(states),
            last_state_id=previous,
            output_sha256=_digest(details.get("output")),
            error=details.get("error"),
            cause=details.get("cause"),
        ).document()
    return ExecutionDocuments(execution, model, instance, tuple(states), end, tuple(event_ids))
