"""Bad input: one clear line naming the cause, and the next run completes whatever was left."""

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from tracking_helpers import SUCCEEDING_STATES, run_execution

from tracker.aws.errors import (
    MalformedArnError,
    MalformedDefinitionError,
    NoStateMachinesError,
    StateMachineNotFoundError,
)
from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.chain.contract import TrackerContract
from tracker.documents.ids import sha256_hex
from tracker.errors import ContractNotFoundError
from tracker.retry import RetryPolicy, is_transient, with_retry
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track
from tracker.tracking.senders import InsufficientFundsError

MISSING_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:missing"


def test_malformed_state_machine_arn():
    with pytest.raises(MalformedArnError) as error:
        Selection(("arn:aws:states:us-east-1:orders",))
    assert str(error.value) == (
        "malformed state machine ARN 'arn:aws:states:us-east-1:orders' "
        "(expected arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)"
    )


def test_malformed_execution_arn():
    with pytest.raises(MalformedArnError, match=r"^malformed execution ARN 'exec-1' \(expected "):
        Selection(execution_arn="exec-1")


def test_unknown_state_machine(aws, tracker, publisher, state_dir):
    with pytest.raises(StateMachineNotFoundError) as error:
        track(TrackConfig(state_dir=state_dir), HistorySource(aws, Selection((MISSING_MACHINE,))), tracker, publisher)
    assert str(error.value) == f"state machine {MISSING_MACHINE} does not exist (StateMachineDoesNotExist)"


def test_unknown_execution(aws, machine, tracker, publisher, state_dir):
    arn = "arn:aws:states:us-east-1:123456789012:execution:orders:never-ran"
    with pytest.raises(StateMachineNotFoundError, match=rf"^execution {arn} does not exist \(ExecutionDoesNotExist\)$"):
        track(TrackConfig(state_dir=state_dir), HistorySource(aws, Selection(execution_arn=arn)), tracker, publisher)


def test_a_region_without_state_machines(aws, machine, tracker, publisher, state_dir):
    import boto3

    empty_region = boto3.session.Session(region_name="eu-north-1")
    with pytest.raises(NoStateMachinesError, match=r"^no state machines in region eu-north-1$"):
        track(TrackConfig(state_dir=state_dir), HistorySource(empty_region, Selection()), tracker, publisher)


def test_a_malformed_definition(aws, machine, tracker, publisher, state_dir):
    run_execution(aws, machine, "def-1", {"ok": True})
    # The service validates definitions on create, so the stored one is damaged behind its back,
    # as a broken or hostile endpoint could answer.
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    backend = stepfunctions_parser_backends["123456789012"]["us-east-1"]
    execution = backend.describe_state_machine(machine).executions[0]
    execution.emulated_definition = '{"Comment": "half'
    with pytest.raises(MalformedDefinitionError) as error:
        track(TrackConfig(state_dir=state_dir), HistorySource(aws, Selection((machine,))), tracker, publisher)
    assert str(error.value).startswith(f"state machine {machine} has a malformed definition: not JSON (")


def test_no_contract_deployed_at_the_address(owner):
    address = "0x00000000000000000000000000000000000000aa"
    with pytest.raises(ContractNotFoundError) as error:
        TrackerContract.at(address, owner)
    assert str(error.value).startswith("no InstanceTracker at 0x00000000000000000000000000000000000000AA on chain id ")


def test_an_account_without_funds_stops_then_the_next_run_completes(
    aws, machine, contract, owner, accounts, publisher, state_dir
):
    poor = accounts.generate_test_account()
    if poor.balance:
        owner.transfer(poor, 0)  # keeps the account known to the chain
        poor.transfer(owner, poor.balance - 21_000 * poor.provider.gas_price * 2, gas_price=poor.provider.gas_price)
    run_execution(aws, machine, "poor-1", {"ok": True})
    source = HistorySource(aws, Selection((machine,)))
    tracker = TrackerContract(contract, poor)
    with pytest.raises(InsufficientFundsError) as error:
        track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert str(error.value) == (
        f"account 0x{poor.address.lower()[2:]} has insufficient funds for gas on chain id {tracker.contract.chain_manager.chain_id}: "
        "fund it and rerun"
    )
    owner.transfer(poor, "1 ether")
    summary = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert summary.states_registered == len(SUCCEEDING_STATES) and summary.instances_terminated == 1


def test_transient_faults_are_retried_and_permanent_ones_are_not():
    reset = ConnectionResetError(104, "Connection reset by peer")
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetExecutionHistory")
    throttled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetExecutionHistory"
    )
    assert is_transient(reset)
    assert is_transient(ValueError("nonce too low: next nonce 5, tx nonce 4"))
    assert not is_transient(denied)
    assert not is_transient(ValueError("SequenceMismatch(instance=0x01, expected=3, given=0)"))
    # AWS faults were retried by botocore already: repeating the poll would multiply its attempts
    assert not is_transient(throttled)
    assert not is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))

    attempts = []
    pauses = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise reset
        return "done"

    assert with_retry(flaky, RetryPolicy(attempts=5, base_delay=0.5, max_delay=1.0), sleep=pauses.append) == "done"
    assert len(attempts) == 3 and len(pauses) == 2 and all(0 <= p <= 1.0 for p in pauses)
    with pytest.raises(ClientError):
        with_retry(lambda: (_ for _ in ()).throw(denied), RetryPolicy(attempts=5), sleep=pauses.append)
    assert len(pauses) == 2


def test_states_registered_with_other_documents_are_refused(aws, machine, tracker, publisher, tmp_path):
    run_execution(aws, machine, "diverge-1", {"ok": True})
    source = HistorySource(aws, Selection((machine,)))
    track(TrackConfig(state_dir=tmp_path / "a"), source, tracker, publisher)
    summary = track(TrackConfig(state_dir=tmp_path / "b", include_data=True), source, tracker, publisher)
    # reported by name and skipped, never sent: the chain's trace is not a prefix of this one
    assert summary.transactions == 0
    assert [(s.execution_arn, s.reason) for s in summary.skipped] == [
        (
            "arn:aws:states:us-east-1:123456789012:execution:orders:diverge-1",
            f"instance of arn:aws:states:us-east-1:123456789012:execution:orders:diverge-1 has "
            f"{len(SUCCEEDING_STATES)} states on chain that differ from the ones built from its history "
            "(tracked with another --include-data, or another model or instance document)",
        )
    ]


def test_another_accounts_registration_of_the_same_execution_changes_nothing(
    aws, machine, contract, tracker, other, publisher, state_dir
):
    from tracker.tracking.build import build_documents

    run_execution(aws, machine, "theirs-1", {"ok": True})
    source = HistorySource(aws, Selection((machine,)))
    docs = build_documents(source.load(source.list_executions()[0]))
    theirs = TrackerContract(contract, other)
    forged = [sha256_hex(f"forged {n}") for n in range(3)]
    theirs.send(
        [theirs.register_execution_call(str(other.address), docs.execution_id, docs.model_id, docs.instance_id, forged)]
    )
    # registered first by a stranger under its own key: ours is untouched and registers in full
    summary = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert summary.states_registered == len(SUCCEEDING_STATES) and not summary.skipped
    mine = tracker.instance(str(tracker.sender.address), docs.execution_id)
    stranger = tracker.instance(str(other.address), docs.execution_id)
    assert mine.final and mine.head == docs.head() and stranger.state_count == 3 and stranger.head != mine.head


def test_tracking_for_an_owner_needs_its_approval(aws, machine, contract, tracker, other, publisher, state_dir):
    from tracker.errors import ConfigurationError
    from tracker.tracking.build import build_documents

    run_execution(aws, machine, "owned-1", {"ok": True})
    source = HistorySource(aws, Selection((machine,)))
    config = TrackConfig(state_dir=state_dir, owner=str(other.address))
    with pytest.raises(ConfigurationError) as error:
        track(config, source, tracker, publisher)
    assert str(error.value) == (
        f"0x{tracker.sender.address.lower()[2:]} is not an operator of 0x{other.address.lower()[2:]} on "
        f"{tracker.address}: the owner approves it with setOperator (or track without --owner)"
    )
    contract.setOperator(tracker.sender, True, sender=other)
    summary = track(config, source, tracker, publisher)
    docs = build_documents(source.load(source.list_executions()[0]))
    assert summary.states_registered == len(SUCCEEDING_STATES)
    assert tracker.instance(str(other.address), docs.execution_id).final
    assert tracker.instance(str(tracker.sender.address), docs.execution_id) is None


def test_a_since_that_is_neither_a_duration_nor_a_time():
    import importlib.util
    from pathlib import Path

    from tracker.errors import ConfigurationError

    path = Path(__file__).resolve().parents[2] / "scripts" / "track_execution.py"
    spec = importlib.util.spec_from_file_location("track_execution_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.since_millis("2026-01-02T03:04:05Z") == 1767323045000
    with pytest.raises(
        ConfigurationError, match=r"^--since 'yesterday': expected a duration like 30m, 2h, 7d or an ISO time$"
    ):
        script.since_millis("yesterday")


class _RawBody:
    """The raw HTTP body botocore reads an answer from."""

    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_kwargs):
        yield self.body


def _throttling_answers(count: int):
    """A `before-send` hook answering the first `count` calls as AWS does when it throttles
    (HTTP 400, `ThrottlingException` in the JSON body), before the request leaves the process."""
    from botocore.awsrequest import AWSResponse

    sent = []

    def answer(request, **_kwargs):
        sent.append(request.url)
        if len(sent) <= count:
            body = b'{"__type":"com.amazonaws.swf.service.v2.model#ThrottlingException","message":"Rate exceeded"}'
            headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "throttled"}
            return AWSResponse(request.url, 400, headers, _RawBody(body))
        return None

    return answer, sent


def test_a_throttled_aws_call_is_retried_by_botocore_and_the_poll_completes(
    aws, machine, tracker, publisher, state_dir
):
    run_execution(aws, machine, "throttled-1", {"ok": True})
    source = HistorySource(aws, Selection((machine,)), RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05))
    answer, sent = _throttling_answers(2)
    source.sfn.client.meta.events.register("before-send.sfn.GetExecutionHistory", answer)
    config = TrackConfig(state_dir=state_dir, retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05))
    summary = track(config, source, tracker, publisher)
    # two throttled answers, then the real one: retried inside botocore, not by repeating the poll
    assert len(sent) == 3 and summary.retries == 0
    assert summary.states_registered == len(SUCCEEDING_STATES)


def test_aws_throttling_past_every_retry_is_one_line(aws, machine, tracker, publisher, state_dir):
    from tracker.aws.errors import AwsThrottledError

    run_execution(aws, machine, "throttled-2", {"ok": True})
    source = HistorySource(aws, Selection((machine,)), RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05))
    answer, sent = _throttling_answers(100)
    source.sfn.client.meta.events.register("before-send.sfn.GetExecutionHistory", answer)
    config = TrackConfig(state_dir=state_dir, retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05))
    with pytest.raises(AwsThrottledError) as raised:
        track(config, source, tracker, publisher)
    assert str(raised.value) == (
        f"AWS throttled GetExecutionHistory on execution {machine.replace('stateMachine', 'execution')}:throttled-2"
        " after every retry: Rate exceeded"
    )
    assert len(sent) == 3  # the policy's attempts, and no poll-level repetition on top
