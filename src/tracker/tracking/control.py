"""Execution control: deploy models to Step Functions and start executions, registering them on the
contract as they happen instead of when a tracker notices.

Public API (used by `ape run deploy_model` and `ape run start_execution`)::

    outcome = deploy_model(session, contract, name, definition_text, role_arn=None, owner=None)
    started = start_execution(session, contract, publisher, name_or_arn, input_text="{}",
                              execution_name=None, expect_model=None, owner=None)
    summary = wait_for_execution(started, session, contract, publisher, config)

* `deploy_model` creates the state machine, or updates it when the name exists, publishing a new
  version each time (versions never change, so an execution of one keeps pointing at the
  definition it ran), then registers the model id under the owner (default: the sending account),
  computed from the definition text DescribeStateMachine returns: the same id a tracker computes.
* `start_execution` starts the machine's latest published version (or the version or alias ARN it
  is given), so the execution records which version ran. With `expect_model` it refuses to start
  when that version's definition does not hash to the model or the owner has not registered the
  model; it then registers the instance (with no states yet) right away, publishing its documents.
* With `expect_code` it also refuses to start when a Lambda function the model's previous
  execution ran now runs other code: for each function that execution invoked (as it named it,
  alias or version included), the code it ran (its task document, as the tracker pinned it in
  `state_dir`, else read from the version that ran) against GetFunctionConfiguration today.
* `wait_for_execution` follows the execution to its end through `tracker.tracking.engine.track` (the
  same machinery as `track_execution`), registering states as they happen, and returns once the
  end is on chain: the instance final, or the end of a redrivable attempt.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.aws.arns import check_state_machine_arn
from tracker.aws.errors import InvalidDefinitionError, StateMachineNotFoundError
from tracker.aws.executions import ExecutionRef, Selection
from tracker.aws.history import HistorySource
from tracker.aws.session import AwsService
from tracker.aws.tasks import TaskReader, task_calls
from tracker.chain.contract import TrackerContract
from tracker.documents.facts import model_document
from tracker.documents.ids import normalize_address, normalize_id
from tracker.errors import ConfigurationError, TrackerError
from tracker.publish.targets import Publisher, protocol_path, publish_documents, url_for
from tracker.tracking.build import build_documents
from tracker.tracking.config import TrackConfig, TrackSummary
from tracker.tracking.engine import track


class InvalidInputError(TrackerError):
    """The execution input is not JSON."""


class ModelMismatchError(TrackerError):
    """The state machine's current definition does not hash to the expected model id."""


class ModelNotRegisteredError(TrackerError):
    """The expected model id is not registered on the contract."""


class CodeMismatchError(TrackerError):
    """A function the model's previous execution ran now runs other code (or cannot be compared)."""


@dataclass(frozen=True)
class ModelDeployment:
    """What `deploy_model` did: `change` is "new", "unchanged" or "changed"."""

    state_machine_arn: str
    version_arn: str | None
    model_id: str
    previous_model_id: str | None
    change: str
    registered: bool
    transaction_hash: str | None


@dataclass(frozen=True)
class StartOutcome:
    """An execution started and its instance registered under `owner`."""

    execution_arn: str
    state_machine_arn: str
    version_arn: str | None
    execution_id: str
    model_id: str
    instance_id: str
    owner: str
    transaction_hash: str | None
    protocol_url: str
    alias_arn: str | None = None


def _owner_of(contract: TrackerContract, owner: str | None) -> str:
    if owner:
        return normalize_address(owner)
    if contract.sender is None:
        raise ConfigurationError("no account to send transactions from (use --account)")
    return normalize_address(str(contract.sender.address))


def latest_version(sfn: AwsService, state_machine_arn: str) -> str | None:
    """The ARN of the machine's newest published version (ListStateMachineVersions lists newest first)."""
    listed = sfn.call(
        "list_state_machine_versions", f"state machine {state_machine_arn}", stateMachineArn=state_machine_arn
    )
    versions = listed.get("stateMachineVersions") or []
    return str(versions[0]["stateMachineVersionArn"]) if versions else None


def _is_qualified(arn: str) -> bool:
    """Whether a state machine ARN names a version or an alias (arn:...:stateMachine:NAME:QUALIFIER)."""
    return arn.startswith("arn:") and len(arn.split(":")) == 8


def _is_alias(arn: str) -> bool:
    """Whether a qualified state machine ARN names an alias (a version's qualifier is its number)."""
    return _is_qualified(arn) and not arn.split(":")[7].isdigit()


def find_state_machine(sfn: AwsService, name_or_arn: str) -> str:
    """The ARN of a state machine given by ARN or by name; raises when none has that name."""
    if name_or_arn.startswith("arn:"):
        return check_state_machine_arn(name_or_arn)
    for page in sfn.pages("list_state_machines", f"region {sfn.region}"):
        for machine in page.get("stateMachines", []):
            if machine["name"] == name_or_arn:
                return machine["stateMachineArn"]
    raise StateMachineNotFoundError(f"no state machine named {name_or_arn!r} in region {sfn.region}")


# CloudWatch Logs' rule for log group names (CreateLogGroup: 1-512 of [.\-_/#A-Za-z0-9]).
LOG_GROUP_NAME = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")


def logging_to(session: Any, log_group: str) -> dict[str, Any]:
    """The logging configuration that sends every event of a machine's executions, with their
    data, to the CloudWatch Logs group `log_group` (created when it does not exist): how Express
    workflows, and a Distributed Map's Express children, are tracked."""
    if not LOG_GROUP_NAME.fullmatch(log_group):
        raise ConfigurationError(
            f"--log-group {log_group[:80]!r}: a log group name is 1 to 512 letters, digits and _ - . / #"
        )
    logs = AwsService(session, "logs")

    def found() -> list[Mapping[str, Any]]:
        pages = logs.pages("describe_log_groups", f"log group {log_group}", logGroupNamePrefix=log_group)
        return [group for page in pages for group in page["logGroups"] if group["logGroupName"] == log_group]

    groups = found()
    if not groups:
        logs.call("create_log_group", f"log group {log_group}", logGroupName=log_group)
        groups = found()
    arn = str(groups[0]["arn"])
    arn = arn if arn.endswith(":*") else f"{arn}:*"  # Step Functions names the group's streams
    return {
        "level": "ALL",
        "includeExecutionData": True,
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": arn}}],
    }


def deploy_model(
    session: Any,
    contract: TrackerContract,
    name: str,
    definition_text: str,
    role_arn: str | None = None,
    owner: str | None = None,
    log_group: str | None = None,
) -> ModelDeployment:
    """Creates or updates the state machine `name` and registers its model id (see the module
    docstring); with `log_group`, the machine logs every event there (`logging_to`)."""
    try:
        json.loads(definition_text)
    except ValueError as error:
        raise InvalidDefinitionError(f"the definition is not valid JSON: {error}") from None
    sfn = AwsService(session, "stepfunctions")
    logging = {"loggingConfiguration": logging_to(session, log_group)} if log_group else {}
    try:
        arn: str | None = find_state_machine(sfn, name)
    except StateMachineNotFoundError:
        arn = None
    previous_model_id = None
    version_arn = None
    if arn is None:
        if not role_arn:
            raise ConfigurationError(f"state machine {name!r} does not exist yet: pass --role-arn to create it")
        created = sfn.call(
            "create_state_machine",
            f"state machine {name}",
            name=name,
            definition=definition_text,
            roleArn=role_arn,
            publish=True,
            **logging,
        )
        arn, version_arn = created["stateMachineArn"], created.get("stateMachineVersionArn")
        change = "new"
    else:
        current = sfn.call("describe_state_machine", f"state machine {arn}", stateMachineArn=arn)
        previous_model_id = model_document(current["definition"]).id
        same_logging = not logging or _destinations(logging["loggingConfiguration"]) == _destinations(
            current.get("loggingConfiguration")
        )
        if (
            current["definition"] == definition_text
            and (not role_arn or role_arn == current.get("roleArn"))
            and same_logging
        ):
            change = "unchanged"
        else:
            update: dict[str, Any] = {
                "stateMachineArn": arn,
                "definition": definition_text,
                "publish": True,
                **logging,
            }
            if role_arn:
                update["roleArn"] = role_arn
            version_arn = sfn.call("update_state_machine", f"state machine {arn}", **update).get(
                "stateMachineVersionArn"
            )
            change = "changed"
    described = sfn.call("describe_state_machine", f"state machine {arn}", stateMachineArn=arn)
    model_id = model_document(described["definition"]).id
    if change == "changed" and model_id == previous_model_id:
        change = "unchanged"  # only the role or the logging changed: the model is the same
    if version_arn is None:
        version_arn = latest_version(sfn, arn)
    publisher = _owner_of(contract, owner)
    transaction_hash = None
    registered = contract.model_registered_at(publisher, model_id) is None
    if registered:
        transaction_hash = contract.send([contract.register_model_call(publisher, model_id)]).transaction_hash
    return ModelDeployment(arn, version_arn, model_id, previous_model_id, change, registered, transaction_hash)


def _destinations(logging: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """What decides where a machine's events go: level, data, groups (not how AWS orders keys)."""
    if not logging:
        return ()
    groups = [d.get("cloudWatchLogsLogGroup", {}).get("logGroupArn") for d in logging.get("destinations") or []]
    return (logging.get("level"), bool(logging.get("includeExecutionData")), tuple(sorted(filter(None, groups))))


def start_execution(
    session: Any,
    contract: TrackerContract,
    publisher: Publisher,
    name_or_arn: str,
    input_text: str = "{}",
    execution_name: str | None = None,
    expect_model: str | None = None,
    owner: str | None = None,
    expect_code: bool = False,
    state_dir: Path | None = None,
) -> StartOutcome:
    """Starts an execution and registers its instance at once (see the module docstring)."""
    try:
        json.loads(input_text)
    except ValueError as error:
        raise InvalidInputError(f"the execution input is not valid JSON: {error}") from None
    owner = _owner_of(contract, owner)
    sfn = AwsService(session, "stepfunctions")
    if _is_qualified(name_or_arn):
        target = check_state_machine_arn(name_or_arn)
    else:
        arn = find_state_machine(sfn, name_or_arn)
        target = latest_version(sfn, arn) or arn
    if expect_model is not None:
        expected = normalize_id(expect_model, "--expect-model")
        # An alias routes each start to one of its versions: which one ran is checked after the start.
        checked = None if _is_alias(target) else target
        described = (
            sfn.call("describe_state_machine", f"state machine {checked}", stateMachineArn=checked) if checked else None
        )
        actual = model_document(described["definition"]).id if described else expected
        if actual != expected:
            raise ModelMismatchError(
                f"state machine {target} runs model {actual}, not the expected {expected}: refusing to start"
            )
        if contract.model_registered_at(owner, expected) is None:
            raise ModelNotRegisteredError(
                f"model {expected} is not registered under 0x{owner} on the contract: run deploy_model first"
            )
    if expect_code:
        check_code(session, sfn, target, contract, state_dir)
    # Before anything starts on AWS: the instance is registered right after the start.
    contract.require_funds(["registerExecution"], "registering the execution")
    arguments: dict[str, Any] = {"stateMachineArn": target, "input": input_text}
    if execution_name:
        arguments["name"] = execution_name
    started = sfn.call("start_execution", f"state machine {target}", **arguments)
    execution_arn = started["executionArn"]
    execution = _started_execution(session, execution_arn, target)
    documents = build_documents(execution)
    if expect_model is not None and documents.model_id != normalize_id(expect_model):
        # The definition changed between the check and the start: the execution ran another model.
        raise ModelMismatchError(
            f"execution {execution_arn} started on model {documents.model_id}, "
            f"not the expected {normalize_id(expect_model)}"
        )
    publish_documents(publisher, [documents.model, documents.instance])
    transaction_hash = None
    if contract.instance(owner, documents.execution_id) is None:
        call = contract.register_execution_call(
            owner, documents.execution_id, documents.model_id, documents.instance_id, []
        )
        transaction_hash = contract.send([call]).transaction_hash
    return StartOutcome(
        execution_arn,
        execution.state_machine_arn,
        execution.state_machine_version_arn,
        documents.execution_id,
        documents.model_id,
        documents.instance_id,
        owner,
        transaction_hash,
        url_for(publisher, protocol_path(documents.instance_id)),
        execution.state_machine_alias_arn,
    )


@dataclass(frozen=True)
class RanCode:
    """What one task of an execution ran: the function as invoked, its version and code."""

    state_name: str
    invoked: str
    version: str
    code_sha256: str | None
    read_after_the_fact: bool
    pinned: bool


def check_code(session: Any, sfn: AwsService, target: str, contract: TrackerContract, state_dir: Path | None) -> None:
    """Raises `CodeMismatchError` unless every Lambda function the previous execution of the
    target's model ran still runs the same code (see the module docstring)."""
    described = sfn.call("describe_state_machine", f"state machine {target}", stateMachineArn=target)
    model_id = model_document(described["definition"]).id
    machine_arn = target.rsplit(":", 1)[0] if _is_qualified(target) else target
    source = HistorySource(session, Selection((machine_arn,)))
    previous = None
    for ref in source.list_executions():  # ListExecutions lists the newest first
        if ref.status == "RUNNING":
            continue
        execution = source.load(ref)
        if model_document(execution.definition).id == model_id:
            previous = execution
            break
    if previous is None:
        raise CodeMismatchError(
            f"no earlier execution of model {model_id} on {machine_arn} to compare its code with: "
            "start once without --expect-code"
        )
    ran = _code_ran(session, previous, contract, state_dir)
    if not ran:
        raise CodeMismatchError(
            f"the previous execution {previous.name} of model {model_id[:12]}… ran no Lambda function whose code "
            "could be read: nothing to expect"
        )
    reader = TaskReader(session)
    for code in ran:
        if code.read_after_the_fact and not code.pinned:
            raise CodeMismatchError(
                f"{code.state_name} of the previous execution {previous.name} ran {code.invoked} ({code.version}), whose "
                "code was never recorded when it ran (no task document in --state-dir): it cannot be compared"
            )
        today = reader.current_code(code.invoked)
        if today.get("CodeSha256") != code.code_sha256:
            raise CodeMismatchError(
                f"{code.invoked} now runs version {today.get('Version')} with code sha256 {today.get('CodeSha256')}, "
                f"but {code.state_name} of the previous execution {previous.name} of model {model_id[:12]}… ran "
                f"version {code.version} with {code.code_sha256}: refusing to start"
            )


def _code_ran(session: Any, execution: Any, contract: TrackerContract, state_dir: Path | None) -> list[RanCode]:
    """The Lambda code each task of `execution` ran, from the tracker's pinned task documents where
    it has them, else read from the version that ran."""
    from ape import chain

    from tracker.tracking.checkpoints import CheckpointStore, store_path

    store = None
    if state_dir is not None:
        path = store_path(state_dir, int(chain.chain_id), contract.address)
        store = CheckpointStore(path) if path.exists() else None
    reader = TaskReader(session)
    found: dict[str, RanCode] = {}
    try:
        for call in task_calls(execution.definition, execution.events).values():
            pinned = store.pinned_task(execution.execution_arn, call.visit.entered.id) if store else None
            facts = json.loads(pinned) if pinned else reader.facts(call, "").to_json()
            code = facts.get("code") or {}
            if code.get("kind") != "lambda" or not code.get("code_sha256"):
                continue
            found.setdefault(
                code["invoked"],
                RanCode(
                    str(facts["state_name"]),
                    str(code["invoked"]),
                    str(code["version"]),
                    code.get("code_sha256"),
                    bool(code.get("read_after_the_fact")),
                    pinned is not None,
                ),
            )
    finally:
        if store is not None:
            store.close()
    return list(found.values())


def _started_execution(session: Any, execution_arn: str, state_machine_arn: str, timeout_s: float = 30.0) -> Any:
    """The execution once its `ExecutionStarted` event is in the history: the instance document
    includes the role named there, so it must not be built earlier (a tracker never does)."""
    source = HistorySource(session, Selection(execution_arn=execution_arn))
    deadline = time.monotonic() + timeout_s
    while True:
        execution = source.load(ExecutionRef(execution_arn, state_machine_arn))
        if execution.events:
            return execution
        if time.monotonic() > deadline:
            raise TrackerError(f"execution {execution_arn} started, but its history stayed empty for {timeout_s:.0f}s")
        time.sleep(0.2)


def wait_for_execution(
    started: StartOutcome,
    session: Any,
    contract: TrackerContract,
    publisher: Publisher,
    config: TrackConfig,
    timeout_s: float = 3600.0,
    stop: threading.Event | None = None,
) -> TrackSummary:
    """Follows the execution until its run ended and the tracker recorded that end on chain: the
    instance terminated, or an attempt end registered for an unsuccessful run that Step Functions
    may still redrive (a redrive is an operator's decision, maybe days later: `track_execution`
    continues the trace then). Gives up after `timeout_s`."""
    stop = stop or threading.Event()
    polls = max(1, int(timeout_s / max(config.poll_interval, 0.01)))
    follow = dataclasses.replace(config, follow=True, max_polls=polls, owner=started.owner)

    def on_progress(summary: TrackSummary) -> None:
        record = contract.instance(started.owner, started.execution_id)
        # the instance was registered new at the start, so any attempt end is this run's end
        if record is not None and (record.final or record.attempts > 0):
            stop.set()

    source = HistorySource(session, Selection(execution_arn=started.execution_arn), config.retry)
    return track(follow, source, contract, publisher, on_progress=on_progress, stop=stop)


def execution_status(session: Any, execution_arn: str) -> str:
    sfn = AwsService(session, "stepfunctions")
    return str(sfn.call("describe_execution", f"execution {execution_arn}", executionArn=execution_arn)["status"])
