"""Step Functions behaviour that moto lacks, added to moto for tests and the demo.

moto (5.2) really runs state machines, but answers some calls in shapes older than today's API
or not at all. Each addition below imitates what the Step Functions API reference says AWS does,
and is installed with `install()` (in-process, for tests) or by running this module as the moto
server (`python -m tracker.dev.sfn_emulation -H HOST -p PORT`, for the demo):

* ListStateMachineVersions: the machine's published versions, newest first (moto: not implemented).
* An execution of a version ARN is an execution of the machine: ListExecutions of the machine
  lists it and DescribeExecution names the unqualified machine ARN plus `stateMachineVersionArn`
  (moto keeps it on the version and cannot describe it afterwards).
* StartExecution of an alias ARN (moto: StateMachineDoesNotExist) starts one of the alias's
  versions, chosen by its routing weights, and DescribeExecution and ListExecutions report both
  `stateMachineAliasArn` and `stateMachineVersionArn`.
* DescribeStateMachineForExecution answers with the definition the execution started on, not the
  machine's current one (moto: the current one), as AWS does with the execution's `revisionId`.
* DescribeExecution and ListExecutions report `redriveCount`, and DescribeExecution
  `redriveStatus` and `redriveDate` (moto: none of them).
* RedriveExecution (moto: not implemented): a FAILED, ABORTED or TIMED_OUT Standard execution
  whose end is at most 14 days old restarts from its unsuccessful state with that state's input;
  the same execution ARN continues its history with `ExecutionRedriven` (redriveCount in its
  details) and the events of the new attempt, ids continuing; its status, stop date and output
  become the new attempt's. Anything else is refused with `ExecutionNotRedrivable`, as AWS does.
  Where the failure happened inside a Map or Parallel state, the whole Map or Parallel state is
  run again (AWS re-runs only its unsuccessful iterations or branches): the trace is the same
  kind of continuation, with more states.
"""

from __future__ import annotations

import copy
import datetime
import json
import sys
import threading
from typing import Any

_INSTALLED = False
REDRIVABLE = frozenset({"FAILED", "ABORTED", "TIMED_OUT"})
REDRIVE_WINDOW = datetime.timedelta(days=14)


def _versions_of(backend: Any, arn: str) -> list[Any]:
    machine = backend.describe_state_machine(arn)
    return sorted(getattr(machine, "versions", {}).values(), key=lambda version: version.version, reverse=True)


def install() -> None:
    """Adds the behaviour above to moto's Step Functions backends and responses (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from moto.stepfunctions import responses
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original_start = StepFunctionsParserBackend.start_execution
    swapping = threading.Lock()

    def start_execution(self: Any, state_machine_arn: str, *args: Any, **kwargs: Any) -> Any:
        alias_arn = None
        if _is_alias(state_machine_arn):
            # AWS starts one of the alias's versions, chosen by the routing weights.
            alias = self.describe_state_machine_alias(state_machine_arn)
            alias_arn, state_machine_arn = alias.arn, _routed_version(alias.routing_configuration)
        target = self.describe_state_machine(state_machine_arn)
        source_arn = getattr(target, "source_arn", None)
        execution: Any
        if source_arn is None:
            execution = original_start(self, state_machine_arn, *args, **kwargs)
            execution.emulated_version_arn = None
        else:
            # AWS runs the version's definition as an execution of the machine: run the machine
            # with the version's definition in place (moto snapshots it at the start).
            source = next(machine for machine in self.state_machines if machine.arn == source_arn)
            with swapping:
                current = source.definition
                source.definition = target.definition
                try:
                    execution = original_start(self, source_arn, *args, **kwargs)
                finally:
                    source.definition = current
            execution.emulated_version_arn = target.arn
        execution.emulated_definition = target.definition
        execution.emulated_alias_arn = alias_arn
        return execution

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]

    response_class = responses.StepFunctionResponse
    original_describe_execution = response_class.describe_execution
    original_list_executions = response_class.list_executions
    original_for_execution = response_class.describe_state_machine_for_execution

    def describe_execution(self: Any) -> Any:
        result = original_describe_execution(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        body = _body(result)
        version_arn = getattr(execution, "emulated_version_arn", None)
        if version_arn:
            body["stateMachineVersionArn"] = version_arn
            body["stateMachineArn"] = version_arn.rsplit(":", 1)[0]
        if getattr(execution, "emulated_alias_arn", None):
            body["stateMachineAliasArn"] = execution.emulated_alias_arn
        attempts = _attempts(execution)
        current = _current(execution)
        if attempts:
            body["status"] = _status(execution)
            body["redriveDate"] = current.start_date
            for key, value in (("stopDate", current.stop_date), ("error", current.error), ("cause", current.cause)):
                if value is not None:
                    body[key] = value
                else:
                    body.pop(key, None)
            if body["status"] == "SUCCEEDED" and current.output is not None:
                body["output"] = json.dumps(current.output, separators=(",", ":"))
        body["redriveCount"] = len(attempts)
        window_open = current.stop_date is None or (
            datetime.datetime.now(tz=datetime.timezone.utc) - current.stop_date <= REDRIVE_WINDOW
        )
        redrivable = body.get("status") in REDRIVABLE and window_open
        body["redriveStatus"] = "REDRIVABLE" if redrivable else "NOT_REDRIVABLE"
        return _with_body(result, body)

    def list_executions(self: Any) -> Any:
        result = original_list_executions(self)
        body = _body(result)
        backend = self.stepfunction_backend
        for item in body.get("executions", []):
            execution = backend.describe_execution(item["executionArn"])
            item["redriveCount"] = len(_attempts(execution))
            if _attempts(execution):
                item["status"] = _status(execution)
                item["redriveDate"] = _current(execution).start_date
            if getattr(execution, "emulated_version_arn", None):
                item["stateMachineVersionArn"] = execution.emulated_version_arn
            if getattr(execution, "emulated_alias_arn", None):
                item["stateMachineAliasArn"] = execution.emulated_alias_arn
        return _with_body(result, body)

    def describe_state_machine_for_execution(self: Any) -> Any:
        result = original_for_execution(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        definition = getattr(execution, "emulated_definition", None)
        if definition is None:
            return result
        body = _body(result)
        body["definition"] = definition
        return _with_body(result, body)

    def list_state_machine_versions(self: Any) -> Any:
        arn = self._get_param("stateMachineArn")
        versions = _versions_of(self.stepfunction_backend, arn)
        listed = [{"stateMachineVersionArn": v.arn, "creationDate": v.creation_date} for v in versions]
        return _result({"stateMachineVersions": listed})

    original_history = response_class.get_execution_history

    def get_execution_history(self: Any) -> Any:
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        if not _attempts(execution):
            return original_history(self)
        return _result({"events": _history(execution)})

    def redrive_execution(self: Any) -> Any:
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        return _result({"redriveDate": _redrive(execution)})

    response_class.get_execution_history = get_execution_history  # type: ignore[method-assign]
    response_class.redrive_execution = redrive_execution  # type: ignore[attr-defined]
    response_class.describe_execution = describe_execution  # type: ignore[method-assign]
    response_class.list_executions = list_executions  # type: ignore[method-assign]
    response_class.describe_state_machine_for_execution = describe_state_machine_for_execution  # type: ignore[method-assign]
    response_class.list_state_machine_versions = list_state_machine_versions  # type: ignore[attr-defined]
    _INSTALLED = True


def _is_alias(arn: str) -> bool:
    """An alias ARN (stateMachine:NAME:ALIAS) rather than a version's (stateMachine:NAME:7)."""
    parts = arn.split(":")
    return len(parts) == 8 and parts[5] == "stateMachine" and not parts[7].isdigit()


def _routed_version(routing: list[dict[str, Any]]) -> str:
    import random

    versions = [entry["stateMachineVersionArn"] for entry in routing]
    weights = [int(entry.get("weight", 0)) for entry in routing]
    return random.choices(versions, weights=weights)[0] if sum(weights) else versions[0]


def _attempts(execution: Any) -> list[Any]:
    """The redriven attempts of an execution (hidden executions of its definition), oldest first."""
    return getattr(execution, "emulated_attempts", [])


def _current(execution: Any) -> Any:
    """The attempt whose status the execution shows: its last redrive, else itself."""
    attempts = _attempts(execution)
    return attempts[-1] if attempts else execution


def _status(execution: Any) -> str:
    status = _current(execution).exec_status
    return str(getattr(status, "value", status))


def _history(execution: Any) -> list[dict[str, Any]]:
    """The whole history: the first run's events, then for each redrive `ExecutionRedriven` and the
    new attempt's events (without its own ExecutionStarted), ids continuing."""
    events = [dict(event) for event in execution.to_history_output()["events"]]
    for number, attempt in enumerate(_attempts(execution), start=1):
        redriven_id = len(events) + 1
        redriven = {
            "timestamp": attempt.start_date,
            "type": "ExecutionRedriven",
            "id": redriven_id,
            "previousEventId": len(events),
            "executionRedrivenEventDetails": {"redriveCount": number},
        }
        events.append(redriven)
        own = [dict(event) for event in attempt.to_history_output()["events"]][1:]
        offset = redriven_id - 1
        for event in own:
            previous = int(event.get("previousEventId", 0))
            event["id"] = int(event["id"]) + offset
            event["previousEventId"] = redriven_id if previous <= 1 else previous + offset
            events.append(event)
    return events


def _restart_point(execution: Any, events: list[dict[str, Any]]) -> tuple[str, Any]:
    """The top-level state the last attempt failed in, and the input it entered with."""
    definition = json.loads(_current(execution).state_machine.definition)
    top_level = set(definition.get("States", {}))
    exited = {event["previousEventId"] for event in events if event["type"].endswith("StateExited")}
    for event in reversed(events):
        details = event.get("stateEnteredEventDetails")
        entered = event["type"].endswith("StateEntered") and details and details.get("name") in top_level
        if entered and event["id"] not in exited:
            return details["name"], json.loads(details.get("input") or "{}")
    raise ValueError("no unsuccessful state to restart from")


def _redrive(execution: Any) -> Any:
    from moto.stepfunctions.parser.backend.execution import Execution as ParserExecution

    now = datetime.datetime.now(tz=datetime.timezone.utc)
    current = _current(execution)
    status = _status(execution)
    if status not in REDRIVABLE:
        raise _not_redrivable(f"Execution is {status} and cannot be redriven")
    if current.stop_date is not None and now - current.stop_date > REDRIVE_WINDOW:
        raise _not_redrivable("Execution can no longer be redriven: it ended more than 14 days ago")
    name, entered_input = _restart_point(execution, _history(execution))
    machine = current.state_machine
    restarted = copy.deepcopy(machine, {id(machine.executions): [], id(machine.backend): machine.backend})
    definition = json.loads(machine.definition)
    restarted.definition = json.dumps({**definition, "StartAt": name})
    attempt = ParserExecution(
        name=execution.name,
        sm_type=execution.sm_type,
        role_arn=execution.role_arn,
        exec_arn=execution.exec_arn,
        account_id=execution.account_id,
        region_name=execution.region_name,
        state_machine=restarted,
        start_date=now,
        cloud_watch_logging_session=None,
        input_data=json.dumps(entered_input),
        trace_header=None,
        activity_store={},
    )
    execution.emulated_attempts = [*_attempts(execution), attempt]
    attempt.start()
    return now


def _not_redrivable(message: str) -> Exception:
    """moto's form of AWS's `ExecutionNotRedrivable` error (HTTP 400)."""
    from moto.stepfunctions.exceptions import AWSError

    class ExecutionNotRedrivable(AWSError):
        TYPE = "ExecutionNotRedrivable"
        STATUS = 400

    return ExecutionNotRedrivable(message)


def _body(result: Any) -> dict[str, Any]:
    """The response body of a moto action result, whichever form this moto version returns."""
    if hasattr(result, "result"):
        return dict(result.result)
    if isinstance(result, str):
        return json.loads(result)
    raise TypeError(f"unexpected moto response {type(result).__name__}")


def _with_body(result: Any, body: dict[str, Any]) -> Any:
    if hasattr(result, "result"):
        return _result(body)
    return json.dumps(body, default=str)


def _result(body: dict[str, Any]) -> Any:
    from moto.core.responses import ActionResult

    return ActionResult(body)


def main(argv: list[str]) -> None:
    """Runs the moto server with the additions installed (same arguments as `moto.server`)."""
    install()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
