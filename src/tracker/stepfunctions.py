"""AWS Step Functions as the tracker reads it: executions, their history events, and the states
they entered, from one of two sources through boto3 (standard credential chain, AWS_REGION,
AWS_PROFILE, AWS_ENDPOINT_URL).

* `HistorySource` (Standard workflows): ListStateMachines / ListExecutions / DescribeExecution /
  GetExecutionHistory, all paginated.
* `LogsSource` (Express workflows, which have no history API): the CloudWatch Logs log group the
  state machine logs to at level ALL, read with FilterLogEvents. Each message is AWS's documented
  JSON (`id`, `previous_event_id`, `type`, `details`, `event_timestamp`, `execution_arn`).
  CloudWatch delivers out of order and may repeat, so events are de-duplicated by id and released
  in id order only up to the first missing id: an event is held until its predecessor (and every
  earlier event) arrived, so both sources yield the same ordered events for the same execution.

Both sources implement `ExecutionSource`: `list_executions()` then `load(ref)` per execution.
`state_visits(events, ended)` turns ordered events into the states the execution entered: every
`*StateEntered` (Map and Parallel iterations included) paired with its `*StateExited`; a state is
ready once it exited (its output is then known and its document never changes) or the execution
ended, and only a prefix of ready states is released so that sequence numbers never change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence

from tracker.documents import to_millis
from tracker.errors import ConfigurationError, TrackerError, one_line

STATE_MACHINE_ARN = re.compile(r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_.-]{1,80}(:[A-Za-z0-9_.$-]+)?$")
EXECUTION_ARN = re.compile(r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:(execution|express):[A-Za-z0-9_.-]{1,80}:[^:\s]+(:[^:\s]+)?$")
END_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})


class StepFunctionsError(TrackerError):
    """Base of the failures reading Step Functions or CloudWatch Logs."""


class MalformedArnError(StepFunctionsError):
    """An ARN given on the command line is not a state machine or execution ARN."""


class StateMachineNotFoundError(StepFunctionsError):
    """A state machine or execution ARN names nothing that exists."""


class NoStateMachinesError(StepFunctionsError):
    """The region has no state machines to track."""


class AccessDeniedError(StepFunctionsError):
    """The AWS credentials lack a permission the tracker needs."""


class MalformedDefinitionError(StepFunctionsError):
    """DescribeStateMachine returned a definition that is not an Amazon States Language object."""


class MalformedLogMessageError(StepFunctionsError):
    """A CloudWatch Logs message is not a Step Functions execution event."""


class LogGroupNotFoundError(StepFunctionsError):
    """The log group to read does not exist."""


class AwsRequestError(StepFunctionsError):
    """Any other refusal from AWS, with its code and message."""


@dataclass(frozen=True)
class HistoryEvent:
    """One execution history event; `details` holds the event's `*EventDetails` (or log `details`)."""

    id: int
    previous_event_id: int
    type: str
    timestamp_ms: int
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionRef:
    """An execution found by listing; `status` is None when the source cannot tell before loading."""

    execution_arn: str
    state_machine_arn: str
    status: str | None = None


@dataclass(frozen=True)
class Execution:
    """Everything the tracker needs about one execution, as read at one moment."""

    execution_arn: str
    state_machine_arn: str
    name: str
    start_date_ms: int
    definition: str
    input: str | None
    events: tuple[HistoryEvent, ...]
    held_events: int = 0
    state_machine_version_arn: str | None = None
    role_arn: str | None = None

    @property
    def account_id(self) -> str | None:
        parts = self.execution_arn.split(":")
        return parts[4] if len(parts) > 4 and parts[4].isdigit() else None

    @property
    def end_event(self) -> HistoryEvent | None:
        return execution_end(self.events)


@dataclass(frozen=True)
class StateVisit:
    """One entered state and, when it already happened, the matching exit."""

    entered: HistoryEvent
    exited: HistoryEvent | None

    @property
    def name(self) -> str:
        return str(self.entered.details.get("name", ""))


class ExecutionSource(Protocol):
    """What the tracking engine reads executions from."""

    name: str

    def list_executions(self) -> list[ExecutionRef]: ...

    def load(self, ref: ExecutionRef) -> Execution: ...


# -------------------------------------------------------------------- events to states


def execution_end(events: Sequence[HistoryEvent]) -> HistoryEvent | None:
    """The event that ended the execution, if it is among `events`."""
    for event in reversed(events):
        if event.type in END_EVENTS:
            return event
    return None


def state_visits(events: Sequence[HistoryEvent]) -> list[StateVisit]:
    """The ready prefix of the states entered, in history order (see the module docstring)."""
    by_id = {event.id: event for event in events}
    exits: dict[int, HistoryEvent] = {}
    for event in events:
        if not event.type.endswith("StateExited"):
            continue
        entered_type = event.type[: -len("Exited")] + "Entered"
        name = event.details.get("name")
        ancestor = by_id.get(event.previous_event_id)
        seen = 0
        while ancestor is not None and seen < len(by_id):
            if (
                ancestor.type == entered_type
                and ancestor.details.get("name") == name
                and ancestor.id not in exits
            ):
                exits[ancestor.id] = event
                break
            ancestor = by_id.get(ancestor.previous_event_id)
            seen += 1
    ended = execution_end(events) is not None
    visits: list[StateVisit] = []
    for event in events:
        if not event.type.endswith("StateEntered"):
            continue
        exited = exits.get(event.id)
        if exited is None and not ended:
            break
        visits.append(StateVisit(event, exited))
    return visits


def release_in_order(events: Iterable[HistoryEvent]) -> tuple[list[HistoryEvent], int]:
    """De-duplicates by id and releases events 1, 2, ... up to the first gap.

    Returns the released events and how many are held back waiting for a predecessor.
    """
    unique: dict[int, HistoryEvent] = {}
    for event in events:
        unique.setdefault(event.id, event)
    released: list[HistoryEvent] = []
    present: set[int] = {0}
    next_id = 1
    while next_id in unique:
        event = unique[next_id]
        if event.previous_event_id not in present:
            break
        released.append(event)
        present.add(event.id)
        next_id += 1
    return released, len(unique) - len(released)


# -------------------------------------------------------------------- parsing


def _details_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in raw.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping):
            return dict(value)
    return {}


def history_event(raw: Mapping[str, Any]) -> HistoryEvent:
    """A GetExecutionHistory event as a `HistoryEvent`."""
    return HistoryEvent(
        id=int(raw["id"]),
        previous_event_id=int(raw.get("previousEventId", 0)),
        type=str(raw["type"]),
        timestamp_ms=to_millis(raw["timestamp"]),
        details=_details_of(raw),
    )


@dataclass(frozen=True)
class LogMessage:
    execution_arn: str
    event: HistoryEvent


def parse_log_message(text: str, where: str) -> LogMessage:
    """Parses one CloudWatch Logs message of a Step Functions execution; `where` names it in errors."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        raise MalformedLogMessageError(f"malformed log message ({where}): not JSON: {text[:60]!r}") from None
    if not isinstance(data, Mapping):
        raise MalformedLogMessageError(f"malformed log message ({where}): not a JSON object")
    missing = [key for key in ("id", "previous_event_id", "type", "event_timestamp", "execution_arn") if key not in data]
    if missing:
        raise MalformedLogMessageError(f"malformed log message ({where}): lacks {', '.join(missing)}")
    try:
        event_id = int(data["id"])
        previous = int(data["previous_event_id"])
        timestamp = int(data["event_timestamp"])
    except (TypeError, ValueError):
        raise MalformedLogMessageError(
            f"malformed log message ({where}): id, previous_event_id and event_timestamp must be integers"
        ) from None
    details = data.get("details") or {}
    if event_id < 1 or previous < 0 or previous >= event_id or not isinstance(details, Mapping):
        raise MalformedLogMessageError(f"malformed log message ({where}): inconsistent id {event_id} / previous {previous}")
    arn = str(data["execution_arn"])
    if not EXECUTION_ARN.match(arn):
        raise MalformedLogMessageError(f"malformed log message ({where}): execution_arn {arn!r} is not an execution ARN")
    return LogMessage(arn, HistoryEvent(event_id, previous, str(data["type"]), timestamp, dict(details)))


def check_definition(definition: str, state_machine_arn: str) -> str:
    """Returns the definition text unchanged after checking it is an ASL object (StartAt, States)."""
    try:
        parsed = json.loads(definition)
    except (TypeError, ValueError) as error:
        raise MalformedDefinitionError(
            f"state machine {state_machine_arn} has a malformed definition: not JSON ({error})"
        ) from None
    if not isinstance(parsed, Mapping) or "StartAt" not in parsed or not isinstance(parsed.get("States"), Mapping):
        raise MalformedDefinitionError(
            f"state machine {state_machine_arn} has a malformed definition: no StartAt and States"
        )
    return definition


def check_state_machine_arn(arn: str) -> str:
    if not STATE_MACHINE_ARN.match(arn):
        raise MalformedArnError(f"malformed state machine ARN {arn!r} (expected arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)")
    return arn


def check_execution_arn(arn: str) -> str:
    if not EXECUTION_ARN.match(arn):
        raise MalformedArnError(f"malformed execution ARN {arn!r} (expected arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME)")
    return arn


def state_machine_of(execution_arn: str) -> str:
    """The state machine ARN an execution ARN (standard or express) belongs to."""
    parts = execution_arn.split(":")
    return ":".join(parts[:5] + ["stateMachine", parts[6]])


def execution_name(execution_arn: str) -> str:
    return execution_arn.split(":")[7]


# -------------------------------------------------------------------- AWS access


@dataclass(frozen=True)
class Selection:
    """Which executions to track: machines (none: every machine of the region), one execution, since."""

    state_machine_arns: tuple[str, ...] = ()
    execution_arn: str | None = None
    since_ms: int | None = None

    def __post_init__(self) -> None:
        for arn in self.state_machine_arns:
            check_state_machine_arn(arn)
        if self.execution_arn is not None:
            check_execution_arn(self.execution_arn)


def aws_session(region: str | None = None, profile: str | None = None) -> Any:
    """A boto3 session from the standard chain; raises `ConfigurationError` without a region."""
    import os

    import boto3
    from botocore.exceptions import ProfileNotFound

    # botocore reads AWS_DEFAULT_REGION; AWS_REGION is what the AWS SDKs and Lambda set.
    region = region or os.environ.get("AWS_REGION") or None
    try:
        session = boto3.session.Session(region_name=region, profile_name=profile)
    except ProfileNotFound as error:
        raise ConfigurationError(f"AWS profile not found: {one_line(error)}") from error
    if not session.region_name:
        raise ConfigurationError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or pass --region")
    return session


def aws_client(session: Any, service: str) -> Any:
    from botocore.config import Config

    return session.client(service, config=Config(retries={"mode": "adaptive", "max_attempts": 8}))


def translate_aws_error(error: Exception, subject: str) -> Exception:
    """An AWS failure as the tracker's error type; transient faults are returned unchanged."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    from tracker.retry import is_transient

    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return ConfigurationError("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if not isinstance(error, ClientError):
        return error
    if is_transient(error):
        return error
    code = str(error.response.get("Error", {}).get("Code", ""))
    message = str(error.response.get("Error", {}).get("Message", ""))
    operation = getattr(error, "operation_name", "request")
    if code in ACCESS_DENIED_CODES or "not authorized" in message:
        return AccessDeniedError(f"access denied: AWS refused {operation} on {subject}; the credentials lack that permission")
    if code in {"StateMachineDoesNotExist", "ExecutionDoesNotExist", "StateMachineVersionDoesNotExist"}:
        return StateMachineNotFoundError(f"{subject} does not exist ({code})")
    if code == "InvalidArn":
        return MalformedArnError(f"malformed ARN {subject}: {one_line(message)}")
    if code == "ResourceNotFoundException" and "log group" in message.lower():
        return LogGroupNotFoundError(f"{subject} does not exist")
    return AwsRequestError(f"AWS {operation} on {subject} failed: {code}: {one_line(message)}")


class _AwsCalls:
    """Shared helpers: paginated calls with errors translated."""

    def _pages(self, client: Any, operation: str, subject: str, **kwargs: Any) -> Iterator[Mapping[str, Any]]:
        try:
            yield from client.get_paginator(operation).paginate(**kwargs)
        except Exception as error:
            translated = translate_aws_error(error, subject)
            if translated is error:
                raise
            raise translated from error

    def _call(self, client: Any, operation: str, subject: str, **kwargs: Any) -> Mapping[str, Any]:
        try:
            return getattr(client, operation)(**kwargs)
        except Exception as error:
            translated = translate_aws_error(error, subject)
            if translated is error:
                raise
            raise translated from error


class HistorySource(_AwsCalls):
    """Standard workflows through the execution history API."""

    name = "history"

    def __init__(self, session: Any, selection: Selection):
        self.client = aws_client(session, "stepfunctions")
        self.region = session.region_name
        self.selection = selection
        self._definitions: dict[str, str] = {}

    def state_machines(self) -> list[str]:
        if self.selection.state_machine_arns:
            return list(self.selection.state_machine_arns)
        arns = [
            machine["stateMachineArn"]
            for page in self._pages(self.client, "list_state_machines", f"region {self.region}")
            for machine in page.get("stateMachines", [])
        ]
        if not arns:
            raise NoStateMachinesError(f"no state machines in region {self.region}")
        return arns

    def list_executions(self) -> list[ExecutionRef]:
        if self.selection.execution_arn:
            arn = self.selection.execution_arn
            described = self._call(self.client, "describe_execution", f"execution {arn}", executionArn=arn)
            return [ExecutionRef(arn, described["stateMachineArn"], described.get("status"))]
        refs: list[ExecutionRef] = []
        for machine in self.state_machines():
            for page in self._pages(self.client, "list_executions", f"state machine {machine}", stateMachineArn=machine):
                for item in page.get("executions", []):
                    if self.selection.since_ms is not None and to_millis(item["startDate"]) < self.selection.since_ms:
                        continue
                    refs.append(ExecutionRef(item["executionArn"], item["stateMachineArn"], item.get("status")))
        return refs

    def definition(self, arn: str) -> str:
        if arn not in self._definitions:
            described = self._call(self.client, "describe_state_machine", f"state machine {arn}", stateMachineArn=arn)
            self._definitions[arn] = check_definition(described["definition"], arn)
        return self._definitions[arn]

    def load(self, ref: ExecutionRef) -> Execution:
        arn = ref.execution_arn
        described = self._call(self.client, "describe_execution", f"execution {arn}", executionArn=arn)
        version_arn = described.get("stateMachineVersionArn")
        definition = self.definition(version_arn or described["stateMachineArn"])
        raw_events = [
            event
            for page in self._pages(self.client, "get_execution_history", f"execution {arn}", executionArn=arn)
            for event in page.get("events", [])
        ]
        events, held = release_in_order(history_event(raw) for raw in raw_events)
        role_arn = next(
            (e.details.get("roleArn") for e in events if e.type == "ExecutionStarted" and e.details.get("roleArn")), None
        )
        return Execution(
            execution_arn=arn,
            state_machine_arn=described["stateMachineArn"],
            name=str(described.get("name") or execution_name(arn)),
            start_date_ms=to_millis(described["startDate"]),
            definition=definition,
            input=described.get("input"),
            events=tuple(events),
            held_events=held,
            state_machine_version_arn=version_arn,
            role_arn=role_arn,
        )


class LogsSource(_AwsCalls):
    """Express (or Standard) workflows through their CloudWatch Logs log group at level ALL."""

    name = "logs"

    def __init__(self, session: Any, selection: Selection, log_group: str | None = None):
        self.sfn = aws_client(session, "stepfunctions")
        self.logs = aws_client(session, "logs")
        self.region = session.region_name
        self.selection = selection
        self.log_group = log_group
        self._definitions: dict[str, str] = {}
        self._messages: dict[str, list[HistoryEvent]] = {}

    def _describe(self, arn: str) -> Mapping[str, Any]:
        return self._call(self.sfn, "describe_state_machine", f"state machine {arn}", stateMachineArn=arn)

    def definition(self, arn: str) -> str:
        if arn not in self._definitions:
            self._definitions[arn] = check_definition(self._describe(arn)["definition"], arn)
        return self._definitions[arn]

    def log_groups(self) -> list[str]:
        if self.log_group:
            return [self.log_group]
        machines = list(self.selection.state_machine_arns)
        if self.selection.execution_arn:
            machines.append(state_machine_of(self.selection.execution_arn))
        if not machines:
            raise ConfigurationError("the logs source needs --log-group or a state machine ARN to find its log group")
        groups: list[str] = []
        for machine in machines:
            destinations = self._describe(machine).get("loggingConfiguration", {}).get("destinations", [])
            found = [d["cloudWatchLogsLogGroup"]["logGroupArn"] for d in destinations if d.get("cloudWatchLogsLogGroup")]
            if not found:
                raise ConfigurationError(f"state machine {machine} logs to no CloudWatch Logs group: pass --log-group")
            for group_arn in found:
                name = group_arn.split(":log-group:", 1)[-1].removesuffix(":*")
                if name not in groups:
                    groups.append(name)
        return groups

    def _wanted(self, execution_arn: str) -> bool:
        if self.selection.execution_arn:
            return execution_arn == self.selection.execution_arn
        if self.selection.state_machine_arns:
            return state_machine_of(execution_arn) in self.selection.state_machine_arns
        return True

    def list_executions(self) -> list[ExecutionRef]:
        self._messages = {}
        for group in self.log_groups():
            kwargs: dict[str, Any] = {"logGroupName": group}
            if self.selection.since_ms is not None:
                kwargs["startTime"] = self.selection.since_ms
            for page in self._pages(self.logs, "filter_log_events", f"log group {group}", **kwargs):
                for item in page.get("events", []):
                    where = f"log group {group}, stream {item.get('logStreamName')}, event {item.get('eventId')}"
                    message = parse_log_message(item.get("message", ""), where)
                    if self._wanted(message.execution_arn):
                        self._messages.setdefault(message.execution_arn, []).append(message.event)
        return [ExecutionRef(arn, state_machine_of(arn)) for arn in sorted(self._messages)]

    def load(self, ref: ExecutionRef) -> Execution:
        events, held = release_in_order(sorted(self._messages.get(ref.execution_arn, []), key=lambda e: e.id))
        started = events[0] if events and events[0].type == "ExecutionStarted" else None
        definition = self.definition(ref.state_machine_arn)
        return Execution(
            execution_arn=ref.execution_arn,
            state_machine_arn=ref.state_machine_arn,
            name=execution_name(ref.execution_arn),
            start_date_ms=started.timestamp_ms if started else 0,
            definition=definition,
            input=started.details.get("input") if started else None,
            events=tuple(events) if started else (),
            held_events=held + (len(events) if not started else 0),
            role_arn=started.details.get("roleArn") if started else None,
        )
