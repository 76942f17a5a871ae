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
* Distributed Map (moto runs its items inside the parent and keeps no child executions): each
  item runs as a child execution of the Map state's child workflow (its ItemProcessor, under the
  labelled ARN `stateMachine:NAME/LABEL`, of the ProcessorConfig's ExecutionType). Standard
  children are named `execution:NAME/LABEL:UUID`; ListExecutions with `mapRunArn` (never with a
  `stateMachineArn` as well) lists them, DescribeExecution names their `mapRunArn` (a failed one is
  `REDRIVABLE_BY_MAP_RUN`), GetExecutionHistory and DescribeStateMachineForExecution answer for
  them. Express children (`express:NAME/LABEL:MAPRUNID:UUID`; the Map Run id in the name is this
  emulation's choice, so a tracker can tell the runs of one label apart) are not listed and keep
  no history: their events go to the parent machine's CloudWatch Logs group at level ALL.
  DescribeStateMachine of the labelled ARN answers with the child workflow and its `label`.
  ListMapRuns and DescribeMapRun are moto's, with the counts the children make.
* `states:startExecution` tasks (`.sync`, `.sync:2`, `.waitForTaskToken`) start their child
  (moto fails them: it hands botocore ASL's parameter casing).
* DescribeStateMachineForExecution answers with the definition the execution started on, not the
  machine's current one (moto: the current one), as AWS does with the execution's `revisionId`.
* DescribeExecution and ListExecutions report `redriveCount`, and DescribeExecution
  `redriveStatus` and `redriveDate` (moto: none of them).
* DescribeExecution's `output` is JSON text also when the result is a string (`"hi"`; moto: the
  bare `hi`, which a `states:startExecution.sync:2` task then fails to parse as JSON).
* A Map Run whose failed children exceed its tolerated failures (ToleratedFailureCount and
  ToleratedFailurePercentage, both 0 when not given) fails with
  `States.ExceedToleratedFailureThreshold`, failing its Map state (moto: the Map Run succeeds
  with null results). With both given, this emulation fails the run only when both are exceeded
  (AWS: either).
* DescribeMapRun and ListMapRuns also know the Map Runs of a redriven attempt.
* RedriveExecution (moto: not implemented): a FAILED, ABORTED or TIMED_OUT Standard execution
  whose end is at most 14 days old restarts from its unsuccessful state with that state's input;
  the same execution ARN continues its history with `ExecutionRedriven` (redriveCount in its
  details) and the events of the new attempt, ids continuing; its status, stop date and output
  become the new attempt's. Anything else is refused with `ExecutionNotRedrivable`, as AWS does.
  Where the failure happened inside an inline Map or a Parallel state, the whole state is run
  again (AWS re-runs only its unsuccessful iterations or branches): the trace is the same kind of
  continuation, with more states.
* A Distributed Map redriven with its parent ("Redriving Map Runs"): as on AWS, the redriven
  attempt enters the Map state again, which redrives the SAME Map Run: `MapRunRedriven` (its
  `mapRunArn` and `redriveCount`) takes the place of `MapRunStarted`, DescribeMapRun reports
  `redriveCount` and `redriveDate`, and ListMapRuns still lists one Map Run. Only the unsuccessful
  items run again: a Standard child is redriven under its own ARN (its history continues after
  `ExecutionRedriven`, DescribeExecution reports its `redriveCount`), an Express child is started
  again as a new execution (StartExecution, a new ARN); an item that succeeded keeps its result.

Two controls exist only in this emulation (actions Step Functions does not have, so no request to
AWS can reach them), sent with `emulation_request()`:

* `EmulationAdvanceClock` (`executionArn`, `seconds`): moves the emulation's clock for one
  execution forward, so that a test can let the 14-day redrive window pass without waiting 14
  days or rewriting the stop date AWS reported. RedriveExecution and DescribeExecution's
  `redriveStatus` read that clock: once the end is more than 14 days behind it, the redrive is
  refused with `ExecutionNotRedrivable` and the status is `NOT_REDRIVABLE`, as AWS does.
* `EmulationRecordExecution` (`execution`: DescribeExecution's answer, `definition`, `events`:
  GetExecutionHistory's): holds an execution recorded from AWS, for what moto cannot run (it has
  no JSONata runtime). The recording is replayed as if it started when it was recorded into the
  emulation (every date moved by the same amount, so the redrive window runs from then):
  DescribeExecution, GetExecutionHistory and DescribeStateMachineForExecution answer it, and
  ListExecutions of its state machine lists it.

Lambda and ECS as Step Functions' task integrations see them (`install()` adds these too):

* Invoke answers with the `X-Amz-Executed-Version` header, the version the qualifier resolved to
  (a number, an alias's version, or `$LATEST`), as the Lambda API reference documents for Invoke
  (moto: no header, so `ExecutedVersion` was missing from a `lambda:invoke` task's output). With
  moto's simple Lambda backend (`{"lambda": {"use_docker": False}}`, which `install()` makes the
  default) an invocation returns its payload without running code or Docker.
* RunTask starts one container per container definition of the task definition, each described
  with the image it was given and an `imageDigest` (moto: only the first container, no digest).
  AWS resolves the image's tag to its registry digest when the task starts; the emulation has no
  registry, so the digest stands in as `sha256:` + SHA-256 of the image reference, which is stable
  for one image and differs between images, all a test of the recorded identity needs.
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


# Seconds the emulation's clock is ahead of real time, per execution ARN (`EmulationAdvanceClock`).
_CLOCK_OFFSETS: dict[str, float] = {}
# Executions recorded from AWS, by execution ARN (`EmulationRecordExecution`).
_RECORDED: dict[str, dict[str, Any]] = {}


def _now(execution_arn: str) -> datetime.datetime:
    """The emulation's time for one execution: real time plus what a test advanced its clock by."""
    offset = datetime.timedelta(seconds=_CLOCK_OFFSETS.get(execution_arn, 0.0))
    return datetime.datetime.now(tz=datetime.timezone.utc) + offset


def _redrive_status(status: str, stop_date: datetime.datetime | None, execution_arn: str) -> str:
    window_open = stop_date is None or _now(execution_arn) - stop_date <= REDRIVE_WINDOW
    return "REDRIVABLE" if status in REDRIVABLE and window_open else "NOT_REDRIVABLE"


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

    def describe_map_run(self: Any, map_run_arn: str) -> dict[str, Any]:
        from moto.stepfunctions.parser.api import ResourceNotFound

        for execution in self._get_executions():
            for record in _map_run_records(execution):
                if record.map_run_arn == map_run_arn:
                    described = record.describe()
                    if getattr(record, "emulated_redrive_count", 0):
                        described["redriveCount"] = record.emulated_redrive_count
                        described["redriveDate"] = record.emulated_redrive_date
                    return described
        raise ResourceNotFound(f"Map Run {map_run_arn} does not exist")

    def list_map_runs(self: Any, execution_arn: str) -> dict[str, Any]:
        execution = self.describe_execution(execution_arn=execution_arn)
        return {"mapRuns": [record.list_item() for record in _map_run_records(execution)]}

    StepFunctionsParserBackend.describe_map_run = describe_map_run  # type: ignore[method-assign]
    StepFunctionsParserBackend.list_map_runs = list_map_runs  # type: ignore[method-assign]
    _install_task_integrations()
    _install_map_run_children()
    _install_nested_start()
    _install_express_children()

    response_class = responses.StepFunctionResponse
    original_describe_execution = response_class.describe_execution
    original_list_executions = response_class.list_executions
    original_for_execution = response_class.describe_state_machine_for_execution

    def describe_execution(self: Any) -> Any:
        recorded = _RECORDED.get(self._get_param("executionArn"))
        if recorded is not None:
            return _json(_describe_recorded(recorded))
        child = _MAP_RUN_CHILDREN.get(self._get_param("executionArn"))
        if child is not None and child.sm_type != "EXPRESS":
            return _result(_describe_child(child))
        described = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        if described.output is not None and not isinstance(described.output, str):
            # a `.sync` task's result holds the child's dates, which moto's encoder cannot write;
            # AWS writes them as the API does, epoch seconds
            described.output = json.loads(json.dumps(described.output, default=_epoch_seconds))
        result = original_describe_execution(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        body = _body(result)
        version_arn = getattr(execution, "emulated_version_arn", None)
        if version_arn:
            body["stateMachineVersionArn"] = version_arn
            body["stateMachineArn"] = version_arn.rsplit(":", 1)[0]
        if getattr(execution, "emulated_alias_arn", None):
            body["stateMachineAliasArn"] = execution.emulated_alias_arn
        if _runs_here(execution) and isinstance(execution.output, str) and body.get("output") == execution.output:
            # the result was a JSON string: AWS answers with its JSON text (`"hi"`), moto with the bare value
            body["output"] = json.dumps(execution.output)
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
        body["redriveStatus"] = _redrive_status(
            str(body.get("status")), current.stop_date, self._get_param("executionArn")
        )
        return _with_body(result, body)

    def list_executions(self: Any) -> Any:
        map_run_arn = self._get_param("mapRunArn")
        if map_run_arn is not None:
            if self._get_param("stateMachineArn") is not None:
                raise _validation("Only one of stateMachineArn or mapRunArn may be given")
            # Express children are not listed: ListExecutions does not list Express executions.
            children = [c for c in _MAP_RUN_CHILDREN.values() if c.emulated_map_run_arn == map_run_arn]
            listed = [_list_item(c) for c in children if c.sm_type != "EXPRESS"]
            return _result({"executions": listed})
        result = original_list_executions(self)
        body = _body(result)
        machine_arn = self._get_param("stateMachineArn")
        for recorded in _RECORDED.values():
            if recorded["execution"]["stateMachineArn"] == machine_arn:
                described = _describe_recorded(recorded)
                keys = ("executionArn", "stateMachineArn", "name", "status", "startDate", "stopDate", "redriveCount")
                body.setdefault("executions", []).insert(0, {k: described[k] for k in keys if k in described})
        backend = self.stepfunction_backend
        for item in body.get("executions", []):
            if item["executionArn"] in _RECORDED:
                continue
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
        recorded = _RECORDED.get(self._get_param("executionArn"))
        if recorded is not None:
            facts = recorded["execution"]
            machine = {
                "stateMachineArn": facts["stateMachineArn"],
                "name": facts["stateMachineArn"].rsplit(":", 1)[1],
                "definition": recorded["definition"],
                "roleArn": recorded["role_arn"],
                "updateDate": recorded["recorded_at"],
            }
            return _json(machine)
        child = _MAP_RUN_CHILDREN.get(self._get_param("executionArn"))
        if child is not None:
            return _result(_describe_child_machine(child.emulated_workflow))
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
        recorded = _RECORDED.get(self._get_param("executionArn"))
        if recorded is not None:
            events = recorded["events"]
            return _json({"events": list(reversed(events)) if self._get_param("reverseOrder") else events})
        child = _MAP_RUN_CHILDREN.get(self._get_param("executionArn"))
        if child is not None and child.sm_type != "EXPRESS":
            return _result({"events": _history(child)} if _attempts(child) else child.to_history_output())
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        if not _attempts(execution):
            return original_history(self)
        return _result({"events": _history(execution)})

    def redrive_execution(self: Any) -> Any:
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        return _result({"redriveDate": _redrive(execution)})

    def emulation_advance_clock(self: Any) -> Any:
        arn = self._get_param("executionArn")
        if arn not in _RECORDED:
            self.stepfunction_backend.describe_execution(arn)  # ExecutionDoesNotExist for a stranger
        _CLOCK_OFFSETS[arn] = _CLOCK_OFFSETS.get(arn, 0.0) + float(self._get_param("seconds"))
        return _json({"executionArn": arn, "now": _now(arn)})

    def emulation_record_execution(self: Any) -> Any:
        recorded = _recording(self._get_param("execution"), self._get_param("definition"), self._get_param("events"))
        _RECORDED[recorded["execution"]["executionArn"]] = recorded
        return _json({"executionArn": recorded["execution"]["executionArn"]})

    original_describe_machine = response_class.describe_state_machine

    def describe_state_machine(self: Any) -> Any:
        workflow = _CHILD_WORKFLOWS.get(self._get_param("stateMachineArn"))
        if workflow is not None:
            return _result(_describe_child_machine(workflow))
        return original_describe_machine(self)

    response_class.describe_state_machine = describe_state_machine  # type: ignore[method-assign]
    response_class.get_execution_history = get_execution_history  # type: ignore[method-assign]
    response_class.redrive_execution = redrive_execution  # type: ignore[attr-defined]
    response_class.describe_execution = describe_execution  # type: ignore[method-assign]
    response_class.list_executions = list_executions  # type: ignore[method-assign]
    response_class.describe_state_machine_for_execution = describe_state_machine_for_execution  # type: ignore[method-assign]
    response_class.list_state_machine_versions = list_state_machine_versions  # type: ignore[attr-defined]
    response_class.emulation_advance_clock = emulation_advance_clock  # type: ignore[attr-defined]
    response_class.emulation_record_execution = emulation_record_execution  # type: ignore[attr-defined]
    _INSTALLED = True


def _install_task_integrations() -> None:
    """Lambda's executed version and ECS's containers, as described in the module docstring."""
    import hashlib
    from urllib.parse import unquote

    from moto.awslambda.responses import LambdaResponse
    from moto.core.config import default_user_config
    from moto.ecs import models as ecs_models

    default_user_config.setdefault("lambda", {})["use_docker"] = False
    original_invoke = LambdaResponse.invoke

    def invoke(self: Any) -> Any:
        status, headers, payload = original_invoke(self)
        if status == 200:
            name = unquote(self.path.rsplit("/", 2)[-2])
            try:
                function = self.backend.get_function(name, self._get_param("qualifier"))
            except Exception:  # an unknown function: AWS answers 404 before this point
                return status, headers, payload
            headers["x-amz-executed-version"] = str(function.version)
        return status, headers, payload

    LambdaResponse.invoke = invoke  # type: ignore[method-assign]

    original_task_init = ecs_models.Task.__init__

    def task_init(self: Any, cluster: Any, task_definition: Any, *args: Any, **kwargs: Any) -> None:
        original_task_init(self, cluster, task_definition, *args, **kwargs)
        containers = []
        for index, definition in enumerate(task_definition.container_definitions):
            container: Any = ecs_models.Container(task_definition)  # type: ignore[abstract]
            container.name = definition.get("name")
            container.image = definition.get("image")
            container.cpu = definition.get("cpu")
            container.memory = definition.get("memory")
            container.environment = definition.get("environment")
            container.command = definition.get("command")
            container.image_digest = "sha256:" + hashlib.sha256(str(container.image).encode()).hexdigest()
            container.task_arn = self.task_arn
            container.last_status = "STOPPED"
            container.runtime_id = f"{self.id}-{index}"
            containers.append(container)
        self.containers = containers

    ecs_models.Task.__init__ = task_init  # type: ignore[method-assign]

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )

    def normalise_parameters(self: Any, parameters: dict, *_args: Any, **_kwargs: Any) -> None:
        renamed = _renamed_keys(parameters, str.lower)
        parameters.clear()
        parameters.update(renamed)

    def normalise_response(self: Any, response: Any, *_args: Any, **_kwargs: Any) -> None:
        renamed = _renamed_keys(response, str.upper)
        response.clear()
        response.update(renamed)

    StateTaskServiceEcs._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceEcs._normalise_response = normalise_response  # type: ignore[method-assign]


def _renamed_keys(value: Any, first: Any) -> Any:
    """`value` with the first letter of every object key passed through `first`, at any depth."""
    if isinstance(value, dict):
        return {
            (first(key[:1]) + key[1:] if isinstance(key, str) else key): _renamed_keys(item, first)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_renamed_keys(item, first) for item in value]
    return value


# Map Run children by execution ARN, and their child workflows by labelled state machine ARN.
_MAP_RUN_CHILDREN: dict[str, Any] = {}
_CHILD_WORKFLOWS: dict[str, Any] = {}
# Each Map Run's child executions by item index (the latest one of each item), for its redrives.
_ITEM_CHILDREN: dict[str, dict[int, Any]] = {}
# Failed Map Runs a redriven parent redrives, by parent execution ARN and labelled child workflow ARN.
_PENDING_MAP_RUN_REDRIVES: dict[str, dict[str, Any]] = {}


def _outcome_counter(counter: Any, status: str) -> Any:
    """The Map Run counter (of items or executions) an ended child counts in."""
    return {"SUCCEEDED": counter.succeeded, "ABORTED": counter.aborted, "TIMED_OUT": counter.timed_out}.get(
        status, counter.failed
    )


def _redrive_child(child: Any) -> Any:
    """Redrives a failed Standard child as RedriveExecution would (same ARN, history continued)
    and waits for its new attempt to end."""
    import time

    _redrive(child)
    while _current(child).exec_status is None or _status(child) == "RUNNING":
        time.sleep(0.005)
    return child


def _map_run_records(execution: Any) -> list[Any]:
    """The Map Runs of an execution and of its redriven attempts, each once (moto: only the first
    run's); a redriven attempt's Map state reuses its failed Map Run rather than a new one."""
    records: list[Any] = []
    for run in (execution, *_attempts(execution)):
        worker = getattr(run, "exec_worker", None)
        if worker is not None:
            records.extend(
                record
                for record in worker.env.map_run_record_pool_manager.get_all()
                if not getattr(record, "emulated_replaced", False)
            )
    return records


class _ChildWorkflow:
    """A Distributed Map state's child workflow: its labelled ARN, definition, type and parent."""

    def __init__(self, arn: str, label: str, definition: str, sm_type: str, parent_machine: Any):
        self.arn, self.label, self.definition, self.sm_type = arn, label, definition, sm_type
        self.parent_machine = parent_machine


def _distributed_maps(states: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every Distributed Map state (name, state) of a definition's States, nested ones included."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, state in states.items():
        processor = state.get("ItemProcessor") or {}
        if state.get("Type") == "Map" and (processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED":
            found.append((name, state))
        for inner in [processor, state.get("Iterator") or {}, *(state.get("Branches") or [])]:
            found.extend(_distributed_maps(inner.get("States") or {}))
    return found


def _child_workflow(record: Any) -> _ChildWorkflow:
    """The child workflow of a Map Run: the Map state's ItemProcessor as a definition of its own
    (with the machine's QueryLanguage), under the labelled ARN AWS names it by."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    labelled = record.map_state_machine_arn
    parts = record.execution_arn.split(":")
    backend = stepfunctions_parser_backends[parts[4]][parts[3]]
    parent: Any = backend.describe_execution(record.execution_arn)
    known = _CHILD_WORKFLOWS.get(labelled)
    if known is not None and known.parent_machine.definition == parent.state_machine.definition:
        return known
    definition = json.loads(parent.state_machine.definition)
    label = labelled.rsplit("/", 1)[1]
    maps = _distributed_maps(definition.get("States") or {})
    _name, state = next(((n, st) for n, st in maps if st.get("Label", n) == label), maps[0])
    processor = dict(state["ItemProcessor"])
    sm_type = str(processor.pop("ProcessorConfig").get("ExecutionType", "STANDARD"))
    if "QueryLanguage" in definition and "QueryLanguage" not in processor:
        processor = {"QueryLanguage": definition["QueryLanguage"], **processor}
    workflow = _ChildWorkflow(labelled, label, json.dumps(processor, indent=2), sm_type, parent.state_machine)
    _CHILD_WORKFLOWS[labelled] = workflow
    return workflow


def _run_child(record: Any, item: Any) -> Any:
    """Runs one item of a Map Run as a child execution of the child workflow and waits for it."""
    import time
    import uuid

    from moto.stepfunctions.parser.backend.execution import Execution as ParserExecution

    workflow = _child_workflow(record)
    machine = workflow.parent_machine
    child_machine = copy.deepcopy(machine, {id(machine.executions): [], id(machine.backend): machine.backend})
    child_machine.definition = workflow.definition
    child_machine.arn = workflow.arn
    child_machine.sm_type = workflow.sm_type
    run_id = record.map_run_arn.rsplit(":", 1)[1]
    base = workflow.arn.replace(":stateMachine:", ":execution:" if workflow.sm_type != "EXPRESS" else ":express:")
    name = str(uuid.uuid4())
    arn = f"{base}:{name}" if workflow.sm_type != "EXPRESS" else f"{base}:{run_id}:{name}"
    from moto.stepfunctions.parser.api import StateMachineType

    child: Any = ParserExecution(
        name=name,
        sm_type=StateMachineType(workflow.sm_type),
        role_arn=machine.roleArn,
        exec_arn=arn,
        account_id=record.execution_arn.split(":")[4],
        region_name=record.execution_arn.split(":")[3],
        state_machine=child_machine,
        start_date=datetime.datetime.now(tz=datetime.timezone.utc),
        cloud_watch_logging_session=None,
        input_data=json.dumps(item),
        trace_header=None,
        activity_store={},
    )
    child.emulated_map_run_arn = record.map_run_arn
    child.emulated_workflow = workflow
    _MAP_RUN_CHILDREN[arn] = child
    child.start()
    while child.exec_status is None or _status(child) == "RUNNING":
        time.sleep(0.005)
    if workflow.sm_type == "EXPRESS":
        _log_express_child(child, machine)
    return child


def _log_express_child(child: Any, machine: Any) -> None:
    """An Express child's events as CloudWatch Logs messages in the machine's log group (level
    ALL), in the format AWS documents: Express executions keep no history of their own."""
    from moto.logs.models import logs_backends

    destinations = (getattr(machine, "loggingConfiguration", None) or {}).get("destinations") or []
    groups = [d["cloudWatchLogsLogGroup"]["logGroupArn"] for d in destinations if d.get("cloudWatchLogsLogGroup")]
    if not groups:
        return
    group = groups[0].split(":log-group:", 1)[-1].removesuffix(":*")
    backend = logs_backends[child.account_id][child.region_name]
    stream = f"states/{child.state_machine.name}/{child.name}"
    backend.create_log_stream(group, stream)
    messages = []
    for event in child.to_history_output()["events"]:
        details = next((value for key, value in event.items() if key.endswith("EventDetails")), None)
        moment = event["timestamp"]
        if isinstance(moment, str):
            moment = datetime.datetime.fromisoformat(moment.replace("Z", "+00:00"))
        when = int(moment.timestamp() * 1000)
        message = {
            "id": str(event["id"]),
            "previous_event_id": str(event.get("previousEventId", 0)),
            "type": str(getattr(event["type"], "value", event["type"])),
            "event_timestamp": str(when),
            "execution_arn": child.exec_arn,
            "redrive_count": "0",
        }
        if details is not None:
            message["details"] = details
        messages.append({"timestamp": when, "message": json.dumps(message, separators=(",", ":"), default=str)})
    backend.put_log_events(group, stream, messages)


def _install_map_run_children() -> None:
    """A Distributed Map's items run as child executions (moto runs them inside the parent)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as worker_module,
    )

    def eval_job(self: Any, env: Any, job: Any) -> None:
        record = self._map_run_record
        children = _ITEM_CHILDREN.setdefault(record.map_run_arn, {})
        previous = children.get(job.job_index)
        if previous is not None and _status(previous) == "SUCCEEDED":
            job.job_output = _current(previous).output  # a redrive keeps what already succeeded
            return
        if previous is None:
            for counter in (record.item_counter, record.execution_counter):
                counter.total.count()
                counter.running.count()
            child = _run_child(record, job.job_input)
        else:
            # the same Map Run redriven: its unsuccessful item runs again
            for counter in (record.item_counter, record.execution_counter):
                _outcome_counter(counter, _status(previous)).offset(-1)
                counter.running.count()
            if previous.sm_type == "EXPRESS":
                record.execution_counter.total.count()  # a new execution (StartExecution)
                child = _run_child(record, job.job_input)
            else:
                child = _redrive_child(previous)
        children[job.job_index] = child
        status = _status(child)
        for counter in (record.item_counter, record.execution_counter):
            counter.running.offset(-1)
            _outcome_counter(counter, status).count()
            if status == "SUCCEEDED":
                counter.results_written.count()
        job.job_output = _current(child).output if status == "SUCCEEDED" else None

    worker_module.DistributedItemProcessorWorker._eval_job = eval_job  # type: ignore[method-assign]

    from moto.stepfunctions.parser.api import (
        ExecutionFailedEventDetails,
        HistoryEventType,
        MapRunRedrivenEventDetails,
        MapRunStatus,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as component_module,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    component = component_module.DistributedIterationComponent
    original_map_run = component._map_run

    def map_run(self: Any, env: Any, eval_input: Any) -> None:
        original_map_run(self, env, eval_input)
        record = eval_input.map_run_record
        counter = record.item_counter
        failed = counter.failed.get() + counter.timed_out.get() + counter.aborted.get()
        total = counter.total.get()
        over_count = failed > (record.tolerated_failure_count or 0)
        over_percentage = failed * 100 > (record.tolerated_failure_percentage or 0) * total
        if failed and over_count and over_percentage:
            env.stack.pop()  # the children's results: the Map Run failed instead
            kind = StatesErrorNameType.StatesExceedToleratedFailureThreshold
            raise FailureEventException(
                failure_event=FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=kind),
                    event_type=HistoryEventType.ExecutionFailed,
                    event_details=EventDetails(  # type: ignore[typeddict-item]
                        executionFailedEventDetails=ExecutionFailedEventDetails(
                            error=kind.to_name(), cause="The specified tolerated failure threshold was exceeded"
                        )
                    ),
                )
            )

    component._map_run = map_run  # type: ignore[method-assign]
    original_eval_body = component._eval_body

    def eval_body(self: Any, env: Any) -> None:
        eval_input = env.stack[-1]
        fresh = eval_input.map_run_record
        pending = _PENDING_MAP_RUN_REDRIVES.get(fresh.execution_arn, {})
        record = pending.pop(fresh.map_state_machine_arn, None)
        if record is None:
            original_eval_body(self, env)
            return
        # the redriven parent's Map state redrives its failed Map Run: same ARN, `MapRunRedriven`
        fresh.emulated_replaced = True
        eval_input.map_run_record = record
        record.emulated_redrive_count = getattr(record, "emulated_redrive_count", 0) + 1
        record.emulated_redrive_date = datetime.datetime.now(tz=datetime.timezone.utc)
        record.status, record.stop_date = MapRunStatus.RUNNING, None
        manager = env.event_manager
        add_event = manager.add_event

        def redriven_instead_of_started(context: Any, event_type: Any, event_details: Any = None, **kw: Any) -> int:
            if event_type == HistoryEventType.MapRunStarted:
                event_type = HistoryEventType.MapRunRedriven
                event_details = EventDetails(  # type: ignore[typeddict-item]
                    mapRunRedrivenEventDetails=MapRunRedrivenEventDetails(
                        mapRunArn=record.map_run_arn, redriveCount=record.emulated_redrive_count
                    )
                )
            return add_event(context, event_type, event_details, **kw)

        manager.add_event = redriven_instead_of_started
        try:
            original_eval_body(self, env)
        finally:
            del manager.add_event

    component._eval_body = eval_body  # type: ignore[method-assign]


def _install_express_children() -> None:
    """moto's ASL grammar accepts only `"ExecutionType": "STANDARD"` in a ProcessorConfig; AWS
    accepts EXPRESS as well. The parser reads EXPRESS as STANDARD (the definition text that
    Step Functions stores and answers with is unchanged); `_child_workflow` reads the real type."""
    import re

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    original = AmazonStateLanguageParser.parse
    express = re.compile(r'("ExecutionType"\s*:\s*)"EXPRESS"')

    def parse(definition: str) -> Any:
        return original(express.sub(r'\1"STANDARD"', definition))

    AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]


def _install_nested_start() -> None:
    """`arn:aws:states:::states:startExecution` tasks (moto passes the task's parameters to boto
    in ASL's casing, `StateMachineArn`, which botocore cannot serialise): StartExecution is
    called with the API's own member names, as AWS does."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn as sfn_module,
    )

    service = sfn_module.StateTaskServiceSfn
    original = service._eval_service_task

    def eval_service_task(
        self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> Any:
        if self._get_boto_service_action() != "start_execution":
            return original(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        import uuid

        for key in [k for k in normalised_parameters if k[:1].isupper()]:
            normalised_parameters[key[0].lower() + key[1:]] = normalised_parameters.pop(key)
        normalised_parameters.setdefault("name", str(uuid.uuid4()))  # AWS names an unnamed child so
        original(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        # the task sees StartExecution's answer in ASL's casing (ExecutionArn, StartDate), as on AWS
        response = env.stack.pop()
        env.stack.append({key[0].upper() + key[1:]: value for key, value in response.items()})

    service._eval_service_task = eval_service_task  # type: ignore[method-assign]


def _describe_child(child: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "executionArn": child.exec_arn,
        "stateMachineArn": child.emulated_workflow.arn,
        "name": child.name,
        "status": _status(child),
        "startDate": child.start_date,
        "input": child.input_data if isinstance(child.input_data, str) else json.dumps(child.input_data),
        "mapRunArn": child.emulated_map_run_arn,
        "redriveCount": len(_attempts(child)),
        # a failed child is redriven by redriving its Map Run, never on its own
        "redriveStatus": "REDRIVABLE_BY_MAP_RUN" if _status(child) in REDRIVABLE else "NOT_REDRIVABLE",
    }
    current = _current(child)
    if _attempts(child):
        body["redriveDate"] = current.start_date
    if current.stop_date is not None:
        body["stopDate"] = current.stop_date
    if current.output is not None and body["status"] == "SUCCEEDED":
        body["output"] = json.dumps(current.output, separators=(",", ":"))
    return body


def _list_item(child: Any) -> dict[str, Any]:
    item = {
        key: value
        for key, value in _describe_child(child).items()
        if key in ("executionArn", "stateMachineArn", "name", "status", "startDate", "stopDate", "mapRunArn")
    }
    item["redriveCount"] = len(_attempts(child))
    return item


def _describe_child_machine(workflow: _ChildWorkflow) -> dict[str, Any]:
    machine = workflow.parent_machine
    return {
        "stateMachineArn": workflow.arn,
        "name": machine.name,
        "status": "ACTIVE",
        "definition": workflow.definition,
        "roleArn": machine.roleArn,
        "type": workflow.sm_type,
        "creationDate": machine.creation_date,
        "label": workflow.label,
    }


def _runs_here(execution: Any) -> bool:
    """An execution moto's interpreter ran: its `output` is the result's value, not JSON text."""
    from moto.stepfunctions.parser.backend.execution import Execution as ParserExecution

    return isinstance(execution, ParserExecution)


def _validation(message: str) -> Exception:
    from moto.stepfunctions.exceptions import AWSError

    class ValidationException(AWSError):
        TYPE = "ValidationException"
        STATUS = 400

    return ValidationException(message)


def _epoch_seconds(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON")


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
    if _redrive_status(status, current.stop_date, execution.exec_arn) == "NOT_REDRIVABLE":
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
    failed_runs = [record for record in _map_run_records(execution) if _value(record.status) == "FAILED"]
    if failed_runs:
        # AWS redrives a failed Map Run itself (MapRunRedriven), never a new one
        _PENDING_MAP_RUN_REDRIVES[execution.exec_arn] = {run.map_state_machine_arn: run for run in failed_runs}
    execution.emulated_attempts = [*_attempts(execution), attempt]
    attempt.start()
    return now


def _value(enum_or_text: Any) -> str:
    return str(getattr(enum_or_text, "value", enum_or_text))


def _recording(execution: Any, definition: Any, events: Any) -> dict[str, Any]:
    """An execution recorded from AWS, its dates moved so that it started now."""
    if not isinstance(execution, dict) or not isinstance(definition, str) or not isinstance(events, list):
        raise _validation("EmulationRecordExecution takes execution (an object), definition (text) and events (a list)")
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    shift = now - _date(execution["startDate"])
    moved = {key: _date(value) + shift if key.endswith("Date") else value for key, value in execution.items()}
    moved_events = [{**event, "timestamp": _date(event["timestamp"]) + shift} for event in events]
    started = next((e for e in moved_events if e["type"] == "ExecutionStarted"), {})
    role_arn = (started.get("executionStartedEventDetails") or {}).get("roleArn")
    return {
        "execution": moved,
        "definition": definition,
        "events": moved_events,
        "role_arn": role_arn,
        "recorded_at": now,
    }


def _describe_recorded(recorded: dict[str, Any]) -> dict[str, Any]:
    """DescribeExecution's answer for a recorded execution; its redrive status as of the emulation's clock."""
    body = {"redriveCount": 0, **recorded["execution"]}
    if "redriveStatus" not in body:
        body["redriveStatus"] = _redrive_status(str(body["status"]), body.get("stopDate"), body["executionArn"])
    return body


def _date(value: Any) -> datetime.datetime:
    """A date as the JSON protocol carries it (epoch seconds) or as a recording writes it (ISO text)."""
    if isinstance(value, datetime.datetime):
        return value
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _json(body: dict[str, Any]) -> str:
    """A response body in the JSON protocol's form, dates as epoch seconds."""
    return json.dumps(body, default=_epoch_seconds)


def emulation_request(endpoint: str, action: str, body: dict[str, Any], region: str = "us-east-1") -> dict[str, Any]:
    """Sends one of the emulation's own actions (module docstring) to the emulation at `endpoint`,
    signed as a Step Functions request so that the moto server routes it to Step Functions."""
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    if not action.startswith("Emulation"):
        raise ValueError(f"{action!r} is not one of the emulation's own actions")
    payload = json.dumps(body, default=_epoch_seconds).encode()
    request = AWSRequest(
        method="POST",
        url=endpoint,
        data=payload,
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"AWSStepFunctions.{action}"},
    )
    SigV4Auth(Credentials("local", "local"), "states", region).add_auth(request)
    prepared = urllib.request.Request(endpoint, data=payload, headers=dict(request.headers), method="POST")
    with urllib.request.urlopen(prepared, timeout=30) as answer:
        return json.loads(answer.read())


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
