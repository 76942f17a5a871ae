"""Every event lands in its tables; the views answer; a rerun changes nothing; schemas migrate."""

from __future__ import annotations

import gc
import threading
from importlib import resources

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from support.tables import NATURAL, snapshot

from tracker.indexer.engine import INDEXING_GC_THRESHOLD, IndexConfig, index, report
from tracker.indexer.store import use_schema


def config_for(deployed, database_url, schema, **overrides) -> IndexConfig:
    return IndexConfig(contract_address=deployed.address, database_url=database_url, schema=schema, **overrides)


def test_every_event_lands_in_its_tables(anvil, deployed, produce_every_event, database_url, schema, db):
    story = produce_every_event(deployed)

    summary = index(config_for(deployed, database_url, schema), anvil.rpc())

    assert summary.events == story.event_count
    assert summary.skipped_foreign == 0
    assert dict(db.execute("SELECT event, count(*) FROM event_log GROUP BY event").fetchall()) == story.counts
    owner, newcomer, operator = (deployed.address_of(i) for i in range(3))
    rows = db.execute(
        "SELECT k.key, s.seq, s.state_id FROM state s JOIN instance_key k USING (key_sk) "
        "JOIN instance i ON i.instance_sk = s.instance_sk WHERE i.execution = %s ORDER BY s.seq",
        [story.execution],
    ).fetchall()
    assert [(bytes(k), q, bytes(s)) for k, q, s in rows] == [(story.key, q, s) for q, s in enumerate(story.states)]
    instance = db.execute(
        "SELECT registrant, owner, current_key, mode, state_count, attempts, final, end_document, keys, transitions "
        "FROM instance WHERE execution = %s",
        [story.execution],
    ).fetchone()
    assert instance == (owner, newcomer, story.moved_key, 0, 5, 2, True, story.end_documents[1], 2, 1)
    ends = db.execute(
        "SELECT final, attempt, end_document, state_count FROM attempt_end ORDER BY block_number"
    ).fetchall()
    assert ends[:2] == [(False, 0, story.end_documents[0], 4), (True, 1, story.end_documents[1], 5)]
    anchored = db.execute(
        "SELECT registrant, mode, state_count, final, (SELECT added_states FROM attempt_end e "
        "WHERE e.instance_sk = i.instance_sk) FROM instance i WHERE execution = %s",
        [story.anchored_execution],
    ).fetchone()
    assert anchored == (owner, 1, 7, True, 7)
    assert db.execute("SELECT pre_state, post_state, pre_seq, post_seq FROM transition").fetchone() == (
        story.states[1],
        story.states[2],
        1,
        2,
    )
    assert db.execute("SELECT from_owner, to_owner FROM transfer").fetchone() == (owner, newcomer)
    assert db.execute(
        "SELECT key, moved_block IS NOT NULL, pending_owner FROM instance_key WHERE key = %s", [story.key]
    ).fetchone() == (story.key, True, None)
    assert db.execute("SELECT submitter, root, leaf_count FROM anchor").fetchone() == (operator, story.root, 7)
    cert = db.execute("SELECT account, fingerprint, octet_length(signature) FROM certificate_registration").fetchone()
    assert cert == (owner, story.fingerprint, 65)
    assert db.execute("SELECT owner, operator, approved FROM operator").fetchone() == (owner, operator, True)
    assert db.execute("SELECT client_id, client_id_text FROM account WHERE address = %s", [owner]).fetchone() == (
        b"acme-tracker",
        "acme-tracker",
    )
    fee_ok = db.execute("SELECT bool_and(fee_wei = gas_used * effective_gas_price AND gas_used > 0) FROM transaction")
    assert fee_ok.fetchone()[0] is True
    functions = dict(db.execute("SELECT function, transactions FROM function_stats").fetchall())
    assert functions["registerExecution"] == 2 and functions["closeAnchored"] == 1
    cursor = db.execute("SELECT block_number FROM cursor").fetchone()[0]
    assert cursor == anvil.web3.eth.block_number


def test_views_give_protocol_and_aggregates(anvil, deployed, produce_every_event, database_url, schema, db):
    story = produce_every_event(deployed)
    config = config_for(deployed, database_url, schema)
    index(config, anvil.rpc())

    result = report(config, anvil.web3.eth.chain_id, instance_id=story.execution.hex())

    states = [row for row in result.protocol if row["entry"] == "state"]
    assert [row["state_id"] for row in states] == [s.hex() for s in story.states]
    assert [int(row["seq"]) for row in states] == [0, 1, 2, 3, 4]
    assert [row["instance_key"] for row in states] == [story.key.hex()] * 5
    ends = [(row["entry"], int(row["seq"]), row["end_document"]) for row in result.protocol if row["entry"] != "state"]
    assert ends == [("attempt end", 4, story.end_documents[0].hex()), ("final end", 5, story.end_documents[1].hex())]
    first = states[0]
    assert first["timestamp"] == anvil.web3.eth.get_block(first["block_number"]).timestamp
    assert first["client_address"] == deployed.accounts[0][2:].lower()
    assert first["transaction_hash"] == story.execution_tx.hex().removeprefix("0x")
    # The protocol is found by the instance key as well, also by the key it moved to.
    assert report(config, anvil.web3.eth.chain_id, instance_id=story.moved_key.hex()).protocol == result.protocol

    by_model = {row["model_id"]: row for row in result.models}
    model = by_model[story.model.hex()]
    assert (model["instances"], model["final_instances"], model["anchored_instances"], model["open_instances"]) == (
        2,
        2,
        1,
        0,
    )
    assert (model["direct_states"], model["anchored_states"], model["states"]) == (5, 7, 12)
    by_client = {row["client_address"]: row for row in result.clients}
    owner_row = by_client[deployed.accounts[0][2:].lower()]
    assert owner_row["client_id"] == "acme-tracker"
    assert (owner_row["instances"], owner_row["states"], owner_row["terminations"], owner_row["operators"]) == (
        2,
        12,
        2,
        1,
    )
    operator_row = by_client[deployed.accounts[2][2:].lower()]
    assert (operator_row["anchors"], operator_row["anchored_leaves"], operator_row["states"]) == (1, 7, 0)
    assert sum(day["states"] for day in result.days) == 6 + 7
    assert {row["function"] for row in result.functions} >= {"registerExecution", "terminate", "closeAnchored"}
    assert [(row["submitter"], row["anchors"]) for row in result.anchors] == [(deployed.accounts[2][2:].lower(), 1)]


def test_rerun_and_overlapping_ranges_change_nothing(anvil, deployed, produce_every_event, database_url, schema, db):
    produce_every_event(deployed)
    config = config_for(deployed, database_url, schema)
    first = index(config, anvil.rpc())
    before = snapshot(db)

    again = index(config, anvil.rpc())
    assert again.events == 0 and again.batches == 0

    # Forget the cursor: the same range is loaded again, replacing what it loaded before.
    db.execute("UPDATE cursor SET block_number = %s, block_hash = NULL", [deployed.deploy_block - 1])
    replay = index(config, anvil.rpc())
    assert replay.events == first.events
    assert snapshot(db) == before


def test_migrations_are_recorded_and_run_once(anvil, deployed, database_url, schema, db):
    config = config_for(deployed, database_url, schema)
    first = index(config, anvil.rpc())
    second = index(config, anvil.rpc())
    assert first.migrations_applied == [1, 2, 3, 4, 5, 15, 16]
    assert second.migrations_applied == []
    assert [row[0] for row in db.execute("SELECT version FROM schema_migration ORDER BY version")] == [
        1,
        2,
        3,
        4,
        5,
        15,
        16,
    ]


def test_a_v1_schema_with_rows_migrates(anvil, deployed, register_execution, database_url, schema, db):
    # A schema the v1 indexer created and filled: its migrations, a contract, a cursor and rows.
    migrations = resources.files("tracker.indexer").joinpath("sql")
    with psycopg.connect(database_url) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        use_schema(connection, schema)
        connection.execute(
            "CREATE TABLE schema_migration (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name in ((1, "star_schema"), (2, "views")):
            connection.execute(migrations.joinpath(f"{version:04d}_{name}.sql").read_text().encode())
            connection.execute("INSERT INTO schema_migration (version, name) VALUES (%s, %s)", [version, name])
        connection.execute("INSERT INTO contract (chain_id, address) VALUES (31337, %s)", [b"\x01" * 20])
        connection.execute("INSERT INTO cursor (contract_id, block_number) VALUES (1, 1000)")
        connection.execute("INSERT INTO model VALUES (%s)", [b"\x02" * 32])
        connection.execute("INSERT INTO client VALUES (%s, 'a v1 client')", [b"\x03" * 20])
    register_execution(deployed, "after-migration", 3)

    summary = index(config_for(deployed, database_url, schema), anvil.rpc())

    assert summary.migrations_applied == [3, 4, 5, 15, 16]
    assert summary.events == 1 + 1 + 3
    assert db.execute("SELECT count(*) FROM state").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM contract").fetchone()[0] == 2  # ids kept, v1 rows gone
    assert db.execute("SELECT to_regclass('client'), to_regclass('state_registration')").fetchone() == (None, None)


def test_small_batches_and_block_bounds(anvil, deployed, produce_every_event, database_url, schema, db):
    story = produce_every_event(deployed)
    head = anvil.web3.eth.block_number
    middle = story.execution_block + 3
    config = config_for(
        deployed,
        database_url,
        schema,
        from_block=deployed.deploy_block,
        to_block=middle,
        batch_blocks=1,
        max_batch_logs=1,
    )
    partial = index(config, anvil.rpc())
    assert partial.last_block == middle
    assert db.execute("SELECT block_number FROM cursor").fetchone()[0] == middle
    assert db.execute("SELECT max(block_number) FROM event_log").fetchone()[0] == middle

    rest = index(config_for(deployed, database_url, schema, batch_blocks=1), anvil.rpc())
    assert rest.last_block == head
    assert partial.events + rest.events == story.event_count
    whole = f"{schema}_whole"
    try:
        index(config_for(deployed, database_url, whole), anvil.rpc())
        with psycopg.connect(database_url, autocommit=True) as other:
            use_schema(other, whole)
            # Batch by batch, every row (rollups included) is what one load gives; only the batch ends
            # kept in `block` differ.
            tables = tuple(t for t in NATURAL if t != "block")
            assert snapshot(db, tables) == snapshot(other, tables)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(whole)))


def test_confirmations_stay_behind_head(anvil, deployed, produce_every_event, database_url, schema, db):
    confirmations = 2
    produce_every_event(deployed)
    head = anvil.web3.eth.block_number
    summary = index(config_for(deployed, database_url, schema, confirmations=confirmations), anvil.rpc())
    assert summary.last_block == head - confirmations
    assert db.execute("SELECT block_number FROM cursor").fetchone()[0] == head - confirmations


def test_two_contracts_share_one_schema(anvil, deployed, deploy_tracker, register_execution, database_url, schema, db):
    second = deploy_tracker()
    register_execution(deployed, "first", 1, model="shared-model")
    register_execution(second, "second", 2, model="shared-model")
    first_summary = index(config_for(deployed, database_url, schema), anvil.rpc())
    second_summary = index(config_for(second, database_url, schema), anvil.rpc())

    assert (first_summary.events, second_summary.events) == (3, 4)
    per_contract = db.execute(
        "SELECT encode(c.address, 'hex'), count(*) FROM event_log f JOIN contract c USING (contract_id) "
        "GROUP BY c.address ORDER BY 2"
    ).fetchall()
    assert per_contract == [(deployed.address[2:].lower(), 3), (second.address[2:].lower(), 4)]
    assert db.execute("SELECT count(*) FROM model").fetchone()[0] == 2  # one per contract
    assert db.execute("SELECT count(*) FROM cursor").fetchone()[0] == 2
    chain_id = anvil.web3.eth.chain_id
    second_report = report(config_for(second, database_url, schema), chain_id)
    assert [(m["instances"], m["states"]) for m in second_report.models] == [(1, 2)]
    assert [(c["transactions"], c["instances"], c["states"]) for c in second_report.clients] == [(1, 1, 2)]


def test_a_plain_role_indexes(anvil, deployed, produce_every_event, database_url, schema, db):
    # No superuser needed: a role that may create a schema in the database.
    role = f"{schema}_role"
    with psycopg.connect(database_url, autocommit=True) as admin:
        database = admin.info.dbname
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(role))
        )
    try:
        story = produce_every_event(deployed)
        url = make_conninfo(**{**conninfo_to_dict(database_url), "user": role})
        summary = index(config_for(deployed, url, schema), anvil.rpc())
        assert summary.events == story.event_count
        assert dict(db.execute("SELECT event, count(*) FROM event_log GROUP BY event").fetchall()) == story.counts
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_connects_through_libpq_variables(anvil, deployed, database_url, schema, db, monkeypatch, label_id):
    settings = conninfo_to_dict(database_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for variable, key in (("PGHOST", "host"), ("PGPORT", "port"), ("PGUSER", "user"), ("PGDATABASE", "dbname")):
        if settings.get(key):
            monkeypatch.setenv(variable, str(settings[key]))
    deployed.send("registerModel", deployed.accounts[0], label_id("libpq-model"))
    summary = index(IndexConfig(contract_address=deployed.address, schema=schema), anvil.rpc())
    assert summary.events == 1
    assert db.execute("SELECT count(*) FROM model_registration").fetchone()[0] == 1


def test_two_chains_share_one_schema(anvil, deployed, second_chain, register_execution, database_url, schema, db):
    register_execution(deployed, "on-31337", 1, model="chain-model")
    register_execution(second_chain, "on-4242", 2, model="chain-model")
    index(config_for(deployed, database_url, schema), anvil.rpc())
    index(config_for(second_chain, database_url, schema), second_chain.anvil.rpc())

    rows = db.execute(
        "SELECT c.chain_id, count(*) FROM state s JOIN contract c USING (contract_id) "
        "GROUP BY c.chain_id ORDER BY c.chain_id"
    ).fetchall()
    assert rows == [(4242, 2), (31337, 1)]
    assert db.execute("SELECT count(DISTINCT contract_id) FROM block").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM cursor").fetchone()[0] == 2


def test_two_indexers_of_one_contract_at_once(anvil, deployed, register_execution, database_url, schema, db):
    for number in range(8):
        register_execution(deployed, f"race-{number}", 5, model="race-model")
    config = config_for(
        deployed, database_url, schema, from_block=deployed.deploy_block, batch_blocks=1, max_batch_logs=1
    )
    index(config_for(deployed, database_url, schema, to_block=deployed.deploy_block), anvil.rpc())  # migrate once
    summaries = []
    workers = [threading.Thread(target=lambda: summaries.append(index(config, anvil.rpc()))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert len(summaries) == 2
    assert sum(s.events for s in summaries) == 1 + 8 * 6  # each batch loaded by exactly one of them
    assert db.execute("SELECT count(*) FROM state").fetchone()[0] == 8 * 5
    assert db.execute("SELECT count(*) FROM event_log").fetchone()[0] == 1 + 8 * 6
    assert db.execute("SELECT instances, direct_states FROM model").fetchone() == (8, 40)


def test_the_collector_runs_less_often_only_while_indexing(anvil, deployed, register_execution, database_url, schema):
    """The run raises the garbage collector's first threshold for itself and gives the process
    back its own, also when the run fails."""
    register_execution(deployed, "collector", 3)
    before = gc.get_threshold()
    seen: list[int] = []
    config = config_for(deployed, database_url, schema, from_block=deployed.deploy_block)
    summary = index(config, anvil.rpc(), on_batch=lambda _: seen.append(gc.get_threshold()[0]))
    assert summary.events > 0 and seen and set(seen) == {INDEXING_GC_THRESHOLD}
    assert gc.get_threshold() == before

    def fail(_report: object) -> None:
        raise RuntimeError("the caller's callback failed")

    again = config_for(deployed, database_url, f"{schema}_again", from_block=deployed.deploy_block)
    try:
        with pytest.raises(RuntimeError, match="callback failed"):
            index(again, anvil.rpc(), on_batch=fail)
        assert gc.get_threshold() == before
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(f"{schema}_again")))
