"""Benchmark: index 100,000 InstanceTracker events from anvil into Postgres, against the prototype.

    .venv/bin/python bench/indexer.py [--events 100000] [--states-per-tx 400] [--baseline-events 2000]

Starts its own anvil on a free port, deploys InstanceTracker, produces the events with
registerExecution transactions of a few hundred states each, then:

* ours: `tracker.indexer.engine.index` over the whole range (batched eth_getLogs, batched headers and
  receipts, COPY into staging, set-based upserts, one commit per batch);
* the published prototype's approach on a slice of the same events: per event, fetch its block,
  its transaction and its receipt (for the gas), then one INSERT per row and a commit per event
  (raw JSON-RPC and the indexer's decoder, so that only the approach differs).

Prints a table and writes bench/results/indexer.json. Never fails on timing.
Postgres: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql
from web3 import HTTPProvider, Web3

# Run as a script, this file's folder comes first on sys.path and bench/tracker.py would shadow the package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

from tracker.chain.events import EventDecoder  # noqa: E402
from tracker.chain.reader import ChainReader  # noqa: E402
from tracker.chain.rpc import JsonRpc  # noqa: E402
from tracker.documents.ids import sha256_hex  # noqa: E402
from tracker.indexer.engine import IndexConfig, index  # noqa: E402
from tracker.indexer.store import drop_schema, migrate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "indexer.json"
SCHEMA = "bench_indexer"
BASELINE_SCHEMA = "bench_indexer_baseline"

# The prototype's loading: one INSERT per row, one commit per event.
BASELINE_INSERT_CONTRACT = (
    "INSERT INTO contract (chain_id, address) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING contract_id"
)
BASELINE_SELECT_CONTRACT = "SELECT contract_id FROM contract WHERE chain_id = %s AND address = %s"
BASELINE_INSERT_BLOCK = (
    "INSERT INTO block (chain_id, block_hash, block_number, parent_hash, block_time) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
BASELINE_INSERT_TRANSACTION = (
    "INSERT INTO transaction (chain_id, tx_hash, block_hash, from_address, to_address, gas_used, "
    "effective_gas_price, fee_wei) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
BASELINE_INSERT_MODEL = "INSERT INTO model (model_id) VALUES (%s) ON CONFLICT DO NOTHING"
BASELINE_INSERT_INSTANCE = "INSERT INTO instance (instance_id) VALUES (%s) ON CONFLICT DO NOTHING"
BASELINE_INSERT_STATE = "INSERT INTO state (state_id) VALUES (%s) ON CONFLICT DO NOTHING"
BASELINE_INSERT_CLIENT = "INSERT INTO client (address) VALUES (%s) ON CONFLICT DO NOTHING"
BASELINE_INSERT_MODEL_FACT = (
    "INSERT INTO model_registration VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
BASELINE_INSERT_INSTANCE_FACT = (
    "INSERT INTO instance_registration VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
BASELINE_INSERT_STATE_FACT = (
    "INSERT INTO state_registration VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


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
    """Deploys InstanceTracker and sends registerExecution batches; returns (contract, first, last, s)."""
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
        instance = b32(f"bench-instance-{number}")
        states = [b32(f"bench-state-{number}-{i}") for i in range(count)]
        last_hash = contract.functions.registerExecution(model, instance, states).transact(
            {"from": sender, "gas": 30_000_000}
        )
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
                    chain_id,
                    block_hash,
                    int(header["number"], 16),
                    bytes.fromhex(header["parentHash"][2:]),
                    datetime.fromtimestamp(int(header["timestamp"], 16), timezone.utc),
                ],
            )
            connection.execute(
                BASELINE_INSERT_TRANSACTION,
                [
                    chain_id,
                    log.tx_hash,
                    block_hash,
                    sender,
                    bytes.fromhex(transaction["to"][2:]),
                    gas_used,
                    price,
                    gas_used * price,
                ],
            )
            where = [contract_id, chain_id, log.block_number, block_hash, log.tx_hash, log.log_index]
            args = event.args
            if event.name == "ModelRegistered":
                connection.execute(BASELINE_INSERT_MODEL, [args["model"]])
                connection.execute(BASELINE_INSERT_CLIENT, [args["publisher"]])
                connection.execute(BASELINE_INSERT_MODEL_FACT, where + [args["model"], args["publisher"]])
            elif event.name == "InstanceRegistered":
                connection.execute(BASELINE_INSERT_INSTANCE, [args["instance"]])
                connection.execute(BASELINE_INSERT_CLIENT, [args["owner"]])
                connection.execute(
                    BASELINE_INSERT_INSTANCE_FACT, where + [args["instance"], args["model"], args["owner"]]
                )
            else:
                connection.execute(BASELINE_INSERT_STATE, [args["state"]])
                connection.execute(BASELINE_INSERT_STATE_FACT, where + [args["instance"], args["state"], args["seq"]])
            connection.commit()
            done += 1
        block += 1
    seconds = time.perf_counter() - started
    stored = connection.execute("SELECT count(*) FROM fact_log").fetchone()[0]
    connection.close()
    if stored != done:
        raise SystemExit(f"baseline stored {stored} events, expected {done}")
    return done, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--states-per-tx", type=int, default=400)
    parser.add_argument("--baseline-events", type=int, default=2_000)
    options = parser.parse_args()
    database_url = (
        os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/test"
    )
    os.chdir(ROOT)
    process, url = start_anvil()
    try:
        web3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 120}))
        print(f"producing {options.events:,} events on anvil ({url})", file=sys.stderr)
        contract, first_block, last_block, produce_s = produce(web3, options.events, options.states_per_tx)
        with psycopg.connect(database_url) as connection:
            drop_schema(connection, SCHEMA)
        print("indexing with tracker.indexer", file=sys.stderr)
        config = IndexConfig(
            contract_address=contract.address, database_url=database_url, schema=SCHEMA, from_block=first_block
        )
        summary = index(config, JsonRpc.from_uri(url))
        print(f"prototype approach on {options.baseline_events:,} events", file=sys.stderr)
        baseline_events, baseline_s = baseline(
            web3, url, contract, database_url, first_block, last_block, options.baseline_events
        )
        with psycopg.connect(database_url) as connection:
            drop_schema(connection, SCHEMA)
            drop_schema(connection, BASELINE_SCHEMA)
    finally:
        process.terminate()
        process.wait(timeout=10)

    ours = summary.events / summary.seconds
    theirs = baseline_events / baseline_s
    result = {
        "events": summary.events,
        "blocks": last_block - first_block + 1,
        "batches": summary.batches,
        "seconds": round(summary.seconds, 3),
        "events_per_s": round(ours, 1),
        "baseline_events": baseline_events,
        "baseline_seconds": round(baseline_s, 3),
        "events_per_s_per_event_baseline": round(theirs, 1),
        "speedup": round(ours / theirs, 1),
        "baseline": "per event: eth_getBlockByNumber, eth_getTransactionByHash, eth_getTransactionReceipt "
        "(raw JSON-RPC), single-row INSERTs, one commit per event; logs fetched per block",
        "targets": {"events_per_s": 5000, "speedup": 20},
        "produce_seconds": round(produce_s, 1),
        "states_per_tx": options.states_per_tx,
        "cpus": os.cpu_count(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    from rich.console import Console
    from rich.table import Table

    table = Table(title="indexer: anvil -> Postgres")
    for column in ("approach", "events", "seconds", "events/s", "target"):
        table.add_column(column)
    table.add_row(
        "tracker.indexer.engine (batched)", f"{summary.events:,}", f"{summary.seconds:.2f}", f"{ours:,.0f}", ">= 5,000"
    )
    table.add_row("prototype (per event)", f"{baseline_events:,}", f"{baseline_s:.2f}", f"{theirs:,.0f}", "")
    table.add_row("speedup", "", "", f"{ours / theirs:,.1f}x", ">= 20x")
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
