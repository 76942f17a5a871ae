"""A reorg made on anvil (snapshot, revert, other transactions) is rolled back and re-indexed."""

from __future__ import annotations

from tracker.indexer.engine import IndexConfig, index


def _instances(db) -> set[bytes]:
    return {bytes(row[0]) for row in db.execute("SELECT instance_id FROM instance_registration")}


def test_reorg_is_rolled_back_and_reindexed(anvil, deployed, database_url, schema, db, label_id):
    config = IndexConfig(
        contract_address=deployed.address, database_url=database_url, schema=schema, from_block=deployed.deploy_block
    )
    model = label_id("reorg-model")
    deployed.send("registerExecution", model, label_id("kept"), [label_id("kept-0"), label_id("kept-1")])
    fork_block = anvil.web3.eth.block_number
    snapshot = anvil.snapshot()
    for name in ("orphan-a", "orphan-b"):
        deployed.send("registerExecution", model, label_id(name), [label_id(f"{name}-{i}") for i in range(3)])
    first = index(config, anvil.rpc())
    assert _instances(db) == {label_id("kept"), label_id("orphan-a"), label_id("orphan-b")}
    assert first.reorgs == 0

    anvil.revert(snapshot)
    # Another branch: different transactions, and longer than the orphaned one.
    for name in ("branch-a", "branch-b", "branch-c"):
        deployed.send("registerExecution", model, label_id(name), [label_id(f"{name}-0")], sender=1)
    second = index(config, anvil.rpc())

    assert second.reorgs == 1
    assert second.rolled_back_to == [fork_block]
    assert _instances(db) == {label_id("kept"), label_id("branch-a"), label_id("branch-b"), label_id("branch-c")}
    assert db.execute("SELECT count(*) FROM state_registration").fetchone()[0] == 2 + 3
    counts = dict(db.execute("SELECT event, count(*) FROM fact_log GROUP BY event").fetchall())
    assert counts == {"ModelRegistered": 1, "InstanceRegistered": 4, "StateRegistered": 5}
    # Every stored block and transaction is on the chain now; nothing of the orphaned branch is left.
    for number, block_hash in db.execute("SELECT block_number, block_hash FROM block"):
        assert bytes(block_hash) == bytes(anvil.web3.eth.get_block(number).hash)
    for (tx_hash,) in db.execute("SELECT tx_hash FROM transaction"):
        assert anvil.web3.eth.get_transaction_receipt(bytes(tx_hash)).status == 1
    head = anvil.web3.eth.get_block("latest")
    assert db.execute("SELECT block_number, block_hash FROM cursor").fetchone() == (head.number, bytes(head.hash))


def test_chain_shorter_than_the_cursor_is_a_reorg(anvil, deployed, database_url, schema, db, label_id):
    config = IndexConfig(
        contract_address=deployed.address, database_url=database_url, schema=schema, from_block=deployed.deploy_block
    )
    deployed.send("registerModel", label_id("short-model"))
    snapshot = anvil.snapshot()
    deployed.send("registerModel", label_id("orphan-model"))
    anvil.mine(3)
    index(config, anvil.rpc())
    assert db.execute("SELECT count(*) FROM model_registration").fetchone()[0] == 2

    anvil.revert(snapshot)
    summary = index(config, anvil.rpc())

    assert summary.reorgs == 1
    assert [bytes(r[0]) for r in db.execute("SELECT model_id FROM model_registration")] == [label_id("short-model")]
    assert db.execute("SELECT block_number FROM cursor").fetchone()[0] == anvil.web3.eth.block_number
