"""Standard workflows through the execution history API (ListStateMachines, ListExecutions, DescribeExecution, GetExecutionHistory, all paginated)."""

from __future__ import annotations

from typing import Any

from tracker.aws.arns import execution_name
from tracker.aws.errors import NoStateMachinesError
from tracker.aws.events import history_event, release_in_order
from tracker.aws.executions import Execution, ExecutionRef, Selection, check_definition
from tracker.aws.session import AwsService
from tracker.documents.ids import to_millis
from tracker.retry import RetryPolicy


class HistorySource:
    """Standard workflows through the execution history API."""

    name = "history"

    def __init__(self, session: Any, selection: Selection, policy: RetryPolicy | None = None):
        self.session = session  # for the task reader (tracker.aws.tasks)
        self.sfn = AwsService(session, "stepfunctions", policy)
        self.region = session.region_name
        self.selection = selection
        self.session, self.policy = session, policy
        self._definitions: dict[str, str] = {}
        self._logs: dict[str, Any] = {}
        self._map_run_of: dict[str, str] = {}  # Standard Map Run children: execution ARN -> Map Run

    def state_machines(self) -> list[str]:
        if self.selection.state_machine_arns:
            return list(self.selection.state_machine_arns)
        arns = [
            machine["stateMachineArn"]
            for page in self.sfn.pages("list_state_machines", f"region {self.region}")
            for machine in page.get("stateMachines", [])
        ]
        if not arns:
            raise NoStateMachinesError(f"no state machines in region {self.region}")
        return arns

    def list_executions(self) -> list[ExecutionRef]:
        if self.selection.execution_arn:
            arn = self.selection.execution_arn
            described = self.sfn.call("describe_execution", f"execution {arn}", executionArn=arn)
            return [ExecutionRef(arn, described["stateMachineArn"], described.get("status"))]
        refs: list[ExecutionRef] = []
        for machine in self.state_machines():
            for page in self.sfn.pages("list_executions", f"state machine {machine}", stateMachineArn=machine):
                for item in page.get("executions", []):
                    if self.selection.since_ms is not None and to_millis(item["startDate"]) < self.selection.since_ms:
                        continue
                    refs.append(
                        ExecutionRef(
                            item["executionArn"], item["stateMachineArn"], item.get("status"), item.get("redriveCount")
                        )
                    )
        return refs

    def definition(self, arn: str) -> str:
        """The definition of a state machine (or of one of its versions, which never change)."""
        if arn not in self._definitions:
            described = self.sfn.call("describe_state_machine", f"state machine {arn}", stateMachineArn=arn)
            self._definitions[arn] = check_definition(described["definition"], arn)
        return self._definitions[arn]

    def definition_run_by(self, execution_arn: str, version_arn: str | None) -> str:
        # Every child of one Map Run runs the same child workflow (the parent's definition, fixed
        # when the parent started): it is asked for once per Map Run.
        map_run = self._map_run_of.get(execution_arn)
        if map_run is not None and map_run in self._definitions:
            return self._definitions[map_run]
        definition = self._definition_run_by(execution_arn, version_arn)
        if map_run is not None:
            self._definitions[map_run] = definition
        return definition

    def _definition_run_by(self, execution_arn: str, version_arn: str | None) -> str:
        """The definition the execution ran: its version's when it ran a published version, else the
        revision DescribeStateMachineForExecution reports for it (never the machine's current one,
        which an update may have changed since the execution started)."""
        if version_arn:
            return self.definition(version_arn)
        described = self.sfn.call(
            "describe_state_machine_for_execution", f"execution {execution_arn}", executionArn=execution_arn
        )
        return check_definition(described["definition"], described.get("stateMachineArn", execution_arn))

    def map_run_children(self, map_run_arn: str) -> tuple[list[ExecutionRef], int]:
        """A Map Run's child executions and how many it started (DescribeMapRun's count): Standard
        children through ListExecutions with `mapRunArn`, Express ones from the parent machine's
        CloudWatch Logs group (Express executions are never listed)."""
        run = self.sfn.call("describe_map_run", f"Map Run {map_run_arn}", mapRunArn=map_run_arn)
        total = int((run.get("executionCounts") or {}).get("total", 0))
        workflow = map_run_arn.replace(":mapRun:", ":stateMachine:").rsplit(":", 1)[0]
        described = self.sfn.call("describe_state_machine", f"state machine {workflow}", stateMachineArn=workflow)
        if described.get("type") != "EXPRESS":
            refs = [
                ExecutionRef(
                    item["executionArn"],
                    workflow,
                    item.get("status"),
                    item.get("redriveCount"),
                    to_millis(item["startDate"]) if item.get("startDate") is not None else None,
                )
                for page in self.sfn.pages("list_executions", f"Map Run {map_run_arn}", mapRunArn=map_run_arn)
                for item in page.get("executions", [])
            ]
            self._map_run_of.update((ref.execution_arn, map_run_arn) for ref in refs)
            return refs, total
        logs = self._logs_of(workflow.split("/", 1)[0])
        prefix = workflow.replace(":stateMachine:", ":express:") + ":" + map_run_arn.rsplit(":", 1)[1] + ":"
        return [ref for ref in logs.list_executions() if ref.execution_arn.startswith(prefix)], total

    def _logs_of(self, machine_arn: str) -> Any:
        from tracker.aws.logs import LogsSource

        if machine_arn not in self._logs:
            self._logs[machine_arn] = LogsSource(
                self.session, Selection((machine_arn,)), policy=self.policy, map_run_children=True
            )
        return self._logs[machine_arn]

    def load_child(self, ref: ExecutionRef) -> Execution:
        """A child execution: Express ones from the logs read by `map_run_children`."""
        if ":express:" in ref.execution_arn:
            machine = ref.state_machine_arn.split("/", 1)[0]
            return self._logs_of(machine).load(ref)
        return self.load(ref)

    def load(self, ref: ExecutionRef) -> Execution:
        arn = ref.execution_arn
        described = self.sfn.call("describe_execution", f"execution {arn}", executionArn=arn)
        version_arn = described.get("stateMachineVersionArn")
        definition = self.definition_run_by(arn, version_arn)
        raw_events = [
            event
            for page in self.sfn.pages("get_execution_history", f"execution {arn}", executionArn=arn)
            for event in page.get("events", [])
        ]
        events, held = release_in_order(history_event(raw) for raw in raw_events)
        role_arn = next(
            (e.details.get("roleArn") for e in events if e.type == "ExecutionStarted" and e.details.get("roleArn")),
            None,
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
            state_machine_alias_arn=described.get("stateMachineAliasArn"),
            role_arn=role_arn,
            redrive_status=described.get("redriveStatus"),
            redrive_count=int(described.get("redriveCount") or 0),
        )
