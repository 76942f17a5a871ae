"""What a state, end or instance document says, read as this project publishes it.

Each reader takes a document's bytes and returns its content (the few facts the checks compare
with the document's position and with the chain), `Foreign` for a document that is not in this
project's format (the published prototype's documents: readable, but their content cannot be
checked), or `Malformed` with the reason. A document in our format must be exactly the canonical
JSON we publish (`tracker.documents.canonical`): re-encoding what was parsed must give the same
bytes, so nothing is hidden in whitespace, duplicate keys or escapes. Readers never raise.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tracker.documents.canonical import canonical_json
from tracker.documents.facts import STATE_DOCUMENT_VERSION_WITH_TASK, execution_id
from tracker.documents.ids import ID_PATTERN, DocumentError
from tracker.documents.tasks import (
    CODE_NOT_APPLICABLE,
    CODE_NOT_AVAILABLE,
    CODE_READ_AFTER_THE_FACT,
    CODE_RECORDED,
    CODE_STATUSES,
    DATA_ITEM_READER,
    DATA_PARAMETERS,
    TASK_DOCUMENT_VERSION,
    describe_code,
)
from tracker.verify import safejson

T = TypeVar("T")

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
    task_id: str | None = None
    state_name: str | None = None
    event_id: int | None = None
    links: StateLinks | None = None


@dataclass(frozen=True)
class TaskContent:
    """What a task document says, every field checked: the state it belongs to, what ran (`ran`,
    one line), and the code facts for comparing with the services today."""

    instance_id: str
    state_name: str
    event_id: int
    code_identity: str
    ran: str
    code: dict[str, Any] | None


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


@dataclass(frozen=True)
class ModelContent:
    """What the verifier reads of a model document: the states that run a task (Task states, and
    Map states that read their items from S3), whose state documents must name a task document."""

    task_states: frozenset[str]


Content = (
    StateContent | EndContent | InstanceContent | TaskContent | ModelContent | ChildrenContent | Foreign | Malformed
)


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
        task_id = None
        version = value.get("version")
        if "task_id" in value:
            task_id = _identifier(value, "task_id")
            if version != STATE_DOCUMENT_VERSION_WITH_TASK:
                raise _Wrong(f"names a task document but has version {str(version)[:20]!r}, not 3")
        elif version == STATE_DOCUMENT_VERSION_WITH_TASK:
            raise _Wrong("has version 3 but names no task document (task_id)")
        name = value.get("state_name")
        event_id = value.get("event_id")
        links = None
        if "children" in value:
            links = StateLinks(_count(value, "event_id"), _text(value, "state_name"), _identifier(value, "children"))
        return StateContent(
            _identifier(value, "instance_id"),
            _count(value, "seq"),
            _identifier(value, "previous_state_id", empty_allowed=True),
            _count(value, "attempt"),
            task_id,
            sys.intern(name) if isinstance(name, str) else None,
            event_id if isinstance(event_id, int) and not isinstance(event_id, bool) else None,
            links,
        )
    except _Wrong as wrong:
        return Malformed(str(wrong))


def _read(
    data: bytes, kind: str, max_depth: int, max_values: int, build: Callable[[dict[str, Any]], T]
) -> T | Foreign | Malformed:
    """`build` over one of our JSON documents of `kind`; a field it finds wrong makes it Malformed."""
    value = _ours(data, kind, max_depth, max_values)
    if not isinstance(value, dict):
        return value
    try:
        return build(value)
    except _Wrong as wrong:
        return Malformed(str(wrong))


def read_end(data: bytes, max_depth: int = 64, max_values: int = 100_000) -> EndContent | Foreign | Malformed:
    return _read(data, "end", max_depth, max_values, _end)


def _end(value: dict[str, Any]) -> EndContent:
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


def read_instance(data: bytes, max_depth: int = 64, max_values: int = 100_000) -> InstanceContent | Foreign | Malformed:
    return _read(data, "instance", max_depth, max_values, _instance)


def _instance(value: dict[str, Any]) -> InstanceContent:
    execution_arn = _text(value, "execution_arn")
    machine, version, alias = _machine_arns(value, execution_arn) if "state_machine_arn" in value else ("", None, None)
    return InstanceContent(
        _identifier(value, "model_id"),
        execution_arn,
        _count(value, "start_date_ms"),
        machine,
        version,
        alias,
        _parent(value, machine) if machine else None,
    )


# ---------------------------------------------------------------------- task documents

LAMBDA_ARN = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,140}$")
LAMBDA_VERSION = re.compile(r"^(\$LATEST|[0-9]{1,20})$")
# Lambda's CodeSha256: base64 of the SHA-256 of a zip package; for a container image, the image
# digest in hex
CODE_SHA256 = re.compile(r"^([A-Za-z0-9+/]{43}=|[0-9a-f]{64})$")
IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TASK_DEFINITION_ARN = re.compile(
    r"^arn:[a-z-]+:ecs:[a-z0-9-]+:\d{12}:task-definition/([A-Za-z0-9_-]{1,255}):([0-9]{1,10})$"
)
MAX_TEXT = 2048
TASK_FIELDS = {
    "kind", "version", "instance_id", "state_name", "event_id", "state_type", "service", "code_identity",
    "resource", "integration", "parameters_sha256", "code", "code_note", "data", "child",
}  # fmt: skip
LAMBDA_FIELDS = {
    "kind", "function_arn", "invoked", "version", "version_source", "code_sha256", "code_source",
    "package_type", "image_digest", "read_after_the_fact",
}  # fmt: skip
ECS_FIELDS = {"kind", "task_definition_arn", "family", "revision", "containers", "source", "task_arn"}
CONTAINER_FIELDS = {"name", "image", "image_digest"}
OBJECT_FIELDS = {
    "bucket", "key", "role", "versioned", "source", "version_id", "etag", "checksum_algorithm", "checksum",
    "read_after_the_fact", "note",
}  # fmt: skip


def _only(data: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _Wrong(f"has {what} fields this format does not define: {', '.join(k[:40] for k in unknown[:5])}")


def _short_text(data: dict[str, Any], key: str, required: bool = True) -> str | None:
    if key not in data:
        if required:
            raise _Wrong(f"lacks {key}")
        return None
    value = data[key]
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise _Wrong(f"has a malformed {key}: {str(value)[:80]!r}")
    return value


def _matching(data: dict[str, Any], key: str, pattern: re.Pattern[str], required: bool = True) -> str | None:
    value = _short_text(data, key, required)
    if value is not None and not pattern.match(value):
        raise _Wrong(f"has a malformed {key}: {value[:80]!r}")
    return value


def _true_flag(data: dict[str, Any], key: str) -> bool:
    """Flags are written only when true (false is left out)."""
    if key not in data:
        return False
    if data[key] is not True:
        raise _Wrong(f"has {key} {str(data[key])[:20]!r}: a flag is written only as true")
    return True


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Wrong(f"has a {what} that is not an object")
    return value


def _lambda_code(code: dict[str, Any], status: str) -> None:
    _only(code, LAMBDA_FIELDS, "code")
    _matching(code, "function_arn", LAMBDA_ARN)
    _short_text(code, "invoked")
    version = _matching(code, "version", LAMBDA_VERSION)
    _short_text(code, "version_source")
    _short_text(code, "code_source")
    sha = _matching(code, "code_sha256", CODE_SHA256, required=False)
    if code.get("package_type", "Zip") not in ("Zip", "Image"):
        raise _Wrong(f"has package_type {str(code.get('package_type'))[:20]!r}, not Zip or Image")
    _matching(code, "image_digest", IMAGE_DIGEST, required=False)
    after = _true_flag(code, "read_after_the_fact")
    if version == "$LATEST" and not after:
        raise _Wrong("records $LATEST without marking it read after the fact")
    if status == CODE_RECORDED and (after or sha is None):
        raise _Wrong("says its code identity is recorded, but it was read after the fact or has no code_sha256")
    if status == CODE_READ_AFTER_THE_FACT and not after:
        raise _Wrong("says its code was read after the fact, but its code is not marked so")


def _ecs_code(code: dict[str, Any], status: str) -> None:
    _only(code, ECS_FIELDS, "code")
    arn = _matching(code, "task_definition_arn", TASK_DEFINITION_ARN)
    assert arn is not None
    match = TASK_DEFINITION_ARN.match(arn)
    assert match is not None
    if code.get("family") != match.group(1) or code.get("revision") != int(match.group(2)):
        raise _Wrong(f"has family and revision that are not those of {arn[:120]}")
    _short_text(code, "source")
    _short_text(code, "task_arn", required=False)
    containers = code.get("containers")
    if not isinstance(containers, list) or not containers or len(containers) > 100:
        raise _Wrong("has no list of containers (1 to 100)")
    for item in containers:
        container = _object(item, "container")
        _only(container, CONTAINER_FIELDS, "container")
        _short_text(container, "name")
        _short_text(container, "image")
        digest = _matching(container, "image_digest", IMAGE_DIGEST, required=False)
        if status == CODE_RECORDED and digest is None:
            raise _Wrong("says its code identity is recorded, but a container has no image digest")


def _data_object(item: Any) -> None:
    data = _object(item, "data entry")
    _only(data, OBJECT_FIELDS, "data entry")
    _short_text(data, "bucket")
    _short_text(data, "key")
    _short_text(data, "source")
    if data.get("role") not in (DATA_PARAMETERS, DATA_ITEM_READER):
        raise _Wrong(f"has a data entry of role {str(data.get('role'))[:40]!r}")
    versioned = _true_flag(data, "versioned")
    after = _true_flag(data, "read_after_the_fact")
    for key in ("version_id", "etag", "checksum_algorithm", "checksum", "note"):
        _short_text(data, key, required=False)
    if not versioned and "note" not in data:
        raise _Wrong("has an object of an unversioned bucket that is not flagged (no note)")
    if not versioned and "version_id" in data and after:
        raise _Wrong("has an object of an unversioned bucket with a version id")


def read_task(data: bytes, max_depth: int = 64, max_values: int = 100_000) -> TaskContent | Foreign | Malformed:
    """A task document, every field checked (unknown fields, wrong types and facts that contradict
    each other make it malformed)."""
    value = _ours(data, "task", max_depth, max_values)
    if not isinstance(value, dict):
        return Malformed(value.reason) if isinstance(value, Foreign) else value  # a task document is always ours
    try:
        _only(value, TASK_FIELDS, "task")
        if value.get("version") != TASK_DOCUMENT_VERSION:
            raise _Wrong(f"has version {str(value.get('version'))[:20]!r}, not {TASK_DOCUMENT_VERSION}")
        instance = _identifier(value, "instance_id")
        name = _short_text(value, "state_name")
        event_id = _count(value, "event_id")
        if value.get("state_type") not in ("Task", "Map"):
            raise _Wrong(f"has state_type {str(value.get('state_type'))[:40]!r}, not Task or Map")
        service = _short_text(value, "service")
        status = value.get("code_identity")
        if status not in CODE_STATUSES:
            raise _Wrong(f"has code_identity {str(status)[:40]!r}")
        for key in ("resource", "integration", "code_note"):
            _short_text(value, key, required=False)
        if "parameters_sha256" in value:
            _identifier(value, "parameters_sha256")
        if "child" in value:
            raise _Wrong("has a child workflow, which this version of the format does not define yet")
        code = value.get("code")
        if code is not None:
            code = _object(code, "code")
            if code.get("kind") == "lambda" and service == "lambda":
                _lambda_code(code, str(status))
            elif code.get("kind") == "ecs" and service == "ecs":
                _ecs_code(code, str(status))
            else:
                raise _Wrong(f"has code of kind {str(code.get('kind'))[:20]!r} for service {str(service)[:40]!r}")
        if status in (CODE_NOT_AVAILABLE, CODE_NOT_APPLICABLE) and code is not None:
            raise _Wrong(f"says its code identity is {status} but records code")
        if status in (CODE_RECORDED, CODE_READ_AFTER_THE_FACT) and code is None:
            raise _Wrong(f"says its code identity is {status} but records no code")
        if (status == CODE_NOT_APPLICABLE) != (value.get("state_type") == "Map"):
            raise _Wrong("says 'not applicable' for a Task state, or something else for a Map state")
        items = value.get("data")
        if not isinstance(items, list) or len(items) > 100:
            raise _Wrong("has no data list (at most 100 objects)")
        for item in items:
            _data_object(item)
        assert name is not None
        ran = describe_code(code, str(status), value.get("code_note"))
        if items:
            shown = ", ".join(_describe_object(item) for item in items[:3]) + (" …" if len(items) > 3 else "")
            ran += f"; read {shown}"
        return TaskContent(instance, name, event_id, str(status), ran, code)
    except _Wrong as wrong:
        return Malformed(str(wrong))


def _describe_object(item: dict[str, Any]) -> str:
    text = f"s3://{item['bucket']}/{item['key']}"
    if item.get("version_id"):
        text += f" version {item['version_id']}"
    if not item.get("versioned"):
        text += " (unversioned bucket)"
    return text


def read_model(data: bytes, max_depth: int = 64, max_values: int = 100_000) -> ModelContent | Foreign | Malformed:
    """The names of a model's states that run a task (its bytes are checked by hash elsewhere)."""
    try:
        value = safejson.loads(data, max_depth, max_values)
    except safejson.JsonRefused as refused:
        return Foreign(f"the model is not read ({refused})")
    names: set[str] = set()
    machines = [value]
    while machines:
        machine = machines.pop()
        if not isinstance(machine, dict) or not isinstance(machine.get("States"), dict):
            continue
        for name, state in machine["States"].items():
            if not isinstance(state, dict):
                continue
            reader = state.get("ItemReader")
            if state.get("Type") == "Task" or (state.get("Type") == "Map" and isinstance(reader, dict)):
                names.add(name)
            machines += [state.get("Iterator"), state.get("ItemProcessor"), *(state.get("Branches") or [])]
    return ModelContent(frozenset(names))


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
