"""The documents behind every identifier: model, instance, state and end documents, and the chain head over them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tracker.documents.canonical import canonical_json, without_absent
from tracker.documents.ids import id_to_bytes32, sha256_hex

STATE_DOCUMENT_VERSION = 1


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
    account_id: str | None = None
    role_arn: str | None = None

    def document(self) -> Document:
        return Document(canonical_json(without_absent({"kind": "instance", **asdict(self)})))


@dataclass(frozen=True)
class StateFacts:
    """One state an instance entered. `previous_state_id` chains each state to the whole trace."""

    instance_id: str
    seq: int
    previous_state_id: str
    event_id: int
    event_type: str
    state_name: str
    timestamp_ms: int
    input_sha256: str | None = None
    output_sha256: str | None = None
    input: Any = None
    output: Any = None
    version: int = STATE_DOCUMENT_VERSION

    def document(self) -> Document:
        return Document(canonical_json(without_absent({"kind": "state", **asdict(self)})))


@dataclass(frozen=True)
class EndFacts:
    """How an execution ended; registered when it ends, after which the instance is terminated."""

    instance_id: str
    status: str
    stop_date_ms: int
    state_count: int
    last_state_id: str
    output_sha256: str | None = None
    error: str | None = None
    cause: str | None = None

    def document(self) -> Document:
        return Document(canonical_json(without_absent({"kind": "end", **asdict(self)})))


def chain_head(model_id: str, instance_id: str, state_ids: list[str]) -> str:
    """The contract's accumulator over an ordered trace: keccak256 chained from (model, instance)."""
    from eth_utils import keccak

    head = keccak(id_to_bytes32(model_id) + id_to_bytes32(instance_id))
    for state_id in state_ids:
        head = keccak(head + id_to_bytes32(state_id))
    return head.hex()
