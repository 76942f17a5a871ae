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
    links: StateLinks | None = None


@dataclass(frozen=True, slots=True)
class EndContent:
    instance_id: str
    attempt: int
    status: str
    state_count: int
    last_state_id: str


@dataclass(frozen=True, slots=True)
class StateLinks:
    """What a state document says beyond its position: its history event and, for a Distributed
    Map or a `states:startExecution` task, the children document naming the executions it started."""

    event_id: int
    state_name: str
    children: str | None


@dataclass(frozen=True)
class ParentLink:
    """An instance started by another execution: the parent instance, its execution, and the visit
    (entered event id and name) of the Map or Task state that started it; `map_run_arn` for a Map
    Run's child."""

    instance_id: str
    execution_arn: str
    event_id: int
    state_name: str
    map_run_arn: str | None


@dataclass(frozen=True)
class ChildrenContent:
    """A children document: the executions one state of one instance started, as instance ids."""

    instance_id: str
    event_id: int
    state_name: str
    map_run_arn: str | None
    instances: tuple[str, ...]


@dataclass(frozen=True)
class InstanceContent:
    model_id: str
    execution_arn: str
    start_date_ms: int
    state_machine_arn: str = ""
    version_arn: str | None = None
    alias_arn: str | None = None
    parent: ParentLink | None = None

    @property
    def execution_id(self) -> str:
        return execution_id(self.execution_arn, self.start_date_ms)


Content = StateContent | EndContent | InstanceContent | ChildrenContent | Foreign | Malformed


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


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    return _text(data, key) if key in data else None


def _arn_parts(arn: str, key: str, resource: tuple[str, ...]) -> list[str]:
    """An ARN's colon-separated parts, when it is a Step Functions ARN of one of these resources."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[0] != "arn" or parts[2] != "states" or parts[5] not in resource or not parts[6]:
        raise _Wrong(f"has a malformed {key}: {arn[:80]!r}")
    return parts


def _machine_arns(data: dict[str, Any], execution_arn: str) -> tuple[str, str | None, str | None]:
    """The state machine ARN and the version and alias ARNs, each checked against the others and
    the execution ARN: the execution ran the machine, the version and alias are the machine's."""
    machine = _text(data, "state_machine_arn")
    parts = _arn_parts(machine, "state_machine_arn", ("stateMachine",))
    if len(parts) != 7:
        raise _Wrong(f"has a qualified state_machine_arn {machine[:80]!r} (a version or alias has fields of its own)")
    run = _arn_parts(execution_arn, "execution_arn", ("execution", "express"))
    if run[:5] != parts[:5] or run[6] != parts[6]:
        raise _Wrong(f"names execution {execution_arn[:80]!r}, which is not of state machine {machine[:80]!r}")
    version = _optional_text(data, "state_machine_version_arn")
    if version is not None and not (version.startswith(machine + ":") and version[len(machine) + 1 :].isdigit()):
        raise _Wrong(f"names version {version[:80]!r}, which is not a version of {machine[:80]!r}")
    alias = _optional_text(data, "state_machine_alias_arn")
    if alias is not None:
        qualifier = alias[len(machine) + 1 :] if alias.startswith(machine + ":") else ""
        if not qualifier or qualifier.isdigit() or ":" in qualifier:
            raise _Wrong(f"names alias {alias[:80]!r}, which is not an alias of {machine[:80]!r}")
        if version is None:
            raise _Wrong("names an alias but not the version it ran (an alias always runs a version)")
    return machine, version, alias


PARENT_FIELDS = ("parent_instance_id", "parent_execution_arn", "parent_event_id", "parent_state_name")


def _parent(data: dict[str, Any], machine: str) -> ParentLink | None:
    present = [key for key in (*PARENT_FIELDS, "map_run_arn") if key in data]
    if not present:
        return None
    missing = [key for key in PARENT_FIELDS if key not in data]
    if missing:
        raise _Wrong(f"names a parent but lacks {', '.join(missing)}")
    parent_arn = _text(data, "parent_execution_arn")
    _arn_parts(parent_arn, "parent_execution_arn", ("execution", "express"))
    event_id = _count(data, "parent_event_id")
    if event_id < 1:
        raise _Wrong("has a malformed parent_event_id: 0")
    map_run = _optional_text(data, "map_run_arn")
    if map_run is not None:
        run = _arn_parts(map_run, "map_run_arn", ("mapRun",))
        if len(run) != 8 or f"{':'.join(run[:5])}:stateMachine:{run[6]}" != machine or "/" not in run[6]:
            raise _Wrong(f"names Map Run {map_run[:80]!r}, whose child workflow is not {machine[:80]!r}")
    return ParentLink(
        _identifier(data, "parent_instance_id"), parent_arn, event_id, _text(data, "parent_state_name"), map_run
    )


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
        links = None
        if "children" in value:
            links = StateLinks(_count(value, "event_id"), _text(value, "state_name"), _identifier(value, "children"))
        return StateContent(
            _identifier(value, "instance_id"),
            _count(value, "seq"),
            _identifier(value, "previous_state_id", empty_allowed=True),
            _count(value, "attempt"),
            links,
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
        execution_arn = _text(value, "execution_arn")
        machine, version, alias = (
            _machine_arns(value, execution_arn) if "state_machine_arn" in value else ("", None, None)
        )
        return InstanceContent(
            _identifier(value, "model_id"),
            execution_arn,
            _count(value, "start_date_ms"),
            machine,
            version,
            alias,
            _parent(value, machine) if machine else None,
        )
    except _Wrong as wrong:
        return Malformed(str(wrong))


def read_children(
    data: bytes, max_depth: int = 64, max_values: int = 1_000_000
) -> ChildrenContent | Foreign | Malformed:
    """A children document: its instance ids must be sorted and distinct (one way to write a set)."""
    value = _ours(data, "children", max_depth, max_values)
    if isinstance(value, Foreign):
        return Malformed(value.reason)  # only this project writes children documents
    if not isinstance(value, dict):
        return value
    try:
        listed = value.get("instances")
        if not isinstance(listed, list):
            raise _Wrong("lacks instances" if "instances" not in value else "has a malformed instances: not a list")
        instances = tuple(_identifier({"instance": item}, "instance") for item in listed)
        if list(instances) != sorted(set(instances)):
            raise _Wrong("lists its instances out of order or twice")
        map_run = _optional_text(value, "map_run_arn")
        if map_run is not None:
            _arn_parts(map_run, "map_run_arn", ("mapRun",))
        return ChildrenContent(
            _identifier(value, "instance_id"), _count(value, "event_id"), _text(value, "state_name"), map_run, instances
        )
    except _Wrong as wrong:
        return Malformed(f"children document {wrong}")
