"""Every event lands in its tables; the views answer; a rerun changes nothing."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tracker.indexer.engine import IndexConfig, index, report
from tracker.indexer.store import Store, migrate


def config_for(deployed, database_url, schema, **overrides) -> IndexConfig:
    return IndexConfig(contract_address=deployed.address, database_url=database_url, schema=schema, **overrides)


def test_every_event_lands_in_its_tables(anvil, deployed, produce_every_event, database_url, schema, db):
    story = produce_every_event(deployed)

    summary = index(config_for(deployed, database_url, schema), anvil.rpc())

    assert summary.events == story.event_count
    assert summary.skipped_foreign == summary.skipped_undecodable == 0
    counts = dict(db.execute("SELECT event, count(*) FROM fact_log GROUP BY event").fetchall())
    assert counts == story.counts
    assert db.execute("SELECT count(*) FROM model").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM instance").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM state").fetchone()[0] == 5
    owner, other = (bytes.fromhex(a[2:].lower()) for a in deployed.accounts[:2])
    rows = db.execute("SELECT instance_id, state_id, seq FROM state_registration ORDER BY instance_id, seq").fetchall()
    assert [(bytes(i), bytes(s), q) for i, s, q in rows if bytes(i) == story.instance] == [
        (story.instance, state, seq) for seq, state in enumerate(story.states)
    ]
    transition = db.execute(
        "SELECT pre_state_id, post_state_id, pre_seq, post_seq FROM transition_registration"
    ).fetchone()
    assert (bytes(transition[0]), bytes(transition[1]), transition[2], transition[3]) == (
        story.states[1],
        story.states[2],
        1,
        2,
    )
    end = db.execute("SELECT instance_id, end_document_id, state_count FROM termination").fetchone()
    assert (bytes(end[0]), bytes(end[1]), end[2]) == (story.instance, story.end_document, 4)
    assert db.execute("SELECT root, leaf_count FROM anchor").fetchone() == (story.root, 7)
    cert = db.execute("SELECT account, fingerprint, octet_length(signature) FROM certificate_registration").fetchone()
    assert (bytes(cert[0]), bytes(cert[1]), cert[2]) == (owner, story.fingerprint, 65)
    assert db.execute("SELECT from_owner, to_owner FROM instance_transfer").fetchone() == (owner, other)
    assert db.execute("SELECT owner, operator, approved FROM operator_change").fetchone() == (
        owner,
        bytes.fromhex(deployed.accounts[2][2:].lower()),
        True,
    )
    assert db.execute("SELECT client_id FROM client WHERE address = %s", [owner]).fetchone() == ("acme-tracker",)
    fee_ok = db.execute("SELECT bool_and(fee_wei = gas_used * effective_gas_price AND gas_used > 0) FROM transaction")
    assert fee_ok.fetchone()[0] is True
    cursor = db.execute("SELECT block_number FROM cursor").fetchone()[0]
    assert cursor == anvil.web3.eth.block_number


def test_views_give_protocol_and_aggregates(anvil, deployed, produce_every_event, database_url, schema, db):
    story = produce_every_event(deployed)
    config = config_for(deployed, database_url, schema)
    index(config, anvil.rpc())

    result = report(config, anvil.web3.eth.chain_id, instance_id=story.instance.hex())

    assert [row["state_id"] for row in result.protocol] == [s.hex() for s in story.states]
    assert [row["seq"] for row in result.protocol] == [0, 1, 2, 3]
    first = result.protocol[0]
    block = anvil.web3.eth.get_block(first["block_number"])
    assert first["timestamp"] == block.timestamp
    assert first["client_address"] == deployed.accounts[0][2:].lower()
    assert first["transaction_hash"] == story.execution_tx.hex().removeprefix("0x")
    assert len(result.models) == 1
    model = result.models[0]
    assert (model["model_id"], model["instances"], model["terminated_instances"], model["states"]) == (
        story.model.hex(),
        2,
        1,
        5,
    )
    assert model["max_duration"] >= model["min_duration"] >= timedelta(0)
    by_client = {row["client_address"]: row for row in result.clients}
    owner_row = by_client[deployed.accounts[0][2:].lower()]
    assert owner_row["client_id"] == "acme-tracker"
    assert (owner_row["models"], owner_row["instances"], owner_row["states"]) == (1, 1, 4)
    gas = sum(anvil.web3.eth.get_transaction_receipt(h).gasUsed for h in story.owner_txs)
    assert owner_row["gas_used"] == gas
    assert sum(day["states"] for day in result.days) == 5


def test_rerun_and_overlapping_ranges_change_nothing(anvil, deployed, produce_every_event, database_url, schema, db):
    produce_every_event(deployed)
    config = config_for(deployed, database_url, schema)
    first = index(config, anvil.rpc())
    snapshot = db.execute("SELECT event, count(*) FROM fact_log GROUP BY event ORDER BY event").fetchall()

    again = index(config, anvil.rpc())
    assert again.events == 0 and again.batches == 0

    # Forget the cursor: the same range is loaded again and conflicts away.
    db.execute("UPDATE cursor SET block_number = %s, block_hash = NULL", [deployed.deploy_block - 1])
    replay = index(config, anvil.rpc())
    assert replay.events == first.events
    assert db.execute("SELECT event, count(*) FROM fact_log GROUP BY event ORDER BY event").fetchall() == snapshot
    for table in ("block", "transaction", "model", "instance", "state", "client"):
        query = sql.SQL("SELECT count(*) = count(DISTINCT t) FROM {} t").format(sql.Identifier(table))
        assert db.execute(query).fetchone()[0] is True


def test_migrations_are_recorded_and_run_once(anvil, deployed, database_url, schema, db):
    config = config_for(deployed, database_url, schema)
    first = index(config, anvil.rpc())
    second = index(config, anvil.rpc())
    assert first.migrations_applied == [1, 2]
    assert second.migrations_applied == []
    assert [row[0] for row in db.execute("SELECT version FROM schema_migration ORDER BY version")] == [1, 2]


def test_small_batches_and_block_bounds(anvil, deployed, produce_every_event, database_url, schema, db):
    story = produce_every_event(deployed)
    head = anvil.web3.eth.block_number
    middle = story.execution_block
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
    assert db.execute("SELECT max(block_number) FROM fact_log").fetchone()[0] == middle

    rest = index(config_for(deployed, database_url, schema, batch_blocks=1), anvil.rpc())
    assert rest.last_block == head
    assert partial.events + rest.events == story.event_count


def test_confirmations_stay_behind_head(anvil, deployed, produce_every_event, database_url, schema, db):
    confirmations = 2
    produce_every_event(deployed)
    head = anvil.web3.eth.block_number
    summary = index(config_for(deployed, database_url, schema, confirmations=confirmations), anvil.rpc())
    assert summary.last_block == head - confirmations
    assert db.execute("SELECT block_number FROM cursor").fetchone()[0] == head - confirmations


def test_two_contracts_share_one_schema(anvil, deployed, deploy_tracker, database_url, schema, db, label_id):
    second = deploy_tracker()
    deployed.send("registerExecution", label_id("shared-model"), label_id("first-instance"), [label_id("s1")])
    second.send(
        "registerExecution", label_id("shared-model"), label_id("second-instance"), [label_id("s2"), label_id("s3")]
    )
    first_summary = index(config_for(deployed, database_url, schema), anvil.rpc())
    second_summary = index(config_for(second, database_url, schema), anvil.rpc())

    assert (first_summary.events, second_summary.events) == (3, 4)
    per_contract = db.execute(
        "SELECT encode(c.address, 'hex'), count(*) FROM fact_log f JOIN contract c USING (contract_id) "
        "GROUP BY c.address ORDER BY 2"
    ).fetchall()
    assert per_contract == [(deployed.address[2:].lower(), 3), (second.address[2:].lower(), 4)]
    assert db.execute("SELECT count(*) FROM model").fetchone()[0] == 1  # one dimension row, two facts
    assert db.execute("SELECT count(*) FROM cursor").fetchone()[0] == 2
    chain_id = anvil.web3.eth.chain_id
    second_report = report(config_for(second, database_url, schema), chain_id)
    assert [(m["instances"], m["states"]) for m in second_report.models] == [(1, 2)]
    assert [(c["transactions"], c["instances"], c["states"]) for c in second_report.clients] == [(1, 1, 2)]


def test_role_without_replication_privilege_keeps_row_triggers(
    anvil, deployed, produce_every_event, database_url, schema, db
):
    # A plain role may not set session_replication_role: Postgres's own per-row checks then run.
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
        with psycopg.connect(url) as connection:
            migrate(connection, schema)
            assert Store(connection, schema, 1, b"\x01" * 20).set_based_checks is False
        with psycopg.connect(database_url) as connection:  # the suite's superuser may skip them
            assert Store(connection, schema, 1, b"\x01" * 20).set_based_checks is True
        summary = index(config_for(deployed, url, schema), anvil.rpc())
        assert summary.events == story.event_count
        assert dict(db.execute("SELECT event, count(*) FROM fact_log GROUP BY event").fetchall()) == story.counts
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
    deployed.send("registerModel", label_id("libpq-model"))
    summary = index(IndexConfig(contract_address=deployed.address, schema=schema), anvil.rpc())
    assert summary.events == 1
    assert db.execute("SELECT count(*) FROM model_registration").fetchone()[0] == 1


def test_two_chains_share_one_schema(anvil, deployed, second_chain, database_url, schema, db, label_id):
    deployed.send("registerExecution", label_id("chain-model"), label_id("on-31337"), [label_id("a")])
    second_chain.send("registerExecution", label_id("chain-model"), label_id("on-4242"), [label_id("b"), label_id("c")])
    index(config_for(deployed, database_url, schema), anvil.rpc())
    index(config_for(second_chain, database_url, schema), second_chain.anvil.rpc())

    rows = db.execute(
        "SELECT c.chain_id, count(*) FROM state_registration s JOIN contract c USING (contract_id) "
        "GROUP BY c.chain_id ORDER BY c.chain_id"
    ).fetchall()
    assert rows == [(4242, 2), (31337, 1)]
    assert db.execute("SELECT count(DISTINCT chain_id) FROM block").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM cursor").fetchone()[0] == 2


def test_two_indexers_of_one_contract_at_once(anvil, deployed, database_url, schema, db, label_id):
    for number in range(8):
        deployed.send(
            "registerExecution",
            label_id("race-model"),
            label_id(f"race-{number}"),
            [label_id(f"race-{number}-{i}") for i in range(5)],
        )
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
    assert db.execute("SELECT count(*) FROM state_registration").fetchone()[0] == 8 * 5
    assert db.execute("SELECT count(*) FROM fact_log").fetchone()[0] == 1 + 8 * 6
