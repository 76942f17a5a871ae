"""What a state, end or instance document says, read as this project publishes it.

Each reader takes a document's bytes and returns its content (the few facts the checks compare
with the document's position and with the chain), `Foreign` for a document that is not in this
project's format (the published prototype's documents: readable, but their content cannot be
checked), or `Malformed` with the reason. A document in our format must be exactly the canonical
JSON we publish (`tracker.documents.canonical`): re-encoding what was parsed must give the same
bytes, so nothing is hidden in whitespace, duplicate keys or escapes. Readers never raise.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from tracker.documents.canonical import canonical_json
from tracker.documents.facts import execution_id
from tracker.documents.ids import ID_PATTERN, DocumentError
from tracker.verify import safejson

END_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
REDRIVABLE_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
MAX_COUNT = 2**64 - 1


@dataclass(frozen=True)
class Foreign:
    """Not in this project's format: the content is not checked."""

    reason: str


@dataclass(frozen=True)
class Malformed:
    """In this project's format but wrong, or over a limit: the document fails."""

    reason: str


@dataclass(frozen=True, slots=True)
class StateContent:
    instance_id: str
    seq: int
    previous_state_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class EndContent:
    instance_id: str
    attempt: int
    status: str
    state_count: int
    last_state_id: str


@dataclass(frozen=True)
class InstanceContent:
    model_id: str
    execution_arn: str
    start_date_ms: int

    @property
    def execution_id(self) -> str:
        return execution_id(self.execution_arn, self.start_date_ms)


Content = StateContent | EndContent | InstanceContent | Foreign | Malformed


class _Wrong(Exception):
    """Internal: a field is missing or of the wrong type."""


def _identifier(data: dict[str, Any], key: str, empty_allowed: bool = False) -> str:
    value = data.get(key)
    if isinstance(value, str) and (ID_PATTERN.match(value) or (empty_allowed and value == "")):
        return sys.intern(value)  # one copy of each id however many documents name it
    if key not in data:
        raise _Wrong(f"lacks {key}")
    raise _Wrong(f"has a malformed {key}: {str(value)[:80]!r}")


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    if key not in data:
        raise _Wrong(f"lacks {key}")
    raise _Wrong(f"has a malformed {key}: {str(value)[:80]!r}")


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if isinstance(value, str) and value:
        return value
    if key not in data:
        raise _Wrong(f"lacks {key}")
    raise _Wrong(f"has a malformed {key}: {str(value)[:80]!r}")


def _ours(data: bytes, kind: str, max_depth: int, max_values: int) -> dict[str, Any] | Foreign | Malformed:
    """The parsed object when the document is ours and canonical; else why not."""
    try:
        value = safejson.loads(data, max_depth, max_values)
    except safejson.JsonRefused as refused:
        if refused.over_limit:
            return Malformed(str(refused))
        return Foreign(f"not in this project's format ({refused})")
    if not isinstance(value, dict) or "kind" not in value:
        return Foreign('not in this project\'s format (no "kind")')
    if value["kind"] != kind:
        return Malformed(f"is a document of kind {str(value['kind'])[:40]!r}, listed as the {kind} document")
    try:
        canonical = canonical_json(value)
    except DocumentError as error:
        return Malformed(f"is not canonical JSON: {error}")
    if canonical != data:
        return Malformed("is not in canonical JSON (re-encoding it gives other bytes)")
    return value


def read_state(data: bytes, max_depth: int = 64, max_values: int = 100_000) -> StateContent | Foreign | Malformed:
    value = _ours(data, "state", max_depth, max_values)
    if not isinstance(value, dict):
        return value
    try:
        return StateContent(
            _identifier(value, "instance_id"),
            _count(value, "seq"),
            _identifier(value, "previous_state_id", empty_allowed=True),
            _count(value, "attempt"),
        )
    except _Wrong as wrong:
        return Malformed(str(wrong))


def read_end(data: bytes, max_depth: int = 64, max_values: int = 100_000) -> EndContent | Foreign | Malformed:
    value = _ours(data, "end", max_depth, max_values)
    if not isinstance(value, dict):
        return value
    try:
        status = _text(value, "status")
        if status not in END_STATUSES:
            raise _Wrong(f"has status {status[:40]!r}, not one of {', '.join(sorted(END_STATUSES))}")
        return EndContent(
            _identifier(value, "instance_id"),
            _count(value, "attempt"),
            status,
            _count(value, "state_count"),
            _identifier(value, "last_state_id", empty_allowed=True),
        )
    except _Wrong as wrong:
        return Malformed(str(wrong))


def read_instance(data: bytes, max_depth: int = 64, max_values: int = 100_000) -> InstanceContent | Foreign | Malformed:
    value = _ours(data, "instance", max_depth, max_values)
    if not isinstance(value, dict):
        return value
    try:
        return InstanceContent(
            _identifier(value, "model_id"), _text(value, "execution_arn"), _count(value, "start_date_ms")
        )
    except _Wrong as wrong:
        return Malformed(str(wrong))
