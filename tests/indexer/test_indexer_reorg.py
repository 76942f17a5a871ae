"""A reorg made on anvil (snapshot, revert, other transactions) is rolled back and re-indexed, and
leaves exactly what indexing the new chain from scratch gives: no fact, no dimension row and no
rollup of the orphaned blocks survives."""

from __future__ import annotations

import psycopg
from psycopg import sql
from support.tables import snapshot

from tracker.indexer.engine import IndexConfig, index
from tracker.indexer.store import use_schema


def _config(deployed, database_url, schema) -> IndexConfig:
    return IndexConfig(
        contract_address=deployed.address, database_url=database_url, schema=schema, from_block=deployed.deploy_block
    )


def _assert_equals_a_fresh_index(anvil, deployed, database_url, schema, db) -> None:
    fresh = f"{schema}_fresh"
    try:
        index(_config(deployed, database_url, fresh), anvil.rpc())
        with psycopg.connect(database_url, autocommit=True) as other:
            use_schema(other, fresh)
            expected = snapshot(other)
        found = snapshot(db)
        # The batch ends kept in `block` depend on how the run went; every block with an event is there.
        blocks = {row[1] for row in found["block"]}
        assert {row[1] for row in expected["block"]} - {deployed.deploy_block - 1} <= blocks
        for table in expected:
            if table != "block":
                assert found[table] == expected[table], table
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(fresh)))


def test_reorg_is_rolled_back_and_reindexed(anvil, deployed, register_execution, database_url, schema, db, label_id):
    config = _config(deployed, database_url, schema)
    register_execution(deployed, "kept", 2, model="reorg-model")
    deployed.send("registerClientId", "kept-id")
    fork_block = anvil.web3.eth.block_number
    snapshot_id = anvil.snapshot()
    # The orphaned branch: new models, instances, states, an operator, a client id, an anchor.
    for name in ("orphan-a", "orphan-b"):
        register_execution(deployed, name, 3, model=f"model-{name}")
    deployed.send("setOperator", deployed.accounts[3], True)
    deployed.send("registerClientId", "orphaned-id")
    deployed.send("anchorStates", label_id("orphan-root"), 4, sender=2)
    first = index(config, anvil.rpc())
    assert first.reorgs == 0
    assert db.execute("SELECT count(*) FROM model").fetchone()[0] == 3

    anvil.revert(snapshot_id)
    # Another branch: different transactions from another account, and longer than the orphaned one.
    for name in ("branch-a", "branch-b", "branch-c"):
        register_execution(deployed, name, 1, sender=1, model="reorg-model")
    second = index(config, anvil.rpc())

    assert second.reorgs == 1
    assert second.rolled_back_to == [fork_block]
    # The orphaned branch's models are gone; reorg-model is left, registered by two publishers now.
    assert db.execute("SELECT publishers, instances FROM model").fetchall() == [(2, 4)]
    assert db.execute("SELECT count(*) FROM state").fetchone()[0] == 2 + 3
    assert db.execute("SELECT count(*) FROM operator").fetchone()[0] == 0
    assert db.execute("SELECT client_id_text FROM account WHERE client_id IS NOT NULL").fetchall() == [("kept-id",)]
    orphaned = deployed.address_of(2)
    assert db.execute("SELECT count(*) FROM account WHERE address = %s", [orphaned]).fetchone()[0] == 0
    for number, block_hash in db.execute("SELECT block_number, block_hash FROM block"):
        assert bytes(block_hash) == bytes(anvil.web3.eth.get_block(number).hash)
    head = anvil.web3.eth.get_block("latest")
    assert db.execute("SELECT block_number, block_hash FROM cursor").fetchone() == (head.number, bytes(head.hash))
    _assert_equals_a_fresh_index(anvil, deployed, database_url, schema, db)


def test_chain_shorter_than_the_cursor_is_a_reorg(anvil, deployed, database_url, schema, db, label_id):
    config = _config(deployed, database_url, schema)
    owner = deployed.accounts[0]
    deployed.send("registerModel", owner, label_id("short-model"))
    snapshot_id = anvil.snapshot()
    deployed.send("registerModel", owner, label_id("orphan-model"))
    anvil.mine(3)
    index(config, anvil.rpc())
    assert db.execute("SELECT count(*) FROM model_registration").fetchone()[0] == 2

    anvil.revert(snapshot_id)
    summary = index(config, anvil.rpc())

    assert summary.reorgs == 1
    assert [bytes(r[0]) for r in db.execute("SELECT model_id FROM model")] == [label_id("short-model")]
    assert db.execute("SELECT block_number FROM cursor").fetchone()[0] == anvil.web3.eth.block_number
    _assert_equals_a_fresh_index(anvil, deployed, database_url, schema, db)
