"""The indexer attacked: by anyone who can send a transaction (client ids Postgres text cannot
hold), by the chain moving between two reads of one batch (or a node answering one
transaction's logs with two blocks), and by Postgres dropping its connection under `--follow`. Nothing is lost, nothing stalls, nothing is stored half."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from eth_abi import encode
from eth_utils import keccak
from support.hosted_provider import HostedProvider, Rules
from support.tables import BATCH_BOUNDARY_TABLES, differences, schema_snapshot

from tracker.chain.events import EventDecoder, render_text
from tracker.chain.reader import ChainMovedError, ChainReader
from tracker.chain.rpc import JsonRpc
from tracker.indexer.engine import IndexConfig, _complete_batch, _ReadLogs, index
from tracker.indexer.store import APPLICATION_NAME, Cursor, drop_schema

REGISTER_CLIENT_ID = keccak(text="registerClientId(string)")[:4]


def _config(deployed, database_url, schema, **overrides) -> IndexConfig:
    return IndexConfig(
        contract_address=deployed.address,
        database_url=database_url,
        schema=schema,
        from_block=deployed.deploy_block,
        **overrides,
    )


def _register_raw_client_id(deployed, raw: bytes, sender: int = 0) -> None:
    """registerClientId with any bytes: string and bytes share their ABI encoding, and the
    contract checks only the length, so no client library's UTF-8 check stands in the way."""
    data = REGISTER_CLIENT_ID + encode(["bytes"], [raw])
    tx_hash = deployed.web3.eth.send_transaction(
        {"from": deployed.accounts[sender], "to": deployed.address, "data": "0x" + data.hex(), "gas": 200_000}
    )
    assert deployed.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=30).status == 1


@pytest.fixture
def other_schema(database_url):
    name = f"indexer_other_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(database_url) as connection:
        drop_schema(connection, name)


def test_client_ids_postgres_text_cannot_hold_are_kept_exactly(
    anvil, deployed, register_execution, database_url, schema, db
):
    # One cheap transaction each, by any account: a NUL (which text cannot hold), bytes that are
    # not UTF-8, and ids whose renderings would collide with each other if escaping were lossy.
    hostile = [b"a\x00b", b"\xff\xfe-not-utf8", b"a\\x00b", b"\x1b[2Jclear", "caf\u00e9".encode()]
    for sender, raw in enumerate(hostile):
        _register_raw_client_id(deployed, raw, sender=sender % 4)
    register_execution(deployed, "after-the-ids", 2)

    summary = index(_config(deployed, database_url, schema), anvil.rpc())

    assert summary.events == len(hostile) + 4  # and the instance after them: model, instance, 2 states
    assert summary.last_block == anvil.web3.eth.block_number
    rows = db.execute(
        "SELECT client_id, client_id_text FROM client_id_registration ORDER BY block_number, log_index"
    ).fetchall()
    assert [bytes(raw) for raw, _ in rows] == hostile
    texts = [text for _, text in rows]
    assert texts == [render_text(raw) for raw in hostile]
    assert texts[:4] == ["a\\x00b", "\\xff\\xfe-not-utf8", "a\\\\x00b", "\\x1b[2Jclear"]
    assert texts[4] == "caf\u00e9"
    assert len(set(texts)) == len(texts)
    # The latest id of each account, in the account table and the analyst's view, exact too.
    latest = dict(db.execute("SELECT address, client_id FROM account WHERE client_id IS NOT NULL").fetchall())
    assert bytes(latest[deployed.address_of(0)]) == hostile[4]
    assert bytes(latest[deployed.address_of(1)]) == hostile[1]
    view = db.execute("SELECT client_id_bytes, client_id_hex FROM client_id_history ORDER BY block_number").fetchall()
    assert [(bytes(b), h) for b, h in view] == [(raw, raw.hex()) for raw in hostile]
    assert db.execute("SELECT count(*) FROM state").fetchone()[0] == 2


def test_a_reorg_between_the_logs_and_the_headers_loses_nothing(
    anvil, deployed, register_execution, database_url, schema, other_schema
):
    """The chain reorganises after eth_getLogs answered (nothing, for a stretch of empty blocks)
    and before the headers are read: the batch must not be stored against the new chain's
    headers with the old chain's (empty) logs."""
    register_execution(deployed, "before", 2)
    config = _config(deployed, database_url, schema)
    before = index(config, anvil.rpc()).events
    fork = anvil.web3.eth.block_number
    snapshot_id = anvil.snapshot()
    anvil.mine(30)  # empty blocks: the logs of fork+1..fork+22 (below the lag guard) are []
    reorganised = threading.Event()

    def reorganise(first: int, last: int) -> None:
        if first != fork + 1 or reorganised.is_set():
            return
        reorganised.set()
        anvil.revert(snapshot_id)
        for number in range(3):
            register_execution(deployed, f"new-branch-{number}", 4, sender=1)
        anvil.mine(40)

    with HostedProvider(anvil.url, Rules(after_range_logs=reorganise)) as provider:
        summary = index(config, JsonRpc.from_uri(provider.url))

    assert reorganised.is_set()
    assert summary.rereads + summary.reorgs >= 1
    # Every event of the new branch is there, as a direct index of the new chain finds them.
    direct = index(_config(deployed, database_url, other_schema), anvil.rpc())
    assert direct.events > before
    assert before + summary.events == direct.events
    found = differences(
        schema_snapshot(database_url, other_schema), schema_snapshot(database_url, schema), BATCH_BOUNDARY_TABLES
    )
    assert found == []


def test_follow_survives_postgres_terminating_its_connection(
    anvil, deployed, register_execution, database_url, schema, db
):
    register_execution(deployed, "before-the-kill", 1)
    config = _config(deployed, database_url, schema, follow=True, poll_interval=0.1, max_polls=150)
    statuses: list[str] = []
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = index(config, anvil.rpc(), on_status=statuses.append)
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()

    def wait_for(condition, what: str, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert worker.is_alive(), f"the indexer ended: {outcome}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}; statuses: {statuses}"
            time.sleep(0.05)

    def states() -> int:
        return db.execute("SELECT count(*) FROM state").fetchone()[0] if _has_tables(db) else 0

    wait_for(lambda: states() == 1, "the first instance")
    for killed in (1, 2):  # twice: the reconnected session must survive a second loss too
        terminated = db.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()) t",
            [f"{APPLICATION_NAME}:{schema}"],
        ).fetchone()[0]
        assert terminated == 1
        before = states()
        register_execution(deployed, f"after-kill-{killed}", 3)
        wait_for(lambda before=before: states() == before + 3, f"the instance after kill {killed}")
        wait_for(lambda killed=killed: sum(s == "reconnected to Postgres" for s in statuses) >= killed, "reconnect")
    worker.join(timeout=120)

    assert "error" not in outcome, outcome.get("error")
    assert not worker.is_alive()
    summary = outcome["summary"]
    assert summary.reconnects >= 2
    assert any(s.startswith("lost Postgres (") and "reconnecting in" in s for s in statuses)
    # model, instance and a state before; an instance and three states after each kill
    assert db.execute("SELECT count(*) FROM event_log").fetchone()[0] == 3 + 2 * 4
    head = anvil.web3.eth.block_number
    assert db.execute("SELECT block_number FROM cursor").fetchone()[0] == head


def _has_tables(db) -> bool:
    return db.execute("SELECT to_regclass('state') IS NOT NULL").fetchone()[0]


def test_a_transactions_logs_answered_in_two_blocks_are_read_again(anvil, deployed, register_execution):
    """A node (or a reorg half seen) answers some logs of one transaction with another block,
    a real one whose header agrees with them: the receipt can only confirm one of the two blocks,
    so the batch is read again rather than stored with the transaction's events split."""
    register_execution(deployed, "split", 3)
    anvil.mine(1)
    reader = ChainReader(anvil.rpc(), bytes.fromhex(deployed.address[2:]))
    head = anvil.web3.eth.block_number
    _, logs = reader.logs(deployed.deploy_block, head)
    assert len({log.tx_hash for log in logs if log.block_number > deployed.deploy_block}) == 1
    other = reader.headers([head])[head]  # the empty block mined after the registration
    moved = logs[-1]._replace(block_number=other.number, block_hash=other.hash)
    read = _ReadLogs(deployed.deploy_block, head, [*logs[:-1], moved], other, time.perf_counter())
    decoder = EventDecoder.for_tracker(reader.address)
    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(ChainMovedError, match="has logs in two blocks"):
            _complete_batch(reader, decoder, Cursor(deployed.deploy_block - 1, None), read, pool)
        # The same logs as the node gave them complete the batch.
        honest = _ReadLogs(deployed.deploy_block, head, logs, other, time.perf_counter())
        batch, _ = _complete_batch(reader, decoder, Cursor(deployed.deploy_block - 1, None), honest, pool)
    assert len(batch.events) == len(logs) and set(batch.receipts) == {log.tx_hash for log in logs}
