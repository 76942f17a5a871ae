"""Express (or Standard) workflows through their CloudWatch Logs log group at level ALL.

Each message is AWS's documented JSON (`id`, `previous_event_id`, `type`, `details`,
`event_timestamp`, `execution_arn`), read with FilterLogEvents; an event is held until its
predecessor (and every earlier event) arrived, so both sources yield the same ordered events for
the same execution."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracker.aws.arns import execution_name, state_machine_of
from tracker.aws.events import HistoryEvent, parse_log_message, release_in_order
from tracker.aws.executions import Execution, ExecutionRef, Selection, check_definition
from tracker.aws.session import AwsService
from tracker.errors import ConfigurationError
from tracker.retry import RetryPolicy


class LogsSource:
    """Express (or Standard) workflows through their CloudWatch Logs log group at level ALL."""

    name = "logs"

    def __init__(
        self,
        session: Any,
        selection: Selection,
        log_group: str | None = None,
        policy: RetryPolicy | None = None,
        map_run_children: bool = False,
    ):
        self.session = session  # for the task reader (tracker.aws.tasks)
        self.sfn = AwsService(session, "stepfunctions", policy)
        self.logs = AwsService(session, "logs", policy)
        self.region = session.region_name
        self.selection = selection
        self.log_group = log_group
        self.map_run_children = map_run_children  # only the selected machines' Map Run children
        self._definitions: dict[str, str] = {}
        self._messages: dict[str, list[HistoryEvent]] = {}

    def _describe(self, arn: str) -> Mapping[str, Any]:
        return self.sfn.call("describe_state_machine", f"state machine {arn}", stateMachineArn=arn)

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
            found = [
                d["cloudWatchLogsLogGroup"]["logGroupArn"] for d in destinations if d.get("cloudWatchLogsLogGroup")
            ]
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
            machine = state_machine_of(execution_arn)
            if self.map_run_children:  # a Map Run's Express children log to their parent machine's group
                return "/" in machine and machine.split("/", 1)[0] in self.selection.state_machine_arns
            return machine in self.selection.state_machine_arns
        return True

    def list_executions(self) -> list[ExecutionRef]:
        self._messages = {}
        for group in self.log_groups():
            kwargs: dict[str, Any] = {"logGroupName": group}
            if self.selection.since_ms is not None:
                kwargs["startTime"] = self.selection.since_ms
            for page in self.logs.pages("filter_log_events", f"log group {group}", **kwargs):
                for item in page.get("events", []):
                    where = f"log group {group}, stream {item.get('logStreamName')}, event {item.get('eventId')}"
                    message = parse_log_message(item.get("message", ""), where)
                    if self._wanted(message.execution_arn):
                        self._messages.setdefault(message.execution_arn, []).append(message.event)
        return [
            ExecutionRef(arn, state_machine_of(arn), start_date_ms=self._started_ms(arn))
            for arn in sorted(self._messages)
        ]

    def _started_ms(self, execution_arn: str) -> int | None:
        """When the execution started, if its `ExecutionStarted` message arrived."""
        started = [e.timestamp_ms for e in self._messages[execution_arn] if e.type == "ExecutionStarted"]
        return min(started) if started else None

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
            # Express executions are never redriven on their own (only through a parent's Map Run,
            # which this source does not see): an unsuccessful end is final.
            redrive_status="NOT_REDRIVABLE",
        )
