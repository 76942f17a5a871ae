"""What each Task state ran and read: facts from the execution history, completed from the services.

`task_calls(execution)` finds, for every state visit of a Task state (and of a Map state with an
S3 `ItemReader`), the events of its call (no I/O). `TaskReader.facts(call, instance_id)` turns a
call into the task document's facts, reading what the history lacks:

| service | from the history | read from the service |
| --- | --- | --- |
| Lambda, `lambda:invoke` | the function and qualifier (TaskScheduled parameters), the version that ran (TaskSucceeded output `ExecutedVersion`) | that version's `CodeSha256`, package type and image digest (GetFunction with the version as qualifier) |
| Lambda, function ARN as the resource | the function and qualifier (LambdaFunctionScheduled resource) | the same; an unqualified ARN runs `$LATEST`, an alias is resolved with GetAlias, both read after the fact |
| ECS, `ecs:runTask(.sync)` | the task definition ARN and revision, each container's image and digest (the task description in TaskSucceeded's output) | nothing |
| S3 objects named in the parameters (`Bucket` and `Key`) and a Map's S3 ItemReader | bucket, key, the version named | the bucket's versioning (GetBucketVersioning); the version current when the state was entered (ListObjectVersions), its ETag and checksum (HeadObject) |
| any other service | the resource and a digest of the parameters | nothing: "code identity not available for this service" |

A nested workflow (`states:startExecution`) is recorded as another service for now; its child's
model and instance ids belong in the document's `child` field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tracker.aws.errors import AccessDeniedError, AwsRequestError, StateMachineNotFoundError
from tracker.aws.events import HistoryEvent, StateVisit, state_visits
from tracker.aws.session import AwsService
from tracker.documents.ids import sha256_hex, to_millis
from tracker.documents.tasks import (
    CODE_NOT_APPLICABLE,
    CODE_NOT_AVAILABLE,
    CODE_READ_AFTER_THE_FACT,
    CODE_RECORDED,
    CODE_UNAVAILABLE,
    DATA_ITEM_READER,
    DATA_PARAMETERS,
    EcsCode,
    EcsContainer,
    LambdaCode,
    S3Object,
    TaskFacts,
)

LAMBDA_FUNCTION_ARN = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$")
SERVICE_RESOURCE = re.compile(
    r"^arn:[a-z-]+:states:[a-z0-9-]*:\d*:((?:aws-sdk:)?[a-z0-9-]+):([A-Za-z0-9]+)(\.[A-Za-z]+)?$"
)
CALL_EVENT_PREFIXES = ("Task", "LambdaFunction")
# Failures that belong in the document (they will not go away by asking again); throttling and an
# unreachable endpoint are raised, and the poll is retried.
UNREADABLE = (StateMachineNotFoundError, AccessDeniedError, AwsRequestError)
MAX_DATA_OBJECTS = 100


@dataclass(frozen=True)
class TaskCall:
    """One visit of a Task (or item-reading Map) state and the events of its call."""

    visit: StateVisit
    state: Mapping[str, Any]  # the state's definition
    scheduled: HistoryEvent | None = None  # the last TaskScheduled / LambdaFunctionScheduled
    succeeded: HistoryEvent | None = None  # the TaskSucceeded / LambdaFunctionSucceeded after it

    @property
    def name(self) -> str:
        return self.visit.name

    @property
    def state_type(self) -> str:
        return str(self.state.get("Type"))

    @property
    def resource(self) -> str | None:
        value = self.state.get("Resource")
        return str(value) if value is not None else None

    def parameters_text(self) -> str | None:
        if self.scheduled is None or self.scheduled.type != "TaskScheduled":
            return None
        value = self.scheduled.details.get("parameters")
        return str(value) if value is not None else None

    def parameters(self) -> Any:
        return _json(self.parameters_text())

    def output(self) -> Any:
        return _json(self.succeeded.details.get("output")) if self.succeeded is not None else None


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def declared_states(definition: str) -> dict[str, Mapping[str, Any]]:
    """Every state of an ASL definition by name, nested ones included."""
    found: dict[str, Mapping[str, Any]] = {}

    def visit(machine: Any) -> None:
        if not isinstance(machine, Mapping):
            return
        for name, state in (machine.get("States") or {}).items():
            if isinstance(state, Mapping):
                found.setdefault(str(name), state)
                visit(state.get("Iterator"))
                visit(state.get("ItemProcessor"))
                for branch in state.get("Branches") or []:
                    visit(branch)

    parsed = _json(definition)
    visit(parsed)
    return found


def _records_task(state: Mapping[str, Any]) -> bool:
    return state.get("Type") == "Task" or (state.get("Type") == "Map" and isinstance(state.get("ItemReader"), Mapping))


def task_calls(definition: str, events: tuple[HistoryEvent, ...] | list[HistoryEvent]) -> dict[int, TaskCall]:
    """The call of every Task state visit (and item-reading Map), by the visit's entered event id."""
    states = declared_states(definition)
    children: dict[int, list[HistoryEvent]] = {}
    for event in events:
        children.setdefault(event.previous_event_id, []).append(event)
    calls: dict[int, TaskCall] = {}
    for visit in state_visits(list(events)):
        state = states.get(visit.name)
        if state is None or not _records_task(state):
            continue
        scheduled = succeeded = None
        current = visit.entered
        seen = 0
        while seen < len(events):
            seen += 1
            following = [
                event
                for event in children.get(current.id, [])
                if event.type.startswith(CALL_EVENT_PREFIXES)
                and not event.type.endswith(("StateEntered", "StateExited"))
            ]
            if not following:
                break
            current = following[0]
            if current.type.endswith("Scheduled"):
                scheduled, succeeded = current, None
            elif current.type.endswith("Succeeded"):
                succeeded = current
        calls[visit.entered.id] = TaskCall(visit, state, scheduled, succeeded)
    return calls


def split_function(reference: str) -> tuple[str, str | None]:
    """A Lambda function reference (name, partial or full ARN, with or without a qualifier) as
    (the function without qualifier, the qualifier)."""
    if reference.startswith("arn:"):
        parts = reference.split(":")
        if len(parts) == 8:
            return ":".join(parts[:7]), parts[7]
        return reference, None
    parts = reference.split(":")
    if len(parts) == 2:  # name:qualifier
        return parts[0], parts[1]
    if len(parts) == 4:  # account:function:name:qualifier
        return ":".join(parts[:3]), parts[3]
    return reference, None


def s3_objects_named(value: Any, limit: int = MAX_DATA_OBJECTS) -> list[tuple[str, str, str | None]]:
    """(bucket, key, version id) of every object the parameters name with `Bucket` and `Key`."""
    found: list[tuple[str, str, str | None]] = []

    def visit(item: Any) -> None:
        if len(found) >= limit:
            return
        if isinstance(item, Mapping):
            bucket, key = item.get("Bucket"), item.get("Key")
            if isinstance(bucket, str) and isinstance(key, str) and bucket and key:
                version = item.get("VersionId")
                found.append((bucket, key, str(version) if isinstance(version, str) else None))
            for child in item.values():
                visit(child)
        elif isinstance(item, list):
            for child in item:
                visit(child)

    visit(value)
    return found


def resolve_paths(template: Any, state_input: Any) -> Any:
    """A Parameters template with its `"key.$": "$.path"` fields taken from the input (simple
    dotted paths; anything else is left out)."""
    if not isinstance(template, Mapping):
        return template
    resolved: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$") and isinstance(value, str) and value.startswith("$"):
            found = _path(state_input, value)
            if found is not None:
                resolved[key[:-2]] = found
        else:
            resolved[key] = resolve_paths(value, state_input)
    return resolved


def _path(value: Any, path: str) -> Any:
    if path == "$":
        return value
    if not path.startswith("$."):
        return None
    for part in path[2:].split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


@dataclass
class TaskReader:
    """Completes task calls from Lambda and S3 (read only: GetFunction, GetAlias,
    GetBucketVersioning, ListObjectVersions, HeadObject). A published version's code never
    changes, so it is asked once per run."""

    session: Any
    _lambda: AwsService | None = None
    _s3: AwsService | None = None
    _versions: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    _versioning: dict[str, bool] = field(default_factory=dict)

    @property
    def lambda_service(self) -> AwsService:
        if self._lambda is None:
            self._lambda = AwsService(self.session, "lambda")
        return self._lambda

    @property
    def s3(self) -> AwsService:
        if self._s3 is None:
            self._s3 = AwsService(self.session, "s3")
        return self._s3

    # ------------------------------------------------------------------ the facts of one call

    def facts(self, call: TaskCall, instance_id: str) -> TaskFacts:
        base: dict[str, Any] = {
            "instance_id": instance_id,
            "state_name": call.name,
            "event_id": call.visit.entered.id,
            "state_type": call.state_type,
            "resource": call.resource,
        }
        parameters_text = call.parameters_text()
        if parameters_text is not None:
            base["parameters_sha256"] = sha256_hex(parameters_text)
        if call.state_type == "Map":
            return TaskFacts(
                **base,
                service="map",
                integration="ItemReader",
                code_identity=CODE_NOT_APPLICABLE,
                data=tuple(self._item_reader(call)),
            )
        data = tuple(self._objects(call.parameters(), DATA_PARAMETERS, call.visit.entered.timestamp_ms))
        resource = call.resource or ""
        if LAMBDA_FUNCTION_ARN.match(resource):
            code, status, note = self._lambda_code(resource, None, "the state's Resource (a function ARN)")
            return TaskFacts(
                **base,
                service="lambda",
                integration="lambda (function ARN)",
                code_identity=status,
                code=code,
                code_note=note,
                data=data,
            )
        match = SERVICE_RESOURCE.match(resource)
        service = match.group(1) if match else "unknown"
        action = (match.group(2) + (match.group(3) or "")) if match else None
        integration = f"{service}:{action}" if action else None
        if service == "lambda" and match and match.group(2) == "invoke":
            parameters = call.parameters()
            reference = parameters.get("FunctionName") if isinstance(parameters, Mapping) else None
            if not isinstance(reference, str):
                note = "the task was not scheduled, so the function it invoked is unknown"
                return TaskFacts(
                    **base,
                    service=service,
                    integration=integration,
                    code_identity=CODE_UNAVAILABLE,
                    code_note=note,
                    data=data,
                )
            qualifier = parameters.get("Qualifier") if isinstance(parameters.get("Qualifier"), str) else None
            output = call.output()
            executed = output.get("ExecutedVersion") if isinstance(output, Mapping) else None
            code, status, note = self._lambda_code(
                reference,
                executed if isinstance(executed, str) else None,
                "TaskScheduled parameters (FunctionName)",
                qualifier,
            )
            return TaskFacts(
                **base,
                service=service,
                integration=integration,
                code_identity=status,
                code=code,
                code_note=note,
                data=data,
            )
        if service == "ecs" and match and match.group(2) == "runTask":
            code_ecs, status, note = self._ecs_code(call)
            return TaskFacts(
                **base,
                service=service,
                integration=integration,
                code_identity=status,
                code=code_ecs,
                code_note=note,
                data=data,
            )
        return TaskFacts(
            **base,
            service=service,
            integration=integration,
            code_identity=CODE_NOT_AVAILABLE,
            code_note="code identity not available for this service",
            data=data,
        )

    # ------------------------------------------------------------------ Lambda

    def _lambda_code(
        self, reference: str, executed: str | None, named_in: str, qualifier: str | None = None
    ) -> tuple[LambdaCode | None, str, str | None]:
        function, named_qualifier = split_function(reference)
        qualifier = qualifier or named_qualifier
        after = False
        if executed:
            version, version_source = executed, "TaskSucceeded output (ExecutedVersion, from Lambda's Invoke)"
        elif qualifier and qualifier.isdigit():
            version, version_source = qualifier, f"the version the task invoked ({named_in})"
        elif qualifier and qualifier != "$LATEST":
            try:
                alias = self.lambda_service.call(
                    "get_alias",
                    f"alias {qualifier} of Lambda function {function}",
                    FunctionName=function,
                    Name=qualifier,
                )
            except UNREADABLE as error:
                return None, CODE_UNAVAILABLE, f"lambda:GetAlias failed: {error}"
            version = str(alias["FunctionVersion"])
            version_source = (
                f"lambda:GetAlias {qualifier} when tracked (the alias may have pointed elsewhere when the task ran)"
            )
            after = True
        else:
            version, version_source = "$LATEST", f"the unqualified function the task invoked ({named_in})"
        after = after or version == "$LATEST"
        try:
            answer = self._function(function, version)
        except UNREADABLE as error:
            return None, CODE_UNAVAILABLE, f"lambda:GetFunction of {function} version {version} failed: {error}"
        configuration = answer.get("Configuration") or {}
        arn = str(configuration.get("FunctionArn") or function)
        unqualified, _ = split_function(arn)
        image = (answer.get("Code") or {}).get("ResolvedImageUri")
        code_source = f"lambda:GetFunction (Qualifier {version})" + (" when tracked" if after else "")
        code = LambdaCode(
            function_arn=unqualified,
            invoked=reference if not qualifier or reference.endswith(f":{qualifier}") else f"{reference}:{qualifier}",
            version=version,
            version_source=version_source,
            code_sha256=configuration.get("CodeSha256"),
            code_source=code_source,
            package_type=configuration.get("PackageType"),
            image_digest=str(image).rsplit("@", 1)[1] if image and "@" in str(image) else None,
            read_after_the_fact=after,
        )
        if after:
            return (
                code,
                CODE_READ_AFTER_THE_FACT,
                "not proven to be the code that ran: use published versions or aliases",
            )
        return code, CODE_RECORDED, None

    def _function(self, function: str, version: str) -> Mapping[str, Any]:
        key = (function, version)
        if key in self._versions:
            return self._versions[key]
        answer = self.lambda_service.call(
            "get_function", f"Lambda function {function} version {version}", FunctionName=function, Qualifier=version
        )
        if version != "$LATEST":
            self._versions[key] = answer
        return answer

    def current_code(self, invoked: str) -> Mapping[str, Any]:
        """GetFunctionConfiguration of a function as a task invoked it (qualifier included), today."""
        function, qualifier = split_function(invoked)
        arguments = {"FunctionName": function, **({"Qualifier": qualifier} if qualifier else {})}
        return self.lambda_service.call("get_function_configuration", f"Lambda function {invoked}", **arguments)

    # ------------------------------------------------------------------ ECS

    @staticmethod
    def _ecs_code(call: TaskCall) -> tuple[EcsCode | None, str, str | None]:
        output = call.output()
        task = output
        if isinstance(output, Mapping) and isinstance(output.get("Tasks"), list) and output["Tasks"]:
            task = output["Tasks"][0]  # runTask without .sync outputs RunTask's answer
        arn = task.get("TaskDefinitionArn") if isinstance(task, Mapping) else None
        if not isinstance(arn, str) or ":task-definition/" not in arn:
            return None, CODE_UNAVAILABLE, "the task's output carries no task description (it did not succeed)"
        family, _, revision = arn.rsplit("/", 1)[1].partition(":")
        containers = tuple(
            EcsContainer(str(item.get("Name")), str(item.get("Image")), item.get("ImageDigest"))
            for item in task.get("Containers") or []
            if isinstance(item, Mapping)
        )
        code = EcsCode(
            task_definition_arn=arn,
            family=family,
            revision=int(revision) if revision.isdigit() else 0,
            containers=containers,
            source="TaskSucceeded output (the task's description: TaskDefinitionArn, Containers[].ImageDigest)",
            task_arn=task.get("TaskArn") if isinstance(task.get("TaskArn"), str) else None,
        )
        if any(container.image_digest is None for container in containers):
            return code, CODE_UNAVAILABLE, "a container's image digest is missing from the task's description"
        return code, CODE_RECORDED, None

    # ------------------------------------------------------------------ S3

    def _item_reader(self, call: TaskCall) -> list[S3Object]:
        reader = call.state.get("ItemReader")
        if not isinstance(reader, Mapping) or not str(reader.get("Resource", "")).startswith("arn:aws:states:::s3:"):
            return []
        state_input = _json(call.visit.entered.details.get("input"))
        parameters = resolve_paths(reader.get("Parameters") or {}, state_input)
        return self._objects(parameters, DATA_ITEM_READER, call.visit.entered.timestamp_ms)

    def _objects(self, parameters: Any, role: str, entered_ms: int) -> list[S3Object]:
        return [
            self._object(bucket, key, version, role, entered_ms)
            for bucket, key, version in s3_objects_named(parameters)
        ]

    def _object(self, bucket: str, key: str, version_id: str | None, role: str, entered_ms: int) -> S3Object:
        subject = f"s3://{bucket}/{key}"
        try:
            versioned = self._bucket_versioned(bucket)
            after = False
            if version_id is not None:
                source = "the version the state named; HeadObject of that version"
            elif versioned:
                version_id = self._version_at(bucket, key, entered_ms)
                source = "ListObjectVersions: the version current when the state was entered; HeadObject of it"
                if version_id is None:
                    return S3Object(
                        bucket, key, role, True, source, note="no version existed when the state was entered"
                    )
            else:
                source = "HeadObject when tracked (the bucket keeps no versions)"
                after = True
            arguments: dict[str, Any] = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
            if version_id is not None:
                arguments["VersionId"] = version_id
            head = self.s3.call("head_object", subject, **arguments)
        except UNREADABLE as error:
            return S3Object(bucket, key, role, False, "s3", version_id=version_id, note=f"could not be read: {error}")
        algorithm, checksum = next(
            (
                (name, str(head[f"Checksum{name}"]))
                for name in ("SHA256", "SHA1", "CRC32C", "CRC32", "CRC64NVME")
                if head.get(f"Checksum{name}")
            ),
            (None, None),
        )
        version = head.get("VersionId") if versioned else None
        return S3Object(
            bucket,
            key,
            role,
            versioned,
            source,
            version_id=str(version) if version and version != "null" else version_id,
            etag=str(head.get("ETag", "")).strip('"') or None,
            checksum_algorithm=algorithm,
            checksum=checksum,
            read_after_the_fact=after,
            note=None if versioned else "unversioned bucket: the object may have changed since the state read it",
        )

    def _bucket_versioned(self, bucket: str) -> bool:
        if bucket not in self._versioning:
            answer = self.s3.call("get_bucket_versioning", f"bucket {bucket}", Bucket=bucket)
            self._versioning[bucket] = answer.get("Status") == "Enabled"
        return self._versioning[bucket]

    def _version_at(self, bucket: str, key: str, moment_ms: int) -> str | None:
        best: tuple[int, str] | None = None
        for page in self.s3.pages("list_object_versions", f"s3://{bucket}/{key}", Bucket=bucket, Prefix=key):
            for item in page.get("Versions", []):
                if item.get("Key") != key:
                    continue
                modified = to_millis(item["LastModified"])
                if modified <= moment_ms and (best is None or modified > best[0]):
                    best = (modified, str(item["VersionId"]))
        return best[1] if best else None
