"""Task documents: what a Task state ran (the code) and read (the data), each fact with its source.

A state document of a Task state (or of a Map state that reads its items from S3) names its task
document's id (`task_id`), so the hash chain of the states covers what ran. A task document never
changes once written: facts that can only be read after the fact (the code behind `$LATEST`, an
alias's version, an object in an unversioned bucket) are marked so, and the tracker pins the
bytes of the first task document it wrote for a state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracker.documents.canonical import canonical_json
from tracker.documents.facts import Document

TASK_DOCUMENT_VERSION = 1

# What the document says of the code identity (`code_identity`).
CODE_RECORDED = "recorded"  # the version that ran, read from that exact version
CODE_READ_AFTER_THE_FACT = "read after the fact"  # $LATEST or an alias: read when tracked, not proven to have run
CODE_NOT_AVAILABLE = "not available for this service"  # the service gives no stable identity of its code
CODE_UNAVAILABLE = "unavailable"  # the service has one, but it could not be read (the note says why)
CODE_NOT_APPLICABLE = "not applicable"  # a Map state reading its items: no code of its own
CODE_STATUSES = frozenset(
    {CODE_RECORDED, CODE_READ_AFTER_THE_FACT, CODE_NOT_AVAILABLE, CODE_UNAVAILABLE, CODE_NOT_APPLICABLE}
)

# Where a data object was named.
DATA_PARAMETERS = "parameters"
DATA_ITEM_READER = "item_reader"


@dataclass(frozen=True)
class LambdaCode:
    """The Lambda function a task invoked and the code of the version that ran."""

    function_arn: str  # unqualified
    invoked: str  # the function as the task named it, qualifier included
    version: str  # "7" or "$LATEST"
    version_source: str
    code_sha256: str | None  # as Lambda reports it (base64 of the SHA-256 of the deployment package)
    code_source: str
    package_type: str | None = None
    image_digest: str | None = None  # container-image functions: the digest Lambda resolved
    read_after_the_fact: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"kind": "lambda", **_present(self.__dict__)}


@dataclass(frozen=True)
class EcsContainer:
    name: str
    image: str
    image_digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _present(self.__dict__)


@dataclass(frozen=True)
class EcsCode:
    """The ECS task definition a task ran and each container's image, from the task's description."""

    task_definition_arn: str
    family: str
    revision: int
    containers: tuple[EcsContainer, ...]
    source: str
    task_arn: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = _present({key: value for key, value in self.__dict__.items() if key != "containers"})
        return {"kind": "ecs", **data, "containers": [container.to_json() for container in self.containers]}


@dataclass(frozen=True)
class S3Object:
    """An S3 object a state named: which version, and its checksum where S3 keeps one."""

    bucket: str
    key: str
    role: str  # DATA_PARAMETERS or DATA_ITEM_READER
    versioned: bool  # False: the bucket keeps no versions, the object may have changed since
    source: str
    version_id: str | None = None
    etag: str | None = None
    checksum_algorithm: str | None = None
    checksum: str | None = None
    read_after_the_fact: bool = False
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _present(self.__dict__)


Code = LambdaCode | EcsCode


@dataclass(frozen=True)
class TaskFacts:
    """What one state visit ran and read. `child` is the place of a nested workflow's model and
    instance ids (a `states:startExecution` task); it is not written yet."""

    instance_id: str
    state_name: str
    event_id: int  # the state's entered event, as in its state document
    state_type: str  # "Task" or "Map"
    service: str  # "lambda", "ecs", "map", or the integration's service name
    code_identity: str
    resource: str | None = None
    integration: str | None = None  # e.g. "lambda:invoke", "lambda (function ARN)", "ecs:runTask.sync"
    parameters_sha256: str | None = None
    code: Code | None = None
    code_note: str | None = None
    data: tuple[S3Object, ...] = field(default_factory=tuple)
    child: dict[str, str] | None = None
    version: int = TASK_DOCUMENT_VERSION

    def to_json(self) -> dict[str, Any]:
        data = {key: value for key, value in self.__dict__.items() if key not in ("code", "data") and value is not None}
        if self.code is not None:
            data["code"] = self.code.to_json()
        data["data"] = [item.to_json() for item in self.data]
        return {"kind": "task", **data}

    def document(self) -> Document:
        return Document(canonical_json(self.to_json()))


def _present(facts: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in facts.items() if value is not None and value is not False}


def describe_code(code: dict[str, Any] | None, status: str, note: str | None = None) -> str:
    """One line of what ran, from a task document's `code` (as parsed): 'lambda transform v7, code
    sha256 …'."""
    if code is None:
        text = f"code identity {status}"
        return text + (f" ({note})" if note and note != text else "")
    if code.get("kind") == "lambda":
        name = str(code.get("function_arn", "")).rsplit(":", 1)[-1]
        version = str(code.get("version"))
        shown = "$LATEST" if version == "$LATEST" else f"v{version}"
        text = f"lambda {name} {shown}"
        if code.get("code_sha256"):
            text += f", code sha256 {code['code_sha256']}"
        if code.get("image_digest"):
            text += f", image {code['image_digest']}"
        if status != CODE_RECORDED:
            text += f" ({status}" + (f": {note}" if note else "") + ")"
        return text
    if code.get("kind") == "ecs":
        family = code.get("family")
        containers = ", ".join(
            f"{item.get('name')} {item.get('image_digest') or item.get('image')}" for item in code.get("containers", [])
        )
        return f"ecs task definition {family}:{code.get('revision')} ({containers})"
    return f"code identity {status}"
