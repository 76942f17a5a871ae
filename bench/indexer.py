"""Benchmark: the indexer from anvil into Postgres, into an empty schema and into one holding
millions of state rows, against the prototype.

    .venv/bin/python bench/indexer.py [--events 100000] [--states-per-tx 400] [--baseline-events 2000]
                                      [--fill-states 5000000] [--runs 3] [--keep-filled]

Starts its own anvil on a free port, deploys InstanceTracker, produces the events with
registerExecution transactions of a few hundred states each, then:

* into an empty schema (created beforehand, so that the figure is indexing, not the one-time
  creation of the schema's tables, about 0.13 s): `tracker.indexer.engine.index` over the whole
  range in a process of its own (`--child`), whose peak RSS is the indexer's alone; `--runs`
  times into a fresh schema each, keeping the median run's figures and every run's rate (two
  cores shared with other work make a single 3-second run a sample of the load as much as of
  the indexer);
* a second schema is filled with `--fill-states` state registrations of another contract (with
  their instances, models, terminations and accounts) through the loader itself
  (`tracker.indexer.store.Store.load`, the statements a real run uses, rollups included), in
  batches of about 10,000 events shaped like the chain's: 16 instances of 25 states and their
  terminations per transaction, a transaction per block, 50 models, 20 accounts, blocks four
  minutes apart; the loading rate of the first and the last million is kept;
  with `--keep-filled` the schema is kept for the next run, which uses it instead of filling
  again (taking out the anvil contract's rows and loading again the blocks the rollbacks took
  out, so that every run measures the same rows);
* into that schema: the same anvil events indexed again (`events_per_s_at_5m`, `--runs` times,
  their rows taken out between runs); then, on the
  filled contract, a 1-block rollback (median of five, each the newest block: 416 events), every
  report view (`tracker.indexer.report.read_report`, median of three) and one instance's protocol
  (median of twenty); and the schema's bytes per state row (tables, indexes and TOAST);
* the published prototype's approach on a slice of the same events: per event, fetch its block,
  its transaction and its receipt (for the gas), then one INSERT per row and a commit per event
  (raw JSON-RPC and the indexer's decoder, so that only the approach differs).

Prints a table and writes bench/results/indexer.json. Never fails on timing.
Postgres: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

# ruff: noqa: E402
import argparse
import hashlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, where bench/tracker.py would shadow the package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import psycopg
from psycopg import sql
from web3 import HTTPProvider, Web3

from tracker.chain.events import DecodedEvent, EventDecoder
from tracker.chain.reader import BlockHeader, ChainReader, RawLog, Receipt
from tracker.chain.rpc import JsonRpc
from tracker.documents.ids import sha256_hex
from tracker.indexer.engine import IndexConfig, index
from tracker.indexer.report import read_report
from tracker.indexer.rows import Batch
from tracker.indexer.store import Cursor, Store, connect, drop_schema, migrate, named_query, use_schema

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "indexer.json"
SCHEMA = "bench_indexer"
FILLED_SCHEMA = "bench_indexer_filled"
BASELINE_SCHEMA = "bench_indexer_baseline"
# The filled contract: not on anvil (its rows come through the loader, not from a chain).
FILLED_CONTRACT = bytes.fromhex("f111ed" + "00" * 17)
FILL_STATES_PER_INSTANCE = 25
FILL_INSTANCES_PER_BLOCK = 16
FILL_BLOCKS_PER_BATCH = 24
FILL_MODELS = 50
FILL_ACCOUNTS = 20
FILL_BLOCK_SECONDS = 240

# The prototype's loading: one INSERT per row, one commit per event (into the same v2 tables).
BASELINE_INSERT_CONTRACT = (
    "INSERT INTO contract (chain_id, address) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING contract_id"
)
BASELINE_SELECT_CONTRACT = "SELECT contract_id FROM contract WHERE chain_id = %s AND address = %s"
BASELINE_INSERT_BLOCK = (
    "INSERT INTO block (contract_id, block_number, block_hash, parent_hash, block_time) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
BASELINE_INSERT_TRANSACTION = (
    "INSERT INTO transaction (contract_id, block_number, first_log_index, last_log_index, block_time, tx_hash, "
    "from_address, to_address, gas_used, effective_gas_price, fee_wei, events, states) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, 0) ON CONFLICT (contract_id, tx_hash) DO UPDATE SET "
    "last_log_index = excluded.last_log_index, events = transaction.events + 1"
)
BASELINE_INSERT_ACCOUNT = (
    "INSERT INTO account (contract_id, address, first_block) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
)
BASELINE_INSERT_MODEL = (
    "INSERT INTO model (contract_id, model_id, first_block) VALUES (%s, %s, %s) "
    "ON CONFLICT (contract_id, model_id) DO UPDATE SET publishers = model.publishers + 1 RETURNING model_sk"
)
BASELINE_INSERT_MODEL_FACT = "INSERT INTO model_registration VALUES (%s, %s, %s, %s, %s, %s)"
BASELINE_INSERT_INSTANCE = (
    "INSERT INTO instance (contract_id, execution, first_block, registered_block, registered_log_index, "
    "registered_at, registrant, model_sk, instance_document, mode) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, (SELECT model_sk FROM model WHERE contract_id = %s AND model_id = %s), %s, %s) "
    "RETURNING instance_sk"
)
BASELINE_INSERT_KEY = (
    "INSERT INTO instance_key (contract_id, key, instance_sk, owner, first_block) VALUES (%s, %s, %s, %s, %s)"
)
BASELINE_SELECT_KEY = "SELECT key_sk, instance_sk FROM instance_key WHERE contract_id = %s AND key = %s"
BASELINE_INSERT_STATE = "INSERT INTO state VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
BASELINE_UPDATE_COUNT = "UPDATE instance SET state_count = state_count + 1 WHERE instance_sk = %s"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_anvil() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        ["anvil", "--port", str(port), "--silent", "--gas-limit", "100000000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    web3 = Web3(HTTPProvider(url))
    for _ in range(200):
        try:
            _ = web3.eth.chain_id
            return process, url
        except Exception:  # not listening yet
            time.sleep(0.1)
    process.kill()
    raise SystemExit("anvil did not start")


def b32(label: str) -> bytes:
    return bytes.fromhex(sha256_hex(label))


def produce(web3: Web3, events: int, states_per_tx: int) -> tuple[object, int, int, float]:
    """Deploys InstanceTracker and sends registerExecution batches (one account's direct instances
    of one model); returns (contract, first block, last block, seconds)."""
    from ape import project

    contract_type = project.InstanceTracker.contract_type
    abi = contract_type.model_dump(mode="json", by_alias=True)["abi"]
    sender = web3.eth.accounts[0]
    factory = web3.eth.contract(abi=abi, bytecode=contract_type.deployment_bytecode.bytecode)
    receipt = web3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": sender}))
    contract = web3.eth.contract(address=receipt.contractAddress, abi=abi)
    first_block = receipt.blockNumber
    started = time.perf_counter()
    model = b32("bench-model")
    produced, number, last_hash = 0, 0, None
    while produced < events:
        count = min(states_per_tx, max(1, events - produced - 1))
        execution = b32(f"bench-execution-{number}")
        states = [b32(f"bench-state-{number}-{i}") for i in range(count)]
        last_hash = contract.functions.registerExecution(
            sender, execution, model, b32(f"bench-document-{number}"), states
        ).transact({"from": sender, "gas": 30_000_000})
        produced += count + 1 + (1 if number == 0 else 0)
        number += 1
        if number % 50 == 0:
            print(f"  produced {produced:,} events in {number} transactions", file=sys.stderr)
    last = web3.eth.wait_for_transaction_receipt(last_hash, timeout=120)
    return contract, first_block, last.blockNumber, time.perf_counter() - started


def baseline(
    web3: Web3, url: str, contract, database_url: str, first_block: int, last_block: int, limit: int
) -> tuple[int, float]:
    """The prototype's approach on the first `limit` events: per event, its block, transaction and
    receipt, then one INSERT per row and a commit per event.

    To measure the approach rather than web3's result formatting, requests are raw JSON-RPC
    (`make_request`) and logs are decoded with the indexer's own decoder, fetched once per block.
    """
    with psycopg.connect(database_url) as connection:
        drop_schema(connection, BASELINE_SCHEMA)
        migrate(connection, BASELINE_SCHEMA)
    connection = psycopg.connect(database_url)
    connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(BASELINE_SCHEMA)))
    request = web3.provider.make_request
    chain_id = web3.eth.chain_id
    address = bytes.fromhex(contract.address[2:])
    decoder = EventDecoder.for_tracker(address)
    reader = ChainReader(JsonRpc.from_uri(url), address, initial_span=1, max_logs=1_000_000)
    started = time.perf_counter()
    connection.execute(BASELINE_INSERT_CONTRACT, [chain_id, address])
    contract_id = connection.execute(BASELINE_SELECT_CONTRACT, [chain_id, address]).fetchone()[0]
    connection.commit()
    done = 0
    block = first_block
    while done < limit and block <= last_block:
        _, logs = reader.logs(block, block)
        for event in decoder.decode(logs).events[: limit - done]:
            log = event.log
            header = request("eth_getBlockByNumber", [hex(log.block_number), False])["result"]
            transaction = request("eth_getTransactionByHash", ["0x" + log.tx_hash.hex()])["result"]
            receipt = request("eth_getTransactionReceipt", ["0x" + log.tx_hash.hex()])["result"]
            block_hash = bytes.fromhex(header["hash"][2:])
            sender = bytes.fromhex(transaction["from"][2:])
            gas_used, price = int(receipt["gasUsed"], 16), int(receipt["effectiveGasPrice"], 16)
            connection.execute(
                BASELINE_INSERT_BLOCK,
                [
                    contract_id,
                    int(header["number"], 16),
                    block_hash,
                    bytes.fromhex(header["parentHash"][2:]),
                    datetime.fromtimestamp(int(header["timestamp"], 16), timezone.utc),
                ],
            )
            block_time = datetime.fromtimestamp(int(header["timestamp"], 16), timezone.utc)
            args = event.args
            connection.execute(BASELINE_INSERT_ACCOUNT, [contract_id, sender, log.block_number])
            connection.execute(
                BASELINE_INSERT_TRANSACTION,
                [
                    contract_id,
                    log.block_number,
                    log.log_index,
                    log.log_index,
                    block_time,
                    log.tx_hash,
                    sender,
                    bytes.fromhex(transaction["to"][2:]),
                    gas_used,
                    price,
                    gas_used * price,
                ],
            )
            where = [contract_id, log.block_number, log.log_index, block_time]
            if event.name == "ModelRegistered":
                (model_sk,) = connection.execute(
                    BASELINE_INSERT_MODEL, [contract_id, args["model"], log.block_number]
                ).fetchone()
                connection.execute(BASELINE_INSERT_MODEL_FACT, [*where, args["publisher"], model_sk])
            elif event.name == "InstanceRegistered":
                (instance_sk,) = connection.execute(
                    BASELINE_INSERT_INSTANCE,
                    [
                        contract_id,
                        args["execution"],
                        log.block_number,
                        log.block_number,
                        log.log_index,
                        block_time,
                        args["owner"],
                        contract_id,
                        args["model"],
                        args["instanceDocument"],
                        args["mode"],
                    ],
                ).fetchone()
                connection.execute(
                    BASELINE_INSERT_KEY, [contract_id, args["key"], instance_sk, args["owner"], log.block_number]
                )
            else:
                key_sk, instance_sk = connection.execute(BASELINE_SELECT_KEY, [contract_id, args["key"]]).fetchone()
                connection.execute(
                    BASELINE_INSERT_STATE,
                    [
                        contract_id,
                        log.log_index,
                        log.block_number,
                        instance_sk,
                        args["seq"],
                        block_time,
                        key_sk,
                        args["state"],
                    ],
                )
                connection.execute(BASELINE_UPDATE_COUNT, [instance_sk])
            connection.commit()
            done += 1
        block += 1
    seconds = time.perf_counter() - started
    stored = connection.execute("SELECT count(*) FROM event_log").fetchone()[0]
    connection.close()
    if stored != done:
        raise SystemExit(f"baseline stored {stored} events, expected {done}")
    return done, seconds


def _h(*parts: object) -> bytes:
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()


class Filler:
    """Synthetic batches of the filled contract, loaded with `Store.load` (see the module docstring)."""

    def __init__(self, store: Store, abi: list[Any]):
        self.store = store
        self.cursor = store.cursor(0)
        self.instances = 0
        self.states = 0
        self.events = 0
        self.block = 0
        self.started_at = 1_700_000_000
        self.accounts = [_h("account", a)[:20] for a in range(FILL_ACCOUNTS)]
        self.models_seen: set[tuple[int, int]] = set()
        selectors = {entry["name"]: entry for entry in abi if entry.get("type") == "function"}
        assert "registerExecution" in selectors
        from eth_utils import keccak

        self.input = keccak(text="registerExecution(address,bytes32,bytes32,bytes32,bytes32[])")[:4]

    def resume(self, next_block: int) -> None:
        """Continues a fill whose blocks below `next_block` are loaded: the batches that follow
        are those an uninterrupted fill would have loaded."""
        self.block = next_block
        self.instances = next_block * FILL_INSTANCES_PER_BLOCK
        self.states = self.instances * FILL_STATES_PER_INSTANCE
        self.models_seen = {
            ((serial // FILL_INSTANCES_PER_BLOCK) % FILL_ACCOUNTS, serial % FILL_MODELS)
            for serial in range(self.instances)
        }
        self.cursor = self.store.cursor(0)
        if self.cursor.block_number != next_block - 1:
            raise SystemExit(f"the filled schema's cursor is at block {self.cursor.block_number}, not {next_block - 1}")

    def batch(self, blocks: int = FILL_BLOCKS_PER_BATCH) -> Batch:
        events: list[DecodedEvent] = []
        headers: dict[int, BlockHeader] = {}
        receipts: dict[bytes, Receipt] = {}
        inputs: dict[bytes, bytes] = {}
        for _ in range(blocks):
            number = self.block
            self.block += 1
            header = BlockHeader(
                number, _h("block", number), _h("block", number - 1), self.started_at + number * FILL_BLOCK_SECONDS
            )
            headers[number] = header
            sender = self.accounts[number % FILL_ACCOUNTS]
            tx_hash = _h("tx", number)
            receipts[tx_hash] = Receipt(tx_hash, header.hash, sender, FILLED_CONTRACT, 9_000_000, 1_000_000_000)
            inputs[tx_hash] = self.input
            log_index = 0

            def event(
                name: str, args: dict[str, Any], number: int = number, block: bytes = header.hash, tx: bytes = tx_hash
            ) -> None:
                nonlocal log_index
                log = RawLog(FILLED_CONTRACT, (), b"", number, block, tx, log_index)
                events.append(DecodedEvent(name, log, args))
                log_index += 1

            for _ in range(FILL_INSTANCES_PER_BLOCK):
                serial = self.instances
                self.instances += 1
                model_number = serial % FILL_MODELS
                model = _h("model", model_number)
                if (number % FILL_ACCOUNTS, model_number) not in self.models_seen:
                    self.models_seen.add((number % FILL_ACCOUNTS, model_number))
                    event("ModelRegistered", {"publisher": sender, "model": model})
                key, execution = _h("key", serial), _h("execution", serial)
                event(
                    "InstanceRegistered",
                    {
                        "key": key,
                        "owner": sender,
                        "execution": execution,
                        "model": model,
                        "instanceDocument": _h("document", serial),
                        "mode": 0,
                    },
                )
                for seq in range(FILL_STATES_PER_INSTANCE):
                    event("StateRegistered", {"key": key, "state": _h("state", serial, seq), "seq": seq})
                event(
                    "InstanceTerminated",
                    {
                        "key": key,
                        "endDocument": _h("end", serial),
                        "attempt": 0,
                        "stateCount": FILL_STATES_PER_INSTANCE,
                        "head": _h("head", serial),
                    },
                )
                self.states += FILL_STATES_PER_INSTANCE
        self.events += len(events)
        return Batch(events, headers, receipts, inputs, headers[self.block - 1])

    def load_next(self, blocks: int = FILL_BLOCKS_PER_BATCH) -> int:
        batch = self.batch(blocks)
        if not self.store.load(batch, self.cursor):
            raise SystemExit("the filled schema's cursor moved under the bench")
        self.cursor = Cursor(batch.end.number, batch.end.hash)
        return len(batch.events)


def kept_fill(database_url: str, states: int) -> dict[str, Any] | None:
    """The figures of a fill of `states` states kept by an earlier `--keep-filled` run, if any."""
    with psycopg.connect(database_url) as connection:
        found = connection.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'bench_fill'", [FILLED_SCHEMA]
        ).fetchone()
        if found is None:
            return None
        use_schema(connection, FILLED_SCHEMA)
        row = connection.execute("SELECT figures FROM bench_fill WHERE requested_states = %s", [states]).fetchone()
    return row[0] if row is not None else None


def top_up(database_url: str, chain_id: int, figures: dict[str, Any], abi: list[Any]) -> int:
    """Loads again the filled contract's blocks that rollbacks took out (up to the fill's last
    block, as the fill loaded them); returns how many blocks."""
    connection = connect(database_url, FILLED_SCHEMA)
    store = Store(connection, FILLED_SCHEMA, chain_id, FILLED_CONTRACT, abi)
    filler = Filler(store, abi)
    cursor = store.cursor(0)
    filler.resume(cursor.block_number + 1)
    missing = figures["fill_last_block"] - cursor.block_number
    while filler.block <= figures["fill_last_block"]:
        filler.load_next(min(FILL_BLOCKS_PER_BATCH, figures["fill_last_block"] + 1 - filler.block))
    connection.close()
    return missing


def forget_contract(database_url: str, chain_id: int, address: bytes) -> None:
    """Takes one contract's rows out of the filled schema (an earlier run's anvil events)."""
    connection = connect(database_url, FILLED_SCHEMA)
    Store(connection, FILLED_SCHEMA, chain_id, address).roll_back(Cursor(-1, None))
    connection.close()
    # Their space made reusable at once, so that every run measures the same bytes per row.
    with psycopg.connect(database_url, autocommit=True) as connection:
        tables = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [FILLED_SCHEMA]).fetchall()
        for (table,) in tables:
            connection.execute(sql.SQL("VACUUM {}.{}").format(sql.Identifier(FILLED_SCHEMA), sql.Identifier(table)))


def fill(database_url: str, chain_id: int, states: int, abi: list[Any]) -> dict[str, Any]:
    """Fills FILLED_SCHEMA with `states` state registrations of the filled contract; returns rates
    (also kept in the schema's `bench_fill`, for `--keep-filled`)."""
    connection = connect(database_url, FILLED_SCHEMA)
    migrate(connection, FILLED_SCHEMA)
    filler = Filler(Store(connection, FILLED_SCHEMA, chain_id, FILLED_CONTRACT, abi), abi)
    started = time.perf_counter()
    marks: list[tuple[int, float]] = [(0, started)]
    step = max(1, states // 5)
    while filler.states < states:
        filler.load_next()
        if filler.states >= len(marks) * step:
            marks.append((filler.events, time.perf_counter()))
            print(
                f"  filled {filler.states:,} states ({filler.events:,} events) in {marks[-1][1] - started:.0f} s",
                file=sys.stderr,
            )
    seconds = time.perf_counter() - started
    rates = [
        round((b_events - a_events) / (b_time - a_time), 1)
        for (a_events, a_time), (b_events, b_time) in zip(marks, marks[1:])
    ]
    figures = {
        "fill_states": filler.states,
        "fill_events": filler.events,
        "fill_instances": filler.instances,
        "fill_seconds": round(seconds, 1),
        "fill_events_per_s": round(filler.events / seconds, 1),
        "fill_events_per_s_by_fifth": rates,
        "fill_last_block": filler.block - 1,
        "fill_measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    use_schema(connection, FILLED_SCHEMA)
    connection.execute("CREATE TABLE bench_fill (requested_states bigint PRIMARY KEY, figures jsonb NOT NULL)")
    connection.execute("INSERT INTO bench_fill VALUES (%s, %s)", [states, psycopg.types.json.Jsonb(figures)])
    connection.commit()
    connection.close()
    return figures


def measure_filled(database_url: str, chain_id: int, last_block: int, instances: int) -> dict[str, Any]:
    """Rollback, reports, one protocol and bytes per state row, on the filled contract."""
    connection = connect(database_url, FILLED_SCHEMA)
    store = Store(connection, FILLED_SCHEMA, chain_id, FILLED_CONTRACT)
    use_schema(connection, FILLED_SCHEMA)
    connection.execute("ANALYZE")
    connection.commit()
    rollbacks = []
    for number in range(last_block - 1, last_block - 6, -1):
        started = time.perf_counter()
        store.roll_back(Cursor(number, _h("block", number)))
        rollbacks.append((time.perf_counter() - started) * 1000)
    reports = []
    for _ in range(3):
        started = time.perf_counter()
        result = read_report(connection, FILLED_SCHEMA, chain_id, FILLED_CONTRACT)
        reports.append(time.perf_counter() - started)
    assert len(result.models) == FILL_MODELS and len(result.clients) == FILL_ACCOUNTS, result.models[:1]
    protocols = []
    key = {"contract_id": store.contract_id}
    for serial in range(20):
        execution = _h("execution", serial * 9973 % max(1, instances - 200))
        started = time.perf_counter()
        found = [r[0] for r in connection.execute(named_query("find_instances"), {**key, "id": execution})]
        rows = connection.execute(named_query("report_protocol"), {"instances": found}).fetchall()
        connection.commit()
        protocols.append((time.perf_counter() - started) * 1000)
        assert len(rows) == FILL_STATES_PER_INSTANCE + 1, (serial, len(rows))
    states = connection.execute("SELECT count(*) FROM state").fetchone()[0]
    sizes = connection.execute(
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY 2 DESC",
        [FILLED_SCHEMA],
    ).fetchall()
    connection.commit()
    connection.close()
    total = sum(size for _, size in sizes)
    return {
        "rollback_1_block_ms_at_5m": round(statistics.median(rollbacks), 1),
        "rollback_1_block_ms_all": [round(v, 1) for v in rollbacks],
        "report_seconds_at_5m": round(statistics.median(reports), 3),
        "instance_protocol_ms_at_5m": round(statistics.median(protocols), 2),
        "state_rows_at_measure": states,
        "schema_bytes": total,
        "bytes_per_state_row": round(total / states, 1),
        "bytes_per_state_row_by_table": {name: round(size / states, 1) for name, size in sizes if size > 16_384},
    }


def index_in_child(address: str, database_url: str, schema: str, first_block: int, url: str) -> dict[str, Any]:
    """`index` in a process of its own: its summary and its peak RSS."""
    command = [sys.executable, __file__, "--child", address, database_url, schema, str(first_block), url]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median rate (the lower middle one of an even number)."""
    return sorted(runs, key=lambda r: r["events_per_s"])[(len(runs) - 1) // 2]


def child(address: str, database_url: str, schema: str, first_block: int, url: str) -> None:
    os.chdir(ROOT)
    config = IndexConfig(contract_address=address, database_url=database_url, schema=schema, from_block=first_block)
    summary = index(config, JsonRpc.from_uri(url))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    print(json.dumps({**summary.as_dict(), "peak_rss_mb": round(peak, 1)}))


def main() -> None:
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--states-per-tx", type=int, default=400)
    parser.add_argument("--baseline-events", type=int, default=2_000)
    parser.add_argument("--fill-states", type=int, default=5_000_000)
    parser.add_argument(
        "--runs", type=int, default=3, help="index runs into each schema; the median's figures are kept (all rates too)"
    )
    parser.add_argument(
        "--keep-filled",
        action="store_true",
        help=f"keep the filled schema ({FILLED_SCHEMA}) for the next run, and use the one an earlier "
        "--keep-filled run kept (same --fill-states) instead of filling again",
    )
    options = parser.parse_args()
    if options.runs < 1:
        parser.error(f"--runs must be at least 1, got {options.runs}")
    database_url = (
        os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/test"
    )
    os.chdir(ROOT)
    from ape import project

    abi = project.InstanceTracker.contract_type.model_dump(mode="json", by_alias=True)["abi"]
    process, url = start_anvil()
    try:
        web3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 120}))
        chain_id = web3.eth.chain_id
        print(f"producing {options.events:,} events on anvil ({url})", file=sys.stderr)
        contract, first_block, last_block, produce_s = produce(web3, options.events, options.states_per_tx)
        anvil_contract = bytes.fromhex(contract.address[2:])
        filled = kept_fill(database_url, options.fill_states) if options.keep_filled else None
        reused = filled is not None
        with psycopg.connect(database_url) as connection:
            drop_schema(connection, SCHEMA)
            migrate(connection, SCHEMA)  # the empty schema is created beforehand: the run times indexing
            if filled is None:
                drop_schema(connection, FILLED_SCHEMA)
        empties = []
        for run in range(options.runs):
            if run:
                with psycopg.connect(database_url) as connection:
                    drop_schema(connection, SCHEMA)
                    migrate(connection, SCHEMA)
            print(f"indexing into an empty schema (a process of its own), run {run + 1}", file=sys.stderr)
            empties.append(index_in_child(contract.address, database_url, SCHEMA, first_block, url))
        empty = median_run(empties)
        if filled is None:
            print(f"filling a schema with {options.fill_states:,} state registrations", file=sys.stderr)
            filled = fill(database_url, chain_id, options.fill_states, abi)
        else:
            print(f"using the schema of {filled['fill_states']:,} states kept by an earlier run", file=sys.stderr)
            forget_contract(database_url, chain_id, anvil_contract)
            topped = top_up(database_url, chain_id, filled, abi)
            print(f"  loaded again the {topped} blocks earlier rollbacks took out", file=sys.stderr)
        at_fills = []
        for run in range(options.runs):
            if run:
                forget_contract(database_url, chain_id, anvil_contract)
            print(f"indexing into the filled schema, run {run + 1}", file=sys.stderr)
            at_fills.append(index_in_child(contract.address, database_url, FILLED_SCHEMA, first_block, url))
        at_fill = median_run(at_fills)
        print("rollback, reports, protocol and sizes on the filled contract", file=sys.stderr)
        measured = measure_filled(database_url, chain_id, filled["fill_last_block"], filled["fill_instances"])
        print(f"prototype approach on {options.baseline_events:,} events", file=sys.stderr)
        baseline_events, baseline_s = baseline(
            web3, url, contract, database_url, first_block, last_block, options.baseline_events
        )
        if options.keep_filled:
            forget_contract(database_url, chain_id, anvil_contract)
            top_up(database_url, chain_id, filled, abi)
        with psycopg.connect(database_url) as connection:
            drop_schema(connection, SCHEMA)
            if not options.keep_filled:
                drop_schema(connection, FILLED_SCHEMA)
            drop_schema(connection, BASELINE_SCHEMA)
    finally:
        process.terminate()
        process.wait(timeout=10)

    ours = empty["events_per_s"]
    theirs = baseline_events / baseline_s
    result = {
        "events": empty["events"],
        "blocks": last_block - first_block + 1,
        "batches": empty["batches"],
        "seconds": round(empty["seconds"], 3),
        "events_per_s": ours,
        "events_per_s_runs": [r["events_per_s"] for r in empties],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in empties),
        "fill_states": filled["fill_states"],
        "events_at_5m": at_fill["events"],
        "seconds_at_5m": round(at_fill["seconds"], 3),
        "events_per_s_at_5m": at_fill["events_per_s"],
        "events_per_s_at_5m_runs": [r["events_per_s"] for r in at_fills],
        "peak_rss_mb_at_5m": max(r["peak_rss_mb"] for r in at_fills),
        **{k: v for k, v in filled.items() if k != "fill_states"},
        "fill_reused": reused,
        **measured,
        "baseline_events": baseline_events,
        "baseline_seconds": round(baseline_s, 3),
        "events_per_s_per_event_baseline": round(theirs, 1),
        "speedup": round(ours / theirs, 1),
        "speedup_at_5m": round(at_fill["events_per_s"] / theirs, 1),
        "baseline": "per event: eth_getBlockByNumber, eth_getTransactionByHash, eth_getTransactionReceipt "
        "(raw JSON-RPC), single-row INSERTs, one commit per event; logs fetched per block",
        "targets": {
            "events_per_s": 20_000,
            "events_per_s_at_5m": 15_000,
            "rollback_1_block_ms_at_5m": 100,
            "report_seconds_at_5m": 1,
            "instance_protocol_ms_at_5m": 10,
            "peak_rss_mb": 300,
            "speedup": 20,
        },
        "produce_seconds": round(produce_s, 1),
        "states_per_tx": options.states_per_tx,
        "cpus": os.cpu_count(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    from rich.console import Console
    from rich.table import Table

    fill_label = f"{filled['fill_states'] / 1e6:g}M states"
    table = Table(title="indexer: anvil -> Postgres")
    for column in ("figure", "measured", "target"):
        table.add_column(column)
    table.add_row("events/s, empty schema", f"{ours:,.0f}", ">= 20,000")
    table.add_row(f"events/s, schema of {fill_label}", f"{at_fill['events_per_s']:,.0f}", ">= 15,000")
    table.add_row(
        f"loader events/s by fifth of the {fill_label}",
        ", ".join(f"{r:,.0f}" for r in filled["fill_events_per_s_by_fifth"]),
        "",
    )
    table.add_row(f"1-block rollback at {fill_label}, ms", f"{measured['rollback_1_block_ms_at_5m']:,.1f}", "<= 100")
    table.add_row(f"every report view at {fill_label}, s", f"{measured['report_seconds_at_5m']:.3f}", "<= 1")
    table.add_row(
        f"one instance's protocol at {fill_label}, ms", f"{measured['instance_protocol_ms_at_5m']:.2f}", "<= 10"
    )
    table.add_row("peak RSS of the 100k run, MB", f"{result['peak_rss_mb']:,.0f}", "<= 300")
    table.add_row("bytes per state row", f"{measured['bytes_per_state_row']:,.1f}", "")
    table.add_row("prototype (per event), events/s", f"{theirs:,.0f}", "")
    table.add_row("speedup", f"{ours / theirs:,.1f}x", ">= 20x")
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
