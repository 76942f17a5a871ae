"""`index` through a hosted-provider emulator: every table equal to a direct run against anvil.

Each test builds a chain with a dense stretch (a few hundred logs in a dozen blocks), a sparse one
(hundreds of empty blocks) and one of every event, indexes it once straight from anvil and once
through the emulator under one provider rule, and compares the two schemas table by table.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from dataclasses import replace

import psycopg
import pytest
from support.hosted_provider import HostedProvider, Rules
from support.tables import BATCH_BOUNDARY_TABLES, differences, schema_snapshot

from tracker.chain.rpc import JsonRpc, ProviderUnavailableError, RpcBudget, RpcOptions
from tracker.indexer.engine import IndexConfig, index
from tracker.indexer.store import drop_schema
from tracker.retry import RetryPolicy


@pytest.fixture
def direct_schema(database_url):
    name = f"indexer_direct_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(database_url) as connection:
        drop_schema(connection, name)


@pytest.fixture
def chain(anvil, deployed, produce_every_event, register_execution):
    """The chain every test indexes: (deployed, last block). Ends with events in its last blocks."""
    produce_every_event(deployed)
    for number in range(12):
        register_execution(deployed, f"dense-{number}", 25, model="dense-model")
    anvil.mine(300)
    for number in range(6):
        register_execution(deployed, f"tail-{number}", 3, model="tail-model")
    return deployed, anvil.web3.eth.block_number


def _config(deployed, database_url, schema, last, **overrides) -> IndexConfig:
    return IndexConfig(
        contract_address=deployed.address,
        database_url=database_url,
        schema=schema,
        from_block=deployed.deploy_block,
        to_block=last,
        **overrides,
    )


def _assert_exact(anvil, chain, database_url, schema, direct_schema, other_ranges=False, **overrides) -> None:
    """Every table equal to a direct run's; with `other_ranges` (the provider allowed other block
    ranges than anvil does), all but the table that also records where batches ended."""
    deployed, last = chain
    index(_config(deployed, database_url, direct_schema, last, **overrides), anvil.rpc())
    ignore = BATCH_BOUNDARY_TABLES if other_ranges else frozenset()
    found = differences(schema_snapshot(database_url, direct_schema), schema_snapshot(database_url, schema), ignore)
    assert found == []


@pytest.mark.parametrize(
    ("style", "status", "per_entry"),
    [("alchemy", 429, False), ("infura", 429, False), ("infura", 200, False), ("alchemy", 200, True)],
    ids=["alchemy-http-429", "infura-http-429", "infura-32005-in-200", "alchemy-per-batch-entry"],
)
def test_index_through_rate_limits_is_exact(
    anvil, chain, database_url, schema, direct_schema, style, status, per_entry
):
    rules = Rules(
        latency=0.005,
        compute_units_per_second=330,
        style=style,
        rate_limit_status=status,
        rate_limit_entries=per_entry,
        infura_backoff_seconds=0.2,
    )
    deployed, last = chain
    with HostedProvider(anvil.url, rules) as provider:
        summary = index(_config(deployed, database_url, schema, last), JsonRpc.from_uri(provider.url))
        refused = provider.counters.rate_limited + provider.counters.rate_limited_entries
    assert refused > 0  # the run met the rate limit, and went through it
    assert summary.last_block == last
    _assert_exact(anvil, chain, database_url, schema, direct_schema)


def test_a_budget_keeps_the_run_under_the_rate_limit(anvil, chain, database_url, schema, direct_schema):
    deployed, last = chain
    rules = Rules(latency=0.005, compute_units_per_second=330)
    with HostedProvider(anvil.url, rules) as provider:
        rpc = JsonRpc.from_uri(provider.url, RpcOptions(budget=RpcBudget(330)))
        index(_config(deployed, database_url, schema, last), rpc)
        assert provider.counters.rate_limited == 0
        assert max(provider.counters.batch_sizes) * 20 <= 330 / 2  # no batch costs more than half a second
    assert rpc.stats.rate_limited == 0
    _assert_exact(anvil, chain, database_url, schema, direct_schema)


@pytest.mark.parametrize("style", ["alchemy", "infura"])
def test_log_rules_narrow_to_the_suggested_range_and_grow_back(
    anvil, chain, database_url, schema, direct_schema, style
):
    # Scaled down: at most 40 logs per answer (Infura), or per answer wider than 20 blocks (Alchemy).
    deployed, last = chain
    rules = Rules(style=style, log_rules=True, max_logs=40, wide_range=20)
    with HostedProvider(anvil.url, rules) as provider:
        index(_config(deployed, database_url, schema, last, max_batch_logs=40), JsonRpc.from_uri(provider.url))
        refusals = sum(provider.counters.refused.values())
        ranges = provider.counters.log_ranges
    dense_end = max(first for first, _, count in ranges if count >= 26)
    sparse = [last_block - first + 1 for first, last_block, count in ranges if first > dense_end and count == 0]
    assert 1 <= refusals <= 3  # the suggested range is taken at once, not probed by halving
    assert sparse and max(sparse) >= 64  # past the dense stretch, ranges widen again
    for first, last_block, count in ranges:
        width = last_block - first + 1
        assert count <= 40 or (style == "alchemy" and width <= 20)
    _assert_exact(anvil, chain, database_url, schema, direct_schema, other_ranges=True, max_batch_logs=40)


@pytest.mark.parametrize("style", ["alchemy", "infura"])
def test_a_stated_block_range_limit_is_kept_after_one_refusal(anvil, chain, database_url, schema, direct_schema, style):
    deployed, last = chain
    with HostedProvider(anvil.url, Rules(style=style, max_block_range=10)) as provider:
        index(_config(deployed, database_url, schema, last), JsonRpc.from_uri(provider.url))
        assert provider.counters.refused == {"log-range": 1}
        assert max(b - a + 1 for a, b, _ in provider.counters.log_ranges) == 10
    _assert_exact(anvil, chain, database_url, schema, direct_schema, other_ranges=True)


@pytest.mark.parametrize(
    ("rules", "most_refusals"),
    [
        (Rules(max_batch=4, batch_refusal="erigon"), 1),  # states its limit: one refusal
        (Rules(max_batch=4, batch_refusal="geth"), 7),  # does not: halved until accepted, then kept
        (Rules(batches=False), 1),  # no batches: single calls from then on
    ],
    ids=["erigon-cap", "geth-cap", "no-batches"],
)
def test_batch_caps_and_refusals_are_learned_once(
    anvil, chain, database_url, schema, direct_schema, rules, most_refusals
):
    deployed, last = chain
    with HostedProvider(anvil.url, rules) as provider:
        rpc = JsonRpc.from_uri(provider.url)
        index(_config(deployed, database_url, schema, last), rpc)
        assert 1 <= sum(provider.counters.refused.values()) <= most_refusals
        accepted = [size for size in provider.counters.batch_sizes if rules.batches and size <= 4]
    assert rpc.stats.batches_refused is (not rules.batches)
    if rules.batches:
        assert rpc.stats.batch_cap is not None and rpc.stats.batch_cap <= 4
        assert len(accepted) > 5
    _assert_exact(anvil, chain, database_url, schema, direct_schema)


def test_index_through_intermittent_5xx_and_resets(anvil, chain, database_url, schema, direct_schema):
    deployed, last = chain
    rules = Rules(fault_every=3, faults=("502", "503", "500", "reset"))
    with HostedProvider(anvil.url, rules) as provider:
        index(_config(deployed, database_url, schema, last), JsonRpc.from_uri(provider.url))
        assert set(provider.counters.faults) == {"502", "503", "500", "reset"}
    _assert_exact(anvil, chain, database_url, schema, direct_schema)


def test_a_provider_that_never_answers_fails_clearly_and_in_bounded_time(anvil, deployed, database_url, schema):
    options = RpcOptions(timeout=0.5, retry=RetryPolicy(attempts=50, base_delay=0.05, max_delay=0.2, max_wait=1.5))
    with HostedProvider(anvil.url, Rules(hang_from=1)) as provider:
        started = time.perf_counter()
        with pytest.raises(ProviderUnavailableError) as raised:
            index(_config(deployed, database_url, schema, None), JsonRpc.from_uri(provider.url, options))
        elapsed = time.perf_counter() - started
    message = str(raised.value)
    assert message.startswith("eth_chainId failed: no answer within 0.5 s (")
    assert "check the endpoint, or raise --rpc-timeout or --rpc-retry-window" in message
    assert elapsed < 1.5 + 0.5 + 2  # the retry window and one more timeout, with a margin


def test_the_command_stops_with_one_line_when_the_provider_stops_answering(anvil, deployed, database_url, schema):
    with HostedProvider(anvil.url) as provider:
        # ape connects through the emulator too; our reader's first batch never gets an answer.
        provider.rules.hang_batches = True
        started = time.perf_counter()
        result = subprocess.run(
            [
                "ape", "run", "index", "--network", provider.url, "--contract", deployed.address,
                "--database", database_url, "--schema", schema, "--rpc-timeout", "0.5", "--rpc-retry-window", "1",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("INFO")]
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: batch of 2 eth_getBlockByNumber failed: no answer within 0.5 s (")
    assert elapsed < 60


@pytest.mark.parametrize("lag_answer", ["silent", "error"])
def test_a_lagging_log_node_loses_no_logs(anvil, chain, database_url, schema, direct_schema, lag_answer):
    """The log node is 2 blocks behind the head node, which moves on while the run waits for it."""
    deployed, last = chain
    stop = threading.Event()

    def mine() -> None:
        while not stop.wait(0.25):
            anvil.mine(1)

    miner = threading.Thread(target=mine, daemon=True)
    with HostedProvider(anvil.url, Rules(log_lag=2, lag_answer=lag_answer)) as provider:
        miner.start()
        try:
            index(_config(deployed, database_url, schema, last), JsonRpc.from_uri(provider.url))
        finally:
            stop.set()
            miner.join(timeout=5)
        assert provider.counters.log_hashes > 0  # the last blocks were read by hash
    _assert_exact(anvil, chain, database_url, schema, direct_schema, other_ranges=True)


def test_the_command_with_a_budget_reports_what_the_provider_did(anvil, chain, database_url, schema):
    deployed, last = chain
    with HostedProvider(anvil.url, Rules(latency=0.005, compute_units_per_second=330)) as provider:
        result = subprocess.run(
            [
                "ape", "run", "index", "--network", provider.url, "--contract", deployed.address,
                "--database", database_url, "--schema", schema, "--from-block", str(deployed.deploy_block),
                "--to-block", str(last), "--rpc-budget", "330", "--json",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["summary"]["last_block"] == last
    assert document["rpc"]["rate_limited"] == 0
    assert document["rpc"]["compute_units"] > 0


def test_following_waits_out_a_provider_that_stops_answering(anvil, chain, database_url, schema, direct_schema):
    # With --follow, a provider that keeps failing past the retry window is a node gone away: the run
    # says so, waits, and carries on from its cursor once the provider answers again.
    deployed, last = chain
    statuses: list[str] = []
    options = RpcOptions(retry=RetryPolicy(attempts=50, base_delay=0.05, max_delay=0.2, max_wait=0.5))
    with HostedProvider(anvil.url, Rules(faults=("502",))) as provider:

        def on_batch(_batch: object) -> None:
            if not statuses:
                provider.rules.fault_every = 1  # from the first batch on, every request fails

        def on_status(message: str) -> None:
            statuses.append(message)
            provider.rules.fault_every = 0  # until the run has said so: then the provider is back

        config = _config(deployed, database_url, schema, None, follow=True, poll_interval=0.1, max_polls=2)
        config = replace(config, batch_blocks=50)
        summary = index(config, JsonRpc.from_uri(provider.url, options), on_batch=on_batch, on_status=on_status)
        assert provider.counters.faults["502"] > 0
    assert summary.reconnects == 1
    assert statuses[0].startswith("lost the node (") and "HTTP 502 Bad Gateway" in statuses[0]
    assert summary.last_block is not None and summary.last_block >= last
    _assert_exact(anvil, (deployed, summary.last_block), database_url, schema, direct_schema, other_ranges=True)
