"""Sending at real block times (anvil mining every second instead of on every transaction):
several transactions in flight, one stuck after a base-fee rise replaced with the same nonce,
one dropped from the pool re-sent, one removed by a reorganisation sent again, and every state
registered exactly once through all of it.

anvil stands in for a public chain here: `evm_setAutomine(false)` with interval mining, and its
own controls for what the network does to a pending transaction (`anvil_dropTransaction`,
`anvil_setNextBlockBaseFeePerGas`, `anvil_reorg`).
"""

from __future__ import annotations

import pytest

from tracker.chain.contract import TrackerContract
from tracker.chain.sending import TransactionPipeline
from tracker.dev.synthetic import SyntheticExecutions
from tracker.documents.ids import sha256_hex
from tracker.publish.targets import DirectoryPublisher
from tracker.tracking.build import build_documents
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track

pytestmark = pytest.mark.anvil


@pytest.fixture
def interval_mining(chain):
    """Blocks every second, as a public chain makes them (every 12 s), shortened for the test."""
    if chain.provider.name != "foundry":
        pytest.skip("needs anvil's mining controls (marker anvil)")
    request = chain.provider.make_request
    request("evm_setAutomine", [False])
    request("evm_setIntervalMining", [1])
    try:
        yield request
    finally:
        request("evm_setIntervalMining", [0])
        request("evm_setAutomine", [True])


def registered_seqs(contract) -> list[tuple[str, int]]:
    logs = contract.StateRegistered.query("*", start_block=0)
    return sorted((bytes(a["key"]).hex(), int(a["seq"])) for a in logs["event_arguments"])


def call(tracker: TrackerContract, label: str) -> list:
    owner = str(tracker.sender.address)
    x = sha256_hex(label)
    return [
        tracker.register_execution_call(
            owner, x, sha256_hex("m"), sha256_hex(label + " doc"), [sha256_hex(label + " s")]
        )
    ]


def test_several_transactions_share_blocks_instead_of_one_per_block(interval_mining, tracker, contract, tmp_path):
    source = SyntheticExecutions([20] * 12, "in-flight")
    publisher = DirectoryPublisher(tmp_path / "protocol")
    # a small gas budget makes this backlog several transactions; four go out at once
    config = TrackConfig(state_dir=tmp_path / "state", max_gas_per_tx=400_000, max_in_flight=4)
    summary = track(config, source, tracker, publisher)
    assert summary.transactions >= 6 and summary.states_registered == 240
    blocks = {int(log.block_number) for log in contract.StateRegistered.query("*", start_block=0).itertuples()}
    assert len(blocks) < summary.transactions  # more than one transaction per block
    seqs = registered_seqs(contract)
    assert len(seqs) == len(set(seqs)) == 240


def test_a_stuck_transaction_is_replaced_with_the_same_nonce(interval_mining, tracker, contract):
    pipeline = TransactionPipeline(tracker, stuck_after_s=2.0, poll_s=0.2)
    interval_mining("evm_setIntervalMining", [0])  # no block while the stage is set
    list(pipeline.submit(call(tracker, "stuck"), "stuck"))
    # after it was sent, the base fee jumps far above what it offers: it stays pending
    interval_mining("anvil_setNextBlockBaseFeePerGas", [hex(10**12)])
    interval_mining("evm_setIntervalMining", [1])
    confirmed = list(pipeline.drain())
    assert [token for token, _ in confirmed] == ["stuck"]
    assert pipeline.stats.replaced >= 1
    assert len(registered_seqs(contract)) == 1  # carried out once, by one of the versions


def test_a_dropped_transaction_is_sent_again(interval_mining, tracker, contract):
    pipeline = TransactionPipeline(tracker, stuck_after_s=60.0, poll_s=0.2)
    list(pipeline.submit(call(tracker, "dropped"), "dropped"))
    sent_hash = pipeline._pending[0].hashes[0]
    interval_mining("anvil_dropTransaction", ["0x" + sent_hash])
    confirmed = list(pipeline.drain())
    assert [token for token, _ in confirmed] == ["dropped"]
    assert pipeline.stats.resent >= 1
    assert len(registered_seqs(contract)) == 1


def test_with_confirmations_a_reorganised_transaction_counts_only_once_it_is_back(interval_mining, tracker, contract):
    pipeline = TransactionPipeline(tracker, confirmations=3, poll_s=0.2)
    list(pipeline.submit(call(tracker, "reorged"), "reorged"))
    entry = pipeline._pending[0]
    while entry.mined is None:
        list(pipeline.wait_one())
    # the block that held it is replaced by one without it, before it is three blocks deep
    interval_mining("anvil_reorg", [1, []])
    confirmed = list(pipeline.drain())
    assert [token for token, _ in confirmed] == ["reorged"]
    assert pipeline.stats.reorged >= 1 or pipeline.stats.resent >= 1
    assert len(registered_seqs(contract)) == 1


def test_the_tracker_at_block_times_registers_everything_once(interval_mining, tracker, contract, tmp_path):
    source = SyntheticExecutions([5, 5, 5], "block-times")
    publisher = DirectoryPublisher(tmp_path / "protocol")
    config = TrackConfig(state_dir=tmp_path / "state", max_in_flight=2, confirmations=2)
    summary = track(config, source, tracker, publisher)
    assert summary.states_registered == 15 and summary.instances_terminated == 3
    for ref in source.refs:
        docs = build_documents(source.load(ref))
        assert tracker.instance(str(tracker.sender.address), docs.execution_id).final
    assert len(registered_seqs(contract)) == 15


def test_a_send_the_provider_turns_away_keeps_its_nonce(interval_mining, chain, tracker, contract):
    """A hosted provider refuses a raw transaction with its rate limit (HTTP 429, after web3's
    own retries): the nonce stays taken and the transaction goes out again from the polls. Given
    up, it would leave a gap that holds every later transaction in the pool's queue for good."""
    from ape import networks
    from support.hosted_provider import ALCHEMY_THROUGHPUT_CU, HostedProvider, Rules

    # a raw transaction costs more than the budget ever holds: every one is turned away
    refusing = {**ALCHEMY_THROUGHPUT_CU, "eth_sendRawTransaction": 10**6}
    rules = Rules(compute_units_per_second=330, costs=refusing)
    with HostedProvider(chain.provider.uri, rules) as provider, networks.parse_network_choice(provider.url):
        pipeline = TransactionPipeline(tracker, poll_s=0.2)
        list(pipeline.submit(call(tracker, "turned away"), "turned away"))
        list(pipeline.submit(call(tracker, "behind it"), "behind it"))
        assert provider.counters.rate_limited >= 2 and pipeline.in_flight == 2
        rules.costs = dict(ALCHEMY_THROUGHPUT_CU)  # the budget admits them again
        confirmed = list(pipeline.drain())
    assert [token for token, _ in confirmed] == ["turned away", "behind it"]
    assert len(registered_seqs(contract)) == 2


def test_a_transaction_priced_out_is_replaced_before_the_next_block(interval_mining, tracker, contract):
    """A base-fee rise past what a pending transaction offers: the block being built shows that
    it cannot take the transaction, so it is replaced before that block is mined, not after the
    stuck-after bound (here longer than the test) or after a block came without it."""
    interval_mining("evm_setIntervalMining", [0])  # no block until the rise was noticed
    pipeline = TransactionPipeline(tracker, stuck_after_s=10**6, poll_s=0.1, watch_s=0.0)
    list(pipeline.submit(call(tracker, "priced out"), "priced out"))
    list(pipeline.wait_one())  # looked at once at the old fees
    head = int(interval_mining("eth_blockNumber", []), 16)
    interval_mining("anvil_setNextBlockBaseFeePerGas", [hex(10**12)])
    list(pipeline.wait_one())
    assert pipeline.stats.replaced == 1
    building = interval_mining("eth_getBlockByNumber", ["pending", False])
    assert building["transactions"] == ["0x" + pipeline._pending[0].hashes[-1]]  # the new version
    assert int(interval_mining("eth_blockNumber", []), 16) == head
    interval_mining("evm_setIntervalMining", [1])
    confirmed = list(pipeline.drain())
    assert [token for token, _ in confirmed] == ["priced out"]
    assert len(registered_seqs(contract)) == 1


def test_a_dropped_transaction_is_back_before_the_next_block(interval_mining, tracker, contract):
    """Dropping a transaction from the pool leaves a gap that holds every later nonce (anvil drops
    those too). Noticed only when the next block came without them, all of them would wait a
    block more; the block being built shows the gap, and the next block takes the three."""
    interval_mining("evm_setIntervalMining", [0])  # no block until the drop was noticed
    pipeline = TransactionPipeline(tracker, poll_s=0.1, watch_s=0.0)
    for label in ("first", "dropped", "behind it"):
        list(pipeline.submit(call(tracker, label), label))
    list(pipeline.wait_one())  # looked at once, all three pending
    head = int(interval_mining("eth_blockNumber", []), 16)
    interval_mining("anvil_dropTransaction", ["0x" + pipeline._pending[1].hashes[0]])
    list(pipeline.wait_one())
    assert pipeline.stats.resent == 2
    building = interval_mining("eth_getBlockByNumber", ["pending", False])
    assert len(building["transactions"]) == 3  # all three are in the block being built again
    assert int(interval_mining("eth_blockNumber", []), 16) == head  # and no block was mined meanwhile
    interval_mining("evm_setIntervalMining", [1])
    confirmed = list(pipeline.drain())
    assert [token for token, _ in confirmed] == ["first", "dropped", "behind it"]
    assert len({sent.block_number for _, sent in confirmed}) == 1
    assert len(registered_seqs(contract)) == 3
