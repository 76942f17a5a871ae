"""Step Functions behaviour that moto lacks, added to moto for tests and the demo.

moto (5.2) really runs state machines, but answers some calls in shapes older than today's API
or not at all. Each addition below imitates what the Step Functions API reference says AWS does,
and is installed with `install()` (in-process, for tests) or by running this module as the moto
server (`python -m tracker.dev.sfn_emulation -H HOST -p PORT`, for the demo):

* ListStateMachineVersions: the machine's published versions, newest first (moto: not implemented).
* An execution of a version ARN is an execution of the machine: ListExecutions of the machine
  lists it and DescribeExecution names the unqualified machine ARN plus `stateMachineVersionArn`
  (moto keeps it on the version and cannot describe it afterwards).
* DescribeStateMachineForExecution answers with the definition the execution started on, not the
  machine's current one (moto: the current one), as AWS does with the execution's `revisionId`.
* DescribeExecution and ListExecutions report `redriveCount`, and DescribeExecution
  `redriveStatus` (REDRIVABLE for a FAILED, ABORTED or TIMED_OUT execution, NOT_REDRIVABLE
  otherwise) (moto: neither).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

_INSTALLED = False
REDRIVABLE = frozenset({"FAILED", "ABORTED", "TIMED_OUT"})


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
        execution.emulated_redrive_count = getattr(execution, "emulated_redrive_count", 0)
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
        body["redriveCount"] = getattr(execution, "emulated_redrive_count", 0)
        body["redriveStatus"] = "REDRIVABLE" if body.get("status") in REDRIVABLE else "NOT_REDRIVABLE"
        return _with_body(result, body)

    def list_executions(self: Any) -> Any:
        result = original_list_executions(self)
        body = _body(result)
        backend = self.stepfunction_backend
        for item in body.get("executions", []):
            execution = backend.describe_execution(item["executionArn"])
            item["redriveCount"] = getattr(execution, "emulated_redrive_count", 0)
            if getattr(execution, "emulated_version_arn", None):
                item["stateMachineVersionArn"] = execution.emulated_version_arn
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

    response_class.describe_execution = describe_execution  # type: ignore[method-assign]
    response_class.list_executions = list_executions  # type: ignore[method-assign]
    response_class.describe_state_machine_for_execution = describe_state_machine_for_execution  # type: ignore[method-assign]
    response_class.list_state_machine_versions = list_state_machine_versions  # type: ignore[attr-defined]
    _INSTALLED = True


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
