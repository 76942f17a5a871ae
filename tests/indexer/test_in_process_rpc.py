"""`rpc_for` on ape's in-process test chain: the same reader and indexer, answered in process."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from tracker.chain.reader import ChainReader
from tracker.chain.rpc import InProcessRpc, JsonRpc, rpc_for
from tracker.indexer.engine import IndexConfig, index


@pytest.fixture
def in_process(chain):
    if getattr(chain.provider, "http_uri", None):
        pytest.skip("the session runs on a JSON-RPC node, not ape's in-process chain")
    return chain


def test_rpc_for_picks_the_layer_for_the_provider(in_process, anvil):
    assert isinstance(rpc_for(in_process.provider), InProcessRpc)

    class HttpProvider:
        http_uri = anvil.url

    assert isinstance(rpc_for(HttpProvider()), JsonRpc)


def test_index_the_in_process_chain(in_process, contract, owner, database_url, schema, db, label_id):
    execution, model, document = label_id("in-process-execution"), label_id("in-process-model"), label_id("doc")
    states = [label_id(f"in-process-{i}") for i in range(3)]
    receipt = contract.registerExecution(owner, execution, model, document, states, sender=owner)
    rpc = rpc_for(in_process.provider)
    config = IndexConfig(contract_address=contract.address, database_url=database_url, schema=schema)

    summary = index(config, rpc)

    assert summary.events == 1 + 1 + 3
    assert summary.chain_id == in_process.provider.chain_id
    rows = db.execute("SELECT state_id, seq, block_number FROM state ORDER BY seq").fetchall()
    assert [(bytes(s), q, b) for s, q, b in rows] == [(s, q, receipt.block_number) for q, s in enumerate(states)]
    fee = db.execute("SELECT gas_used, fee_wei, function FROM transaction").fetchone()
    assert fee[0] == receipt.gas_used and fee[1] > 0 and fee[2] == "registerExecution"


def test_in_process_logs_by_block_hash_and_topics(in_process, contract, owner, label_id):
    execution = label_id("in-process-topics")
    key = keccak(encode(["address", "bytes32"], [owner.address, execution]))
    receipt = contract.registerExecution(
        owner, execution, label_id("m"), label_id("d"), [label_id("a"), label_id("b")], sender=owner
    )
    reader = ChainReader(rpc_for(in_process.provider), bytes.fromhex(contract.address[2:]), lag_guard=64)
    head, _ = reader.head_and_header(None)
    end, logs = reader.logs(receipt.block_number, head)  # near the head: read block by block by hash
    assert end == head
    assert len(logs) == 4 and {log.block_number for log in logs} == {receipt.block_number}
    topic = logs[-1].topics[0]
    end, filtered = reader.logs(receipt.block_number, head, topics=[topic, key])
    assert [log.log_index for log in filtered] == [log.log_index for log in logs if log.topics[0] == topic]
    assert len(filtered) == 2
    assert reader.logs(receipt.block_number, head, topics=[topic, b"\x01" * 32])[1] == []
