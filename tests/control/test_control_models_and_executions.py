"""deploy_model and start_execution against moto and the contract."""

import json

import pytest

from tracker.aws.errors import ExecutionExistsError, InvalidDefinitionError, RoleError
from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.documents.facts import start_head
from tracker.documents.ids import sha256_hex
from tracker.tracking.config import TrackConfig
from tracker.tracking.control import (
    InvalidInputError,
    ModelMismatchError,
    ModelNotRegisteredError,
    deploy_model,
    execution_status,
    start_execution,
    wait_for_execution,
)
from tracker.tracking.engine import track

ROLE = "arn:aws:iam::123456789012:role/control-test"
FLOW = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Result": [1, 2, 3], "ResultPath": "$.items", "Next": "Each"},
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ResultPath": "$.each",
            "Iterator": {"StartAt": "Handle", "States": {"Handle": {"Type": "Pass", "End": True}}},
            "Next": "Both",
        },
        "Both": {
            "Type": "Parallel",
            "ResultPath": "$.both",
            "Branches": [
                {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
                {"StartAt": "Right", "States": {"Right": {"Type": "Pass", "End": True}}},
            ],
            "Next": "Finish",
        },
        "Finish": {"Type": "Succeed"},
    },
}
FLOW_STATES = ["Prepare", "Each", "Handle", "Handle", "Handle", "Both", "Left", "Right", "Finish"]


def text(definition) -> str:
    return json.dumps(definition, indent=2)


def me(tracker) -> str:
    return str(tracker.sender.address)


def test_deploy_change_and_redeploy_registers_both_models(aws, tracker):
    first = deploy_model(aws, tracker, "flow", text(FLOW), ROLE)
    assert first.change == "new" and first.registered and first.previous_model_id is None
    definition = aws.client("stepfunctions").describe_state_machine(stateMachineArn=first.state_machine_arn)[
        "definition"
    ]
    assert first.model_id == sha256_hex(definition)

    same = deploy_model(aws, tracker, "flow", text(FLOW))
    assert same.change == "unchanged" and not same.registered and same.model_id == first.model_id

    changed_flow = {**FLOW, "Comment": "second version"}
    second = deploy_model(aws, tracker, "flow", text(changed_flow))
    assert second.change == "changed" and second.registered
    assert (second.previous_model_id, second.model_id) == (first.model_id, sha256_hex(text(changed_flow)))
    assert second.version_arn.endswith(":2")
    registered = tracker.models_registered_at(me(tracker), [first.model_id, second.model_id])
    assert all(registered.values())


def test_a_log_group_is_created_once_and_a_malformed_name_is_refused_before_any_call(aws, tracker):
    from tracker.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as refused:
        deploy_model(aws, tracker, "flow", text(FLOW), ROLE, log_group="bad name!")
    assert str(refused.value) == "--log-group 'bad name!': a log group name is 1 to 512 letters, digits and _ - . / #"
    assert aws.client("stepfunctions").list_state_machines()["stateMachines"] == []  # nothing created

    first = deploy_model(aws, tracker, "flow", text(FLOW), ROLE, log_group="/flows/events")
    again = deploy_model(aws, tracker, "flow", text(FLOW), log_group="/flows/events")
    assert (again.change, again.model_id) == ("unchanged", first.model_id)
    groups = aws.client("logs").describe_log_groups(logGroupNamePrefix="/flows/")["logGroups"]
    assert [group["logGroupName"] for group in groups] == ["/flows/events"]
    moved = deploy_model(aws, tracker, "flow", text(FLOW), log_group="/flows/other")
    # only the logging changed: a new version of the same model
    assert (moved.change, moved.model_id) == ("unchanged", first.model_id) and moved.version_arn != first.version_arn
    logging = aws.client("stepfunctions").describe_state_machine(stateMachineArn=first.state_machine_arn)
    assert logging["loggingConfiguration"]["destinations"][0]["cloudWatchLogsLogGroup"]["logGroupArn"].endswith(
        ":log-group:/flows/other:*"
    )


def test_start_with_matching_expect_model_registers_the_instance_before_any_state(aws, tracker, publisher):
    deployed = deploy_model(aws, tracker, "flow", text(FLOW), ROLE)
    started = start_execution(aws, tracker, publisher, "flow", '{"order": 1}', "run-1", expect_model=deployed.model_id)
    record = tracker.instance(me(tracker), started.execution_id)
    assert (
        record is not None
        and record.state_count == 0
        and record.head == start_head(started.execution_id, deployed.model_id, started.instance_id)
    )
    # the published version ran, and the instance document says so
    assert started.version_arn == deployed.version_arn and started.transaction_hash is not None


def test_a_stale_expected_model_refuses_to_start_and_registers_nothing(aws, tracker, publisher):
    old = deploy_model(aws, tracker, "flow", text(FLOW), ROLE)
    new = deploy_model(aws, tracker, "flow", text({**FLOW, "Comment": "changed behind their backs"}))
    with pytest.raises(ModelMismatchError) as error:
        start_execution(aws, tracker, publisher, "flow", "{}", "run-stale", expect_model=old.model_id)
    assert str(error.value) == (
        f"state machine {new.version_arn} runs model {new.model_id}, not the expected {old.model_id}: refusing to start"
    )
    assert aws.client("stepfunctions").list_executions(stateMachineArn=old.state_machine_arn)["executions"] == []
    assert tracker.contract.InstanceRegistered.query("*", start_block=0).empty


def test_an_expected_model_that_is_not_registered(aws, tracker, publisher):
    sfn = aws.client("stepfunctions")
    sfn.create_state_machine(name="unregistered", definition=text(FLOW), roleArn=ROLE)
    model_id = sha256_hex(
        sfn.describe_state_machine(stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:unregistered")[
            "definition"
        ]
    )
    owner = me(tracker).lower()[2:]
    with pytest.raises(
        ModelNotRegisteredError,
        match=rf"^model {model_id} is not registered under 0x{owner} on the contract: run deploy_model first$",
    ):
        start_execution(aws, tracker, publisher, "unregistered", "{}", "run-x", expect_model=model_id)


def test_wait_registers_every_state_in_order_and_a_later_tracker_sends_nothing(aws, tracker, publisher, tmp_path):
    deployed = deploy_model(aws, tracker, "flow", text(FLOW), ROLE)
    started = start_execution(aws, tracker, publisher, "flow", "{}", "run-wait", expect_model=deployed.model_id)
    config = TrackConfig(poll_interval=0.2, state_dir=tmp_path / "state")
    summary = wait_for_execution(started, aws, tracker, publisher, config, timeout_s=30)
    assert execution_status(aws, started.execution_arn) == "SUCCEEDED"
    record = tracker.instance(me(tracker), started.execution_id)
    assert record.final and record.state_count == len(FLOW_STATES) == summary.states_registered
    protocol = json.loads((tmp_path / "protocol" / f"{started.instance_id}.json").read_text())
    names = [
        json.loads((tmp_path / "protocol" / "documents" / f"{e['state_hash']}.json").read_text())["state_name"]
        for e in protocol["instance_protocol"]
    ]
    # Parallel branches run concurrently: the history orders Left and Right as they happened
    assert names[:6] + sorted(names[6:8]) + names[8:] == FLOW_STATES
    later = track(TrackConfig(state_dir=tmp_path / "other-state"), HistorySource(aws, Selection()), tracker, publisher)
    assert later.transactions == 0 and later.executions == 1


def test_bad_definitions(aws, tracker):
    with pytest.raises(InvalidDefinitionError, match=r"^the definition is not valid JSON: Expecting"):
        deploy_model(aws, tracker, "broken", "{not json", ROLE)
    with pytest.raises(InvalidDefinitionError, match=r"^Step Functions rejected the definition: ASLParserException"):
        deploy_model(aws, tracker, "broken", '{"StartAt": "X", "States": {}}', ROLE)


def test_a_role_that_cannot_be_used(aws, tracker):
    with pytest.raises(RoleError, match=r"^the execution role cannot be used: Invalid Role Arn: 'not-a-role'$"):
        deploy_model(aws, tracker, "flow", text(FLOW), "not-a-role")


def test_an_execution_name_already_used(aws, tracker, publisher):
    deploy_model(aws, tracker, "flow", text(FLOW), ROLE)
    start_execution(aws, tracker, publisher, "flow", "{}", "once")
    with pytest.raises(ExecutionExistsError, match=r"an execution with that name already exists"):
        start_execution(aws, tracker, publisher, "flow", "{}", "once")


def test_input_that_is_not_json(aws, tracker, publisher):
    with pytest.raises(InvalidInputError, match=r"^the execution input is not valid JSON: "):
        start_execution(aws, tracker, publisher, "flow", "{oops", "bad-input")


def test_the_tracker_registers_the_definition_the_execution_ran_not_the_current_one(aws, tracker, publisher, tmp_path):
    """deploy_model v2, start_execution, deploy_model v3, track_execution: the model is v2's.

    (The emulation keeps each execution's definition as AWS does; moto alone would answer
    DescribeStateMachineForExecution with the machine's current definition.)"""
    import time

    slow = {
        "StartAt": "Hold",
        "States": {"Hold": {"Type": "Wait", "Seconds": 1, "Next": "Done"}, "Done": {"Type": "Succeed"}},
    }
    deploy_model(aws, tracker, "drift", text(FLOW), ROLE)
    v2 = deploy_model(aws, tracker, "drift", text(slow))
    started = start_execution(aws, tracker, publisher, "drift", "{}", "run-drift")
    v3 = deploy_model(aws, tracker, "drift", text({**slow, "Comment": "v3"}))
    assert len({v2.model_id, v3.model_id}) == 2 and started.model_id == v2.model_id
    sfn = aws.client("stepfunctions")
    while sfn.describe_execution(executionArn=started.execution_arn)["status"] == "RUNNING":
        time.sleep(0.05)
    summary = track(TrackConfig(state_dir=tmp_path / "state"), HistorySource(aws, Selection()), tracker, publisher)
    assert summary.instances_terminated == 1
    protocol = json.loads((tmp_path / "protocol" / f"{started.instance_id}.json").read_text())
    assert protocol["model_hash"] == v2.model_id
    instance = json.loads((tmp_path / "protocol" / "documents" / f"{started.instance_id}.json").read_text())
    assert instance["model_id"] == v2.model_id and instance["state_machine_version_arn"] == v2.version_arn


def test_an_unfunded_account_is_refused_before_anything_starts(aws, contract, accounts, publisher):
    from tracker.chain.contract import TrackerContract
    from tracker.errors import ChainError

    poor = accounts.generate_test_account()
    unfunded = TrackerContract(contract, poor)
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(name="flow", definition=text(FLOW), roleArn=ROLE, publish=True)
    with pytest.raises(ChainError) as error:
        start_execution(aws, unfunded, publisher, "flow", "{}", "run-poor")
    message = str(error.value)
    assert message.startswith(f"account {poor.address} has 0 wei; registering the execution needs up to ")
    assert message.endswith("wei and run this again")
    # nothing was started on AWS
    assert sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"] == []


def test_an_endpoint_that_does_not_run_state_machines_is_named(monkeypatch, tracker, publisher, tmp_path):
    """moto without execute_state_machine answers every execution with a canned history whose
    states its definition does not have; the tracker says so instead of registering it."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        sfn = session.client("stepfunctions")
        arn = sfn.create_state_machine(name="canned", definition=text(FLOW), roleArn=ROLE)["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, name="run-canned")["executionArn"]
        summary = track(
            TrackConfig(state_dir=tmp_path / "state"), HistorySource(session, Selection()), tracker, publisher
        )
    assert summary.transactions == 0 and [s.execution_arn for s in summary.skipped] == [execution]
    assert summary.skipped[0].reason.startswith(f"execution {execution} entered state ")
    assert summary.skipped[0].reason.endswith("enable stepfunctions.execute_state_machine)")


def test_an_alias_start_records_the_alias_and_the_version_it_routed_to(aws, tracker, publisher, tmp_path):
    """StartExecution of an alias runs one of its versions: the instance document names both."""
    from tracker.verify.content import InstanceContent, read_instance

    first = deploy_model(aws, tracker, "flow", text(FLOW), ROLE)
    deploy_model(aws, tracker, "flow", text({**FLOW, "Comment": "second version"}))
    sfn = aws.client("stepfunctions")
    alias = sfn.create_state_machine_alias(
        name="PROD", routingConfiguration=[{"stateMachineVersionArn": first.version_arn, "weight": 100}]
    )["stateMachineAliasArn"]
    started = start_execution(aws, tracker, publisher, alias, "{}", "via-alias", expect_model=first.model_id)
    assert (started.alias_arn, started.version_arn) == (alias, first.version_arn)
    assert started.state_machine_arn == first.state_machine_arn and started.model_id == first.model_id
    document = (tmp_path / "protocol" / "documents" / f"{started.instance_id}.json").read_bytes()
    facts = json.loads(document)
    assert facts["state_machine_alias_arn"] == alias and facts["state_machine_version_arn"] == first.version_arn
    content = read_instance(document)
    assert isinstance(content, InstanceContent) and content.alias_arn == alias
    summary = wait_for_execution(started, aws, tracker, publisher, TrackConfig(state_dir=tmp_path / "s"), 30)
    assert summary.states_registered == len(FLOW_STATES)
    assert tracker.instance(me(tracker), started.execution_id).final


def test_an_alias_routed_elsewhere_than_the_expected_model_is_refused_after_the_start(aws, tracker, publisher):
    first = deploy_model(aws, tracker, "flow", text(FLOW), ROLE)
    second = deploy_model(aws, tracker, "flow", text({**FLOW, "Comment": "second version"}))
    alias = aws.client("stepfunctions").create_state_machine_alias(
        name="NEXT", routingConfiguration=[{"stateMachineVersionArn": second.version_arn, "weight": 100}]
    )["stateMachineAliasArn"]
    with pytest.raises(ModelMismatchError, match=f"started on model {second.model_id}, not the expected"):
        start_execution(aws, tracker, publisher, alias, "{}", "routed", expect_model=first.model_id)
