"""The CloudWatch Logs source: out-of-order and repeated delivery, held events, bad log input.

moto does not write Step Functions execution events to CloudWatch Logs, so the log group is fed
with real PutLogEvents calls carrying AWS's documented message format, built from the history of
an execution moto really ran."""

import json
import random
import time

import boto3
import pytest
from moto.core import set_initial_no_auth_action_count
from tracking_helpers import (
    ORDER_MACHINE,
    SUCCEEDING_STATES,
    branch_order_ignored,
    create_machine,
    history_as_log_messages,
    put_messages,
    run_execution,
)

from tracker.aws.errors import AccessDeniedError, LogGroupNotFoundError, MalformedLogMessageError
from tracker.aws.executions import Selection
from tracker.aws.logs import LogsSource
from tracker.chain.contract import instance_key
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track

GROUP = "/aws/vendedlogs/states/orders-express"


@pytest.fixture
def express(aws):
    """An Express machine logging to GROUP at level ALL, and a Standard twin that runs the same definition."""
    logs = aws.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    group_arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}:*"
    machine = create_machine(
        aws,
        "orders-express",
        ORDER_MACHINE,
        type="EXPRESS",
        loggingConfiguration={
            "level": "ALL",
            "includeExecutionData": True,
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": group_arn}}],
        },
    )
    twin = create_machine(aws, "orders-twin")
    return machine, twin


def express_arn(name: str) -> str:
    return f"arn:aws:states:us-east-1:123456789012:express:orders-express:{name}:4f6c2b0e-1d7a-4a57-9a49-3c1b6f0e2a11"


def test_logs_out_of_order_and_duplicated_events_are_ordered_held_and_registered_once(
    aws, express, tracker, publisher, state_dir, read_protocol
):
    machine, twin = express
    arn = express_arn("x-1")
    messages = history_as_log_messages(aws, run_execution(aws, twin, "x-1", {"ok": True}), arn)
    rng = random.Random(7)
    gap = 12  # an event in the middle of the Map iterations arrives last
    first = [m for m in messages if json.loads(m)["id"] != str(gap)]
    first += rng.sample(first, 6)  # CloudWatch may deliver an event more than once
    rng.shuffle(first)
    now = int(time.time() * 1000)
    put_messages(aws, GROUP, "stream-a", first[: len(first) // 2], now)
    put_messages(aws, GROUP, "stream-b", first[len(first) // 2 :], now)

    source = LogsSource(aws, Selection((machine,)))  # the log group comes from the logging configuration
    held = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert held.held_events == len(messages) - gap  # all but the gap and the 11 before it
    assert held.pending_executions == 1 and held.instances_terminated == 0
    assert 0 < held.states_registered < len(SUCCEEDING_STATES)

    put_messages(aws, GROUP, "stream-c", [messages[gap - 1], messages[0], messages[gap - 1]], now + 1000)
    done = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert done.held_events == 0 and done.instances_terminated == 1
    assert held.states_registered + done.states_registered == len(SUCCEEDING_STATES)

    ref = source.list_executions()[0]
    from tracker.tracking.build import build_documents

    docs = build_documents(source.load(ref))
    assert branch_order_ignored([json.loads(d.content)["state_name"] for d in docs.states]) == SUCCEEDING_STATES
    record = tracker.instance(str(tracker.sender.address), docs.execution_id)
    assert record.state_count == len(SUCCEEDING_STATES) and record.final
    assert [e["state_hash"] for e in read_protocol(docs.instance_id)["instance_protocol"]] == docs.state_ids
    instance = json.loads(docs.instance.content)
    assert instance["execution_arn"] == arn and instance["name"] == "x-1"
    # StateRegistered logs for the instance: each state exactly once
    logs = tracker.contract.StateRegistered.query("*", start_block=0)
    key = instance_key(str(tracker.sender.address), docs.execution_id)
    mine = logs[[bytes(k).hex() == key for k in logs["event_arguments"].map(lambda a: a["key"])]]
    assert sorted(int(a["seq"]) for a in mine["event_arguments"]) == list(range(len(SUCCEEDING_STATES)))


def test_a_malformed_log_message_is_one_clear_error(aws, express, tracker, publisher, state_dir):
    machine, _ = express
    put_messages(aws, GROUP, "stream-bad", ["this is not json"], int(time.time() * 1000))
    with pytest.raises(MalformedLogMessageError) as error:
        track(TrackConfig(state_dir=state_dir), LogsSource(aws, Selection((machine,))), tracker, publisher)
    assert str(error.value).startswith(f"malformed log message (log group {GROUP}, stream stream-bad, event ")
    assert str(error.value).endswith("not JSON: 'this is not json'")


def test_a_log_message_without_the_documented_fields_is_rejected(aws, express, tracker, publisher, state_dir):
    machine, _ = express
    put_messages(
        aws, GROUP, "stream-odd", [json.dumps({"id": "1", "type": "ExecutionStarted"})], int(time.time() * 1000)
    )
    with pytest.raises(MalformedLogMessageError, match=r"lacks previous_event_id, event_timestamp, execution_arn$"):
        track(TrackConfig(state_dir=state_dir), LogsSource(aws, Selection((machine,))), tracker, publisher)


def test_a_log_group_that_does_not_exist(aws, express, tracker, publisher, state_dir):
    machine, _ = express
    with pytest.raises(LogGroupNotFoundError, match=r"^log group /no/such/group does not exist$"):
        track(
            TrackConfig(state_dir=state_dir),
            LogsSource(aws, Selection((machine,)), "/no/such/group"),
            tracker,
            publisher,
        )


def test_access_denied_names_the_refused_call(aws, express, tracker, publisher, state_dir):
    machine, _ = express
    iam = aws.client("iam")
    iam.create_user(UserName="no-permissions")
    key = iam.create_access_key(UserName="no-permissions")["AccessKey"]
    session = boto3.session.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1"
    )

    @set_initial_no_auth_action_count(0)
    def attempt():
        track(TrackConfig(state_dir=state_dir), LogsSource(session, Selection((machine,)), GROUP), tracker, publisher)

    with pytest.raises(AccessDeniedError) as error:
        attempt()
    assert str(error.value) == (
        f"access denied: AWS refused FilterLogEvents on log group {GROUP}; the credentials lack that permission"
    )
