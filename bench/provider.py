"""Benchmark: index 100,000 InstanceTracker events through a hosted-provider emulator at its budget.

    .venv/bin/python bench/provider.py [--events 100000] [--states-per-tx 400]
                                       [--small-events 5000] [--small-states-per-tx 13]

Starts its own anvil (a 100M block gas limit), produces the events as bench/indexer.py does
(registerExecution transactions of a few hundred states), indexes them once straight from
anvil, then once through tests/support's emulator imitating a hosted provider: 60 ms per
request, 330 compute units per second (one second of budget in its bucket, HTTP 429 past it),
Alchemy's eth_getLogs rule and a batch cap of 1,000 calls, with the indexer pacing itself with
`--rpc-budget 330`. Figures:

* `exact`: every table equal to the direct run's;
* `index_seconds`, the run through the emulator; `index_floor_seconds`, the compute units the
  emulator charged divided by 330 (no client can be faster at that budget, give or take the
  bucket's one second); `floor_ratio`, their ratio (target <= 1.3);
* `cu_per_event`, `rate_limited` (429s met and retried; none ended the run), `requests`.

A second, smaller chain of short transactions (`--small-states-per-tx`, 13 by default: one
execution of the reference size per transaction and block) gives the compute units per event of
a chain where every event has a block and a receipt of its own: `small_transactions`.

Prints a table and writes bench/results/provider.json. Never fails on timing.
Postgres: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from web3 import HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
# bench/ itself is not on the path (its tracker.py would hide the tracker package); tests/ is, for the emulator.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "tests"))


def _bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_indexer_bench = _bench_module("indexer")
produce, start_anvil = _indexer_bench.produce, _indexer_bench.start_anvil

from support.hosted_provider import HostedProvider, Rules  # noqa: E402
from support.tables import differences, schema_snapshot  # noqa: E402

from tracker.chain.rpc import JsonRpc, RpcBudget, RpcOptions  # noqa: E402
from tracker.indexer.engine import BatchReport, IndexConfig, index  # noqa: E402
from tracker.indexer.store import drop_schema  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "provider.json"
LATENCY_S = 0.06
BUDGET = 330.0
MAX_BATCH = 1000


class Progress:
    def __init__(self, label: str):
        self.label = label
        self.started = time.perf_counter()
        self.last = 0.0
        self.events = 0

    def __call__(self, batch: BatchReport) -> None:
        self.events += batch.events
        now = time.perf_counter()
        if now - self.last >= 5 or batch.last_block >= batch.target_block:
            self.last = now
            print(
                f"  {self.label}: {self.events:,} events, block {batch.last_block}/{batch.target_block}, "
                f"{now - self.started:.0f} s",
                file=sys.stderr,
            )


def run(url: str, database_url: str, first_block: int, last_block: int, contract: str, label: str) -> dict:
    direct_schema, hosted_schema = f"bench_provider_{label}_direct", f"bench_provider_{label}_hosted"

    def config(schema: str) -> IndexConfig:
        return IndexConfig(
            contract_address=contract,
            database_url=database_url,
            schema=schema,
            from_block=first_block,
            to_block=last_block,
        )

    with psycopg.connect(database_url) as connection:
        drop_schema(connection, direct_schema)
        drop_schema(connection, hosted_schema)
    print(f"[{label}] indexing straight from anvil", file=sys.stderr)
    direct = index(config(direct_schema), JsonRpc.from_uri(url), on_batch=Progress("direct"))
    rules = Rules(latency=LATENCY_S, compute_units_per_second=BUDGET, log_rules=True, max_batch=MAX_BATCH)
    print(f"[{label}] indexing through the emulator ({LATENCY_S * 1000:.0f} ms, {BUDGET:g} CU/s)", file=sys.stderr)
    with HostedProvider(url, rules) as provider:
        rpc = JsonRpc.from_uri(provider.url, RpcOptions(budget=RpcBudget(BUDGET)))
        started = time.perf_counter()
        hosted = index(config(hosted_schema), rpc, on_batch=Progress("hosted"))
        seconds = time.perf_counter() - started
        counters = provider.counters
    found = differences(schema_snapshot(database_url, direct_schema), schema_snapshot(database_url, hosted_schema))
    with psycopg.connect(database_url) as connection:
        drop_schema(connection, direct_schema)
        drop_schema(connection, hosted_schema)
    floor = counters.compute_units / BUDGET
    return {
        "events": hosted.events,
        "blocks": last_block - first_block + 1,
        "exact": not found and hosted.events == direct.events,
        "differences": found,
        "index_seconds": round(seconds, 2),
        "index_floor_seconds": round(floor, 2),
        "floor_ratio": round(seconds / floor, 3) if floor else None,
        "compute_units": counters.compute_units,
        "cu_per_event": round(counters.compute_units / max(hosted.events, 1), 4),
        "requests": counters.requests,
        "calls": dict(counters.calls),
        "rate_limited": counters.rate_limited,
        "client_waited_seconds": round(rpc.stats.seconds_waiting, 2),
        "direct_seconds": round(direct.seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--states-per-tx", type=int, default=400)
    parser.add_argument("--small-events", type=int, default=5_000)
    parser.add_argument("--small-states-per-tx", type=int, default=13)
    options = parser.parse_args()
    database_url = (
        os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/test"
    )
    os.chdir(ROOT)
    result: dict = {}
    for label, events, per_tx in (
        ("main", options.events, options.states_per_tx),
        ("small", options.small_events, options.small_states_per_tx),
    ):
        if events <= 0:
            continue
        process, url = start_anvil()
        try:
            web3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 120}))
            print(f"[{label}] producing {events:,} events, {per_tx} states per transaction", file=sys.stderr)
            contract, first_block, last_block, _ = produce(web3, events, per_tx)
            figures = run(url, database_url, first_block, last_block, contract.address, label)
        finally:
            process.terminate()
            process.wait(timeout=10)
        figures["states_per_tx"] = per_tx
        if label == "main":
            result.update(figures)
        else:
            result["small_transactions"] = figures
    result.update(
        {
            "provider": f"emulator: {LATENCY_S * 1000:.0f} ms per request, {BUDGET:g} CU/s (1 s bucket, HTTP 429), "
            f"Alchemy's eth_getLogs rule, batches of at most {MAX_BATCH}",
            "client": f"JsonRpc with RpcBudget({BUDGET:g}) (index --rpc-budget {BUDGET:g})",
            "targets": {"floor_ratio": 1.3},
            "cpus": os.cpu_count(),
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"indexer through a hosted provider ({LATENCY_S * 1000:.0f} ms, {BUDGET:g} CU/s)")
    for column in ("chain", "events", "exact", "seconds", "floor s", "ratio", "CU/event", "429s"):
        table.add_column(column)
    for name, figures in (("main", result), ("small transactions", result.get("small_transactions"))):
        if not figures or "events" not in figures:
            continue
        table.add_row(
            f"{name} ({figures['states_per_tx']} states/tx)",
            f"{figures['events']:,}",
            str(figures["exact"]),
            f"{figures['index_seconds']:.1f}",
            f"{figures['index_floor_seconds']:.1f}",
            f"{figures['floor_ratio']:.2f}",
            f"{figures['cu_per_event']:.3f}",
            str(figures["rate_limited"]),
        )
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
