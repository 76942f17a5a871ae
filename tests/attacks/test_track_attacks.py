"""The tracker against what a stranger, or one bad execution, can do: nothing stalls the others.

* A huge execution (12,400 states; Step Functions allows 25,000 history events) listed first is
  spread over several transactions within the gas budget, and the small one after it is
  registered too (v1 sent one 29.65M-gas transaction that reverted on every run).
* An execution whose record cannot be written (here: its instance was transferred away, so the
  contract refuses every write to its old key) is reported by name and skipped; the others of the
  poll are registered.
* A stranger anchoring the root the tracker is about to anchor (copied from the pending pool)
  changes nothing: the tracker settles only anchors of its own account, so its states end up
  under its own anchor.
"""

from __future__ import annotations

import pytest

from tracker.chain.contract import GAS_PER_STATE, Status, TrackerContract, instance_key
from tracker.chain.merkle import MerkleTree, state_leaf
from tracker.dev.synthetic import SyntheticExecutions
from tracker.publish.targets import DirectoryPublisher
from tracker.tracking.build import build_documents
from tracker.tracking.checkpoints import Checkpoint, CheckpointStore, PendingAnchor, RegisteredState, store_path
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import chain_identity, track


@pytest.fixture
def publisher(tmp_path) -> DirectoryPublisher:
    return DirectoryPublisher(tmp_path / "protocol", "https://localhost:8443")


def _record(tracker: TrackerContract, source: SyntheticExecutions, index: int):
    docs = build_documents(source.load(source.refs[index]))
    return docs, tracker.instance(str(tracker.sender.address), docs.execution_id)


@pytest.mark.anvil
def test_a_huge_execution_is_spread_over_transactions_and_stalls_nothing(chain, tracker, publisher, tmp_path):
    if chain.provider.name != "foundry":
        pytest.skip("12,400 states take minutes in ape's in-process EVM: run on anvil (marker anvil)")
    source = SyntheticExecutions([12_400, 3], "huge")
    config = TrackConfig(state_dir=tmp_path / "state", max_gas_per_tx=8_000_000)
    summary = track(config, source, tracker, publisher)
    big, big_record = _record(tracker, source, 0)
    _small, small_record = _record(tracker, source, 1)
    assert (big_record.state_count, big_record.status) == (12_400, Status.FINAL)
    assert big_record.head == big.head()
    assert (small_record.state_count, small_record.status) == (3, Status.FINAL)
    # no transaction over the budget: at least 12,400 x 2,444 gas / 8M per transaction
    assert summary.transactions >= (12_400 * GAS_PER_STATE) // 8_000_000
    assert summary.gas_used / summary.transactions < 8_000_000


def test_an_execution_the_contract_refuses_is_reported_and_the_others_registered(
    accounts, contract, tracker, publisher, tmp_path
):
    source = SyntheticExecutions([2, 2, 2], "refused")
    owner = str(tracker.sender.address)
    # the first execution is registered, then transferred to another account: its old key is
    # Moved for good, so every later write under it reverts InstanceIsMoved
    first, _ = _record(tracker, source, 0)
    tracker.send([tracker.register_execution_call(owner, first.execution_id, first.model_id, first.instance_id, [])])
    receiver = accounts[5]
    contract.proposeTransfer(bytes.fromhex(first.execution_id), receiver, sender=tracker.sender)
    contract.acceptTransfer(tracker.sender, bytes.fromhex(first.execution_id), sender=receiver)

    summary = track(TrackConfig(state_dir=tmp_path / "state"), source, tracker, publisher)
    assert [skipped.execution_arn for skipped in summary.skipped] == [source.refs[0].execution_arn]
    key = instance_key(owner, first.execution_id)
    assert summary.skipped[0].reason == f"terminate failed: InstanceIsMoved(key=0x{key})"
    for index in (1, 2):
        _docs, record = _record(tracker, source, index)
        assert (record.state_count, record.status) == (2, Status.FINAL)


def test_a_stranger_anchoring_the_trackers_root_first_changes_nothing(accounts, contract, tracker, publisher, tmp_path):
    source = SyntheticExecutions([3], "anchor-copy")
    docs = build_documents(source.load(source.refs[0]))
    state_dir = tmp_path / "state"
    me = str(tracker.sender.address).lower()[2:]
    # The tracker journalled this root and sent it; a bot copied it from the pending pool and got
    # mined first, and the tracker's own transaction never made it (the run died).
    leaves = [state_leaf(docs.execution_id, state_id, seq) for seq, state_id in enumerate(docs.state_ids)]
    tree = MerkleTree.build(leaves)
    stranger = TrackerContract(contract, accounts[6])
    stranger.send([stranger.anchor_states_call(tree.root, len(leaves))])
    store = CheckpointStore(
        store_path(state_dir, contract.chain_manager.chain_id, tracker.address), chain_identity(tracker)
    )
    journalled = [
        RegisteredState(state_id, seq, 0, "", 0, me, tree.root.hex(), [p.hex() for p in tree.proof(seq)])
        for seq, state_id in enumerate(docs.state_ids)
    ]
    arn = source.refs[0].execution_arn
    store.add_pending(PendingAnchor(tree.root.hex(), me, len(leaves), {arn: journalled}))
    store.commit([Checkpoint(arn, docs.execution_id, docs.model_id, docs.instance_id, "anchored")])
    store.close()

    summary = track(TrackConfig(mode="anchor", state_dir=state_dir), source, tracker, publisher)
    # the stranger's anchor is not ours: the tracker anchors the states itself
    assert len(summary.anchors) == 1 and summary.states_registered == 3
    root = bytes.fromhex(summary.anchors[0])
    for seq, state_id in enumerate(docs.state_ids):
        proof = [bytes.fromhex(p.hex()) for p in MerkleTree.build(leaves).proof(seq)]
        assert contract.verifyAnchoredState(
            tracker.sender.address, root, bytes.fromhex(docs.execution_id), bytes.fromhex(state_id), seq, proof
        )
    record = tracker.instance(str(tracker.sender.address), docs.execution_id)
    assert (record.state_count, record.status) == (3, Status.FINAL)
