"""The history source into the contract: documents, protocols, idempotency, anchor mode, follow mode."""

import json

import pytest
from tracking_helpers import FAILING_STATES, SUCCEEDING_STATES, branch_order_ignored, run_execution

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.chain.contract import Status
from tracker.documents.ids import id_to_bytes32, sha256_hex
from tracker.tracking.build import build_documents
from tracker.tracking.checkpoints import CheckpointStore, store_path
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import chain_identity, track


def documents_of(source, execution_arn):
    ref = next(r for r in source.list_executions() if r.execution_arn == execution_arn)
    return build_documents(source.load(ref))


def record_of(tracker, docs):
    """The instance as the chain holds it under the tracker's own account."""
    return tracker.instance(str(tracker.sender.address), docs.execution_id)


def anchored(tracker, entry, docs, seq=None):
    """Whether the contract proves a protocol entry under the tracker's own anchors."""
    return tracker.contract.verifyAnchoredState(
        tracker.sender.address,
        id_to_bytes32(entry["merkle_root"]),
        id_to_bytes32(docs.execution_id),
        id_to_bytes32(entry["state_hash"]),
        entry["seq"] if seq is None else seq,
        [id_to_bytes32(p) for p in entry["merkle_proof"]],
    )


def test_history_source_registers_and_publishes_everything(
    aws, machine, tracker, publisher, state_dir, read_protocol, tmp_path
):
    ok = run_execution(aws, machine, "ok-1", {"ok": True})
    bad = run_execution(aws, machine, "bad-1", {"ok": False})
    source = HistorySource(aws, Selection((machine,)))
    summary = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert summary.executions == 2
    assert summary.states_registered == len(SUCCEEDING_STATES) + len(FAILING_STATES)
    # the success is final; the failure is an attempt's end that Step Functions may still redrive
    assert summary.transactions == 1 and summary.instances_terminated == 1 and summary.attempts_ended == 1

    definition = aws.client("stepfunctions").describe_state_machine(stateMachineArn=machine)["definition"]
    for arn, names, status in ((ok, SUCCEEDING_STATES, "SUCCEEDED"), (bad, FAILING_STATES, "FAILED")):
        docs = documents_of(source, arn)
        # the published model-id rule: SHA-256 of the definition text DescribeStateMachine returns
        assert docs.model_id == sha256_hex(definition)
        assert (tmp_path / "protocol" / "documents" / f"{docs.model_id}.json").read_text() == definition
        assert branch_order_ignored([json.loads(d.content)["state_name"] for d in docs.states]) == names
        record = record_of(tracker, docs)
        assert record.state_count == len(names) and record.attempts == 1
        assert record.status == (Status.FINAL if status == "SUCCEEDED" else Status.OPEN)
        assert record.head == docs.head()
        protocol = read_protocol(docs.instance_id)
        assert [e["state_hash"] for e in protocol["instance_protocol"]] == docs.state_ids
        assert [e["seq"] for e in protocol["instance_protocol"]] == list(range(len(names)))
        assert protocol["model_hash"] == docs.model_id and protocol["accumulator_head"] == record.head
        assert protocol["state_count"] == len(names)
        entry = protocol["instance_protocol"][0]
        assert entry["event_type"] == "Register State" and len(entry["transaction_hash"]) == 64
        assert entry["client_address"] == tracker.sender.address.lower()[2:]
        assert entry["state_data"] == f"https://localhost:8443/documents/{entry['state_hash']}.json"
        end = json.loads((tmp_path / "protocol" / "documents" / f"{protocol['end_hash']}.json").read_text())
        assert end["status"] == status and end["state_count"] == len(names) and end["attempt"] == 0
        assert protocol["final"] is (status == "SUCCEEDED")
        assert [(a["attempt"], a["final"], a["end_hash"]) for a in protocol["attempts"]] == [
            (0, status == "SUCCEEDED", protocol["end_hash"])
        ]
        assert protocol["execution_id"] == docs.execution_id and protocol["owner"] == entry["client_address"]
        for entry in protocol["instance_protocol"]:
            body = (tmp_path / "protocol" / "documents" / f"{entry['state_hash']}.json").read_bytes()
            assert sha256_hex(body) == entry["state_hash"]
    failed_end = json.loads(
        (
            tmp_path
            / "protocol"
            / "documents"
            / f"{read_protocol(documents_of(source, bad).instance_id)['end_hash']}.json"
        ).read_text()
    )
    assert failed_end["error"] == "OrderRejected"

    again = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert again.transactions == 0 and again.states_registered == 0


def test_state_documents_are_hash_chained_and_carry_digests_unless_data_is_included(aws, machine):
    arn = run_execution(aws, machine, "chain-1", {"ok": True, "secret": "s3cr3t"})
    source = HistorySource(aws, Selection(execution_arn=arn))
    plain = documents_of(source, arn)
    states = [json.loads(d.content) for d in plain.states]
    assert states[0]["previous_state_id"] == ""
    assert all(states[i]["previous_state_id"] == plain.states[i - 1].id for i in range(1, len(states)))
    assert all("input" not in s and len(s["input_sha256"]) == 64 for s in states)
    assert "s3cr3t" not in b"".join(d.content for d in plain.states).decode()
    with_data = build_documents(source.load(source.list_executions()[0]), include_data=True)
    assert "s3cr3t" in json.loads(with_data.states[0].content)["input"]
    assert with_data.instance_id == plain.instance_id  # the instance never depends on the option


def test_rerun_without_checkpoints_sends_nothing_and_recovers_the_protocol(
    aws, machine, tracker, publisher, tmp_path, read_protocol
):
    arn = run_execution(aws, machine, "again-1", {"ok": True})
    source = HistorySource(aws, Selection((machine,)))
    track(TrackConfig(state_dir=tmp_path / "first"), source, tracker, publisher)
    instance_id = documents_of(source, arn).instance_id
    original = read_protocol(instance_id)
    (tmp_path / "protocol" / f"{instance_id}.json").unlink()
    # A run that lost its local state (as a process killed after sending would): the chain decides.
    summary = track(TrackConfig(state_dir=tmp_path / "second"), source, tracker, publisher)
    assert summary.transactions == 0 and summary.states_registered == 0
    assert summary.states_recovered == len(SUCCEEDING_STATES)
    assert read_protocol(instance_id) == original


def test_anchor_mode_puts_a_poll_under_one_root_and_proofs_check_against_the_contract(
    aws, machine, tracker, publisher, state_dir, read_protocol
):
    arns = [run_execution(aws, machine, f"anchor-{i}", {"ok": i % 2 == 0}) for i in range(3)]
    source = HistorySource(aws, Selection((machine,)))
    summary = track(TrackConfig(mode="anchor", state_dir=state_dir), source, tracker, publisher)
    assert summary.transactions == 1 and len(summary.anchors) == 1
    root = summary.anchors[0]
    expected = 2 * len(SUCCEEDING_STATES) + len(FAILING_STATES)
    assert summary.states_registered == expected
    assert tracker.anchor(str(tracker.sender.address), root).leaf_count == expected
    for arn in arns:
        docs = documents_of(source, arn)
        record = record_of(tracker, docs)
        # every attempt end pins the count; the anchored head is carried by the end's event
        assert record.state_count == len(docs.states) and record.attempts == 1 and record.head is None
        protocol = read_protocol(docs.instance_id)
        assert protocol["end_hash"] == docs.attempts[-1].end.id and protocol["mode"] == "anchored"
        assert protocol["attempts"][0]["accumulator_head"] == docs.head()
        for entry in protocol["instance_protocol"]:
            assert entry["merkle_root"] == root
            assert anchored(tracker, entry, docs)
        # a wrong seq must not verify
        entry = protocol["instance_protocol"][0]
        assert not anchored(tracker, entry, docs, seq=entry["seq"] + 1)
    assert track(TrackConfig(mode="anchor", state_dir=state_dir), source, tracker, publisher).transactions == 0


def test_anchor_sent_but_not_checkpointed_is_settled_from_the_chain(
    aws, machine, tracker, publisher, state_dir, read_protocol
):
    arn = run_execution(aws, machine, "journal-1", {"ok": True})
    source = HistorySource(aws, Selection((machine,)))
    track(TrackConfig(mode="anchor", state_dir=state_dir), source, tracker, publisher)
    instance_id = documents_of(source, arn).instance_id
    original = read_protocol(instance_id)
    # Rewind the checkpoint to "anchor journalled, transaction sent, checkpoint not written".
    path = store_path(state_dir, tracker.contract.chain_manager.chain_id, tracker.address)
    store = CheckpointStore(path, chain_identity(tracker))
    from tracker.tracking.checkpoints import Checkpoint, PendingAnchor, RegisteredState

    checkpoint = store.load_all()[arn]
    states = [
        RegisteredState(s.state_id, s.seq, 0, "", 0, s.client_address, s.merkle_root, s.merkle_proof)
        for s in checkpoint.states
    ]
    root = original["instance_protocol"][0]["merkle_root"]
    store.add_pending(PendingAnchor(root, str(tracker.sender.address), len(states), {arn: states}))
    rewound = Checkpoint(
        arn, checkpoint.execution_id, checkpoint.model_id, checkpoint.instance_id, "anchored", instance_registered=True
    )
    store.commit([rewound])
    store.close()
    summary = track(TrackConfig(mode="anchor", state_dir=state_dir), source, tracker, publisher)
    assert summary.transactions == 0
    assert read_protocol(instance_id) == original


def test_follow_mode_picks_up_a_new_execution(aws, machine, tracker, publisher, state_dir):
    run_execution(aws, machine, "follow-1", {"ok": True})
    started = []

    def on_progress(summary):
        if summary.polls == 1 and not started:
            started.append(run_execution(aws, machine, "follow-2", {"ok": False}))

    source = HistorySource(aws, Selection((machine,)))
    config = TrackConfig(state_dir=state_dir, follow=True, poll_interval=0.2, max_polls=3)
    summary = track(config, source, tracker, publisher, on_progress=on_progress)
    assert summary.polls == 3 and summary.executions == 2
    assert summary.states_registered == len(SUCCEEDING_STATES) + len(FAILING_STATES)
    assert summary.transactions == 2
    assert record_of(tracker, documents_of(source, started[0])).attempts == 1


def test_a_running_execution_registers_its_exited_states_then_the_rest(aws, tracker, publisher, state_dir):
    from tracking_helpers import create_machine

    slow = create_machine(
        aws,
        "slow",
        {
            "StartAt": "First",
            "States": {
                "First": {"Type": "Pass", "Next": "Hold"},
                "Hold": {"Type": "Wait", "Seconds": 3, "Next": "Last"},
                "Last": {"Type": "Succeed"},
            },
        },
    )
    arn = run_execution(aws, slow, "slow-1", {}, wait=False)
    source = HistorySource(aws, Selection((slow,)))
    import time

    deadline = time.monotonic() + 5
    while not documents_of(source, arn).states and time.monotonic() < deadline:
        time.sleep(0.05)
    first = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert first.states_registered == 1 and first.pending_executions == 1  # "Hold" has not exited yet
    run_execution(aws, slow, "slow-2", {}, wait=True)
    while aws.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "RUNNING":
        time.sleep(0.05)
    second = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    record = record_of(tracker, documents_of(source, arn))
    assert record.state_count == 3 and record.final
    assert second.states_registered == 2 + 3


def test_publishing_to_s3(aws, machine, tracker, state_dir):
    from tracker.publish.targets import open_target

    aws.client("s3").create_bucket(Bucket="protocols")
    arn = run_execution(aws, machine, "s3-1", {"ok": True})
    publisher = open_target("s3://protocols/tracker", "https://protocols.example.org", aws)
    source = HistorySource(aws, Selection((machine,)))
    summary = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    docs = documents_of(source, arn)
    s3 = aws.client("s3")
    protocol = json.loads(s3.get_object(Bucket="protocols", Key=f"tracker/{docs.instance_id}.json")["Body"].read())
    assert summary.protocols_written == [f"{docs.instance_id}.json"]
    assert protocol["instance_data"] == f"https://protocols.example.org/documents/{docs.instance_id}.json"
    for entry in protocol["instance_protocol"]:
        body = s3.get_object(Bucket="protocols", Key=f"tracker/documents/{entry['state_hash']}.json")["Body"].read()
        assert sha256_hex(body) == entry["state_hash"]


def test_a_publish_target_that_is_neither_a_directory_nor_s3():
    from tracker.errors import ConfigurationError
    from tracker.publish.targets import open_target

    with pytest.raises(
        ConfigurationError, match=r"^publish target 'ftp://x/y': expected a directory or s3://bucket/prefix$"
    ):
        open_target("ftp://x/y")


def test_one_transaction_per_state_mode_matches_the_prototype(
    aws, machine, tracker, publisher, state_dir, read_protocol
):
    arn = run_execution(aws, machine, "per-state-1", {"ok": False})
    source = HistorySource(aws, Selection((machine,)))
    summary = track(TrackConfig(mode="per-state", state_dir=state_dir), source, tracker, publisher)
    assert summary.transactions == len(FAILING_STATES) + 1  # one per state, then the attempt's end
    docs = documents_of(source, arn)
    entries = read_protocol(docs.instance_id)["instance_protocol"]
    assert [e["state_hash"] for e in entries] == docs.state_ids
    assert len({e["transaction_hash"] for e in entries}) == len(FAILING_STATES)
    assert record_of(tracker, docs).attempts == 1


def test_anchor_mode_across_polls_adds_a_root_per_poll(aws, tracker, publisher, state_dir, read_protocol):
    import time

    from tracking_helpers import create_machine

    slow = create_machine(
        aws,
        "slow-anchor",
        {
            "StartAt": "First",
            "States": {
                "First": {"Type": "Pass", "Next": "Hold"},
                "Hold": {"Type": "Wait", "Seconds": 3, "Next": "Last"},
                "Last": {"Type": "Succeed"},
            },
        },
    )
    arn = run_execution(aws, slow, "slow-anchor-1", {}, wait=False)
    source = HistorySource(aws, Selection((slow,)))
    deadline = time.monotonic() + 5
    while not documents_of(source, arn).states and time.monotonic() < deadline:
        time.sleep(0.05)
    first = track(TrackConfig(mode="anchor", state_dir=state_dir), source, tracker, publisher)
    assert first.states_registered == 1 and len(first.anchors) == 1
    while aws.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "RUNNING":
        time.sleep(0.05)
    second = track(TrackConfig(mode="anchor", state_dir=state_dir), source, tracker, publisher)
    assert second.states_registered == 2 and second.instances_terminated == 1
    docs = documents_of(source, arn)
    entries = read_protocol(docs.instance_id)["instance_protocol"]
    assert [e["merkle_root"] for e in entries] == [first.anchors[0], second.anchors[0], second.anchors[0]]
    for entry in entries:
        assert anchored(tracker, entry, docs)
