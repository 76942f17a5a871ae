"""The documents behind every identifier: model, instance, state and end documents, and the chain head over them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tracker.documents.canonical import canonical_json, without_absent
from tracker.documents.ids import id_to_bytes32, sha256_hex

STATE_DOCUMENT_VERSION = 2
# A state document that names a task document (`task_id`): what a Task state ran and read.
STATE_DOCUMENT_VERSION_WITH_TASK = 3


@dataclass(frozen=True)
class Document:
    """Published bytes and their identifier."""

    content: bytes

    @property
    def id(self) -> str:
        return sha256_hex(self.content)


def model_document(definition_text: str) -> Document:
    """The model document: the definition text exactly as DescribeStateMachine returns it."""
    return Document(definition_text.encode("utf-8"))


def execution_id(execution_arn: str, start_date_ms: int) -> str:
    """The id of an AWS execution itself: SHA-256 of the canonical JSON of its ARN and start date.

    The contract keys an instance by (owner, execution id), so one publisher holds at most one trace
    of an execution; the start date is part of it because Step Functions lets a name be reused
    after 90 days. A verifier recomputes it from the instance document.
    """
    identity = {"execution_arn": execution_arn, "kind": "execution", "start_date_ms": start_date_ms}
    return sha256_hex(canonical_json(identity))


@dataclass(frozen=True)
class InstanceFacts:
    """Facts about an execution that never change after it started (never status or stop date)."""

    execution_arn: str
    state_machine_arn: str
    name: str
    start_date_ms: int
    model_id: str
    input_sha256: str
    state_machine_version_arn: str | None = None
    state_machine_alias_arn: str | None = None
    account_id: str | None = None
    role_arn: str | None = None
    # An execution another one started (a Map Run's child, a startExecution task's child): the
    # parent instance and the visit (entered event id, name) of the state that started it.
    parent_instance_id: str | None = None
    parent_execution_arn: str | None = None
    parent_event_id: int | None = None
    parent_state_name: str | None = None
    map_run_arn: str | None = None

    @property
    def execution_id(self) -> str:
        return execution_id(self.execution_arn, self.start_date_ms)

    def document(self) -> Document:
        return Document(canonical_json(without_absent({"kind": "instance", **asdict(self)})))


@dataclass(frozen=True)
class StateFacts:
    """One state an instance entered. `previous_state_id` chains each state to the whole trace;
    `attempt` is the execution's redrive count when the state was entered (0 before any redrive);
    `task_id` names the task document of a Task state (version 3 documents only)."""

    instance_id: str
    seq: int
    previous_state_id: str
    attempt: int
    event_id: int
    event_type: str
    state_name: str
    timestamp_ms: int
    input_sha256: str | None = None
    output_sha256: str | None = None
    input: Any = None
    output: Any = None
    task_id: str | None = None
    version: int = STATE_DOCUMENT_VERSION
    children: str | None = None  # the id of the children document of what this visit started

    def document(self) -> Document:
        facts = asdict(self)
        if self.task_id is not None:
            facts["version"] = STATE_DOCUMENT_VERSION_WITH_TASK
        return Document(canonical_json(without_absent({"kind": "state", **facts})))


@dataclass(frozen=True)
class ChildrenFacts:
    """The executions one visit of a Map or Task state started, as their instance ids (sorted):
    each child's instance document names the parent instance and this visit back."""

    instance_id: str
    event_id: int
    state_name: str
    instances: tuple[str, ...]
    map_run_arn: str | None = None

    def document(self) -> Document:
        fields = {**asdict(self), "instances": sorted(set(self.instances))}
        return Document(canonical_json(without_absent({"kind": "children", **fields})))


@dataclass(frozen=True)
class EndFacts:
    """How one attempt of an execution ended (attempt = redrive count, 0 for the first run).

    An unsuccessful end is not final while Step Functions can still redrive the execution; the
    chain, not this document, says whether it is final (the document never changes once written).
    """

    instance_id: str
    attempt: int
    status: str
    stop_date_ms: int
    state_count: int
    last_state_id: str
    output_sha256: str | None = None
    error: str | None = None
    cause: str | None = None

    def document(self) -> Document:
        return Document(canonical_json(without_absent({"kind": "end", **asdict(self)})))


def start_head(execution: str, model_id: str, instance_id: str) -> str:
    """The chain head before any state: keccak256 of (execution id, model id, instance document id)."""
    from eth_utils import keccak

    return keccak(id_to_bytes32(execution) + id_to_bytes32(model_id) + id_to_bytes32(instance_id)).hex()


def chain_head(execution: str, model_id: str, instance_id: str, state_ids: Sequence[str]) -> str:
    """The contract's head over an ordered trace: keccak256(head, state) from the start head on, so
    one (count, head) pair proves the execution, the model, the instance document and every state."""
    from eth_utils import keccak

    head = bytes.fromhex(start_head(execution, model_id, instance_id))
    for state_id in state_ids:
        head = keccak(head + id_to_bytes32(state_id))
    return head.hex()
