"""The chain-access layer against the hosted-provider emulator: retries, pacing, batches, topics.

These call `JsonRpc` and `ChainReader` directly; test_indexer_hosted.py runs whole indexings.
"""

from __future__ import annotations

import time

import pytest
from support.hosted_provider import ALCHEMY_RATE_LIMIT, HostedProvider

from tracker.chain.events import EventDecoder
from tracker.chain.reader import ChainReader
from tracker.chain.rpc import JsonRpc, RateLimitedError, RpcBudget, RpcError, RpcOptions
from tracker.errors import ChainError, ConfigurationError
from tracker.retry import RetryPolicy, is_transient

# Topics from the compiled ABI, as the verifier will filter by them.
TOPICS = {spec.name: topic for topic, spec in EventDecoder.for_tracker(b"\x00" * 20).by_topic.items()}
STATE_REGISTERED, INSTANCE_REGISTERED = TOPICS["StateRegistered"], TOPICS["InstanceRegistered"]
QUICK_RETRY = RetryPolicy(attempts=50, base_delay=0.05, max_delay=0.2, max_wait=1.0)


@pytest.fixture
def emulator(anvil):
    with HostedProvider(anvil.url) as provider:
        yield provider


def test_rate_limits_past_the_window_end_in_one_clear_error(emulator):
    emulator.rules.compute_units_per_second = 30  # eth_getLogs costs 60: the bucket never holds it
    rpc = JsonRpc.from_uri(emulator.url, RpcOptions(retry=QUICK_RETRY))
    started = time.perf_counter()
    with pytest.raises(RateLimitedError) as raised:
        rpc.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x0"}])
    assert time.perf_counter() - started < 1.0 + 1.0
    message = str(raised.value)
    assert message.startswith("eth_getLogs: the provider still answered with its rate limit after ")
    assert ALCHEMY_RATE_LIMIT in message
    assert message.endswith("(set --rpc-budget to your plan's compute units per second, or move to a larger plan)")
    assert not is_transient(raised.value)  # the tracker's poll-level retry does not retry it again


def test_a_rate_limit_is_never_a_range_refusal(emulator, anvil):
    emulator.rules.compute_units_per_second = 70  # one eth_getLogs (60 CU) per second or so
    reader = ChainReader(JsonRpc.from_uri(emulator.url), b"\x11" * 20, initial_span=200, lag_guard=0)
    anvil.mine(max(0, 1500 - anvil.web3.eth.block_number))
    start = 0
    for _ in range(3):
        start = reader.logs(start, anvil.web3.eth.block_number)[0] + 1
    assert emulator.counters.rate_limited > 0
    assert reader.refusals == 0
    assert reader.span >= 800  # sparse answers widened the range; the 429s did not narrow it


def test_retry_after_is_honoured(emulator):
    emulator.rules.compute_units_per_second = 20
    emulator.rules.retry_after = 1
    rpc = JsonRpc.from_uri(emulator.url)
    rpc.call("eth_getBlockByNumber", ["0x0", False])
    started = time.perf_counter()
    rpc.call("eth_getBlockByNumber", ["0x0", False])  # refused once, then asked to wait a second
    assert time.perf_counter() - started >= 1.0
    assert rpc.stats.rate_limited == 1


def test_a_budget_paces_requests_under_the_plan(emulator):
    emulator.rules.compute_units_per_second = 200
    rpc = JsonRpc.from_uri(emulator.url, RpcOptions(budget=RpcBudget(200)))
    started = time.perf_counter()
    rpc.batch([("eth_getBlockByNumber", [hex(0), False])] * 40)  # 800 CU: about 3.5 s past the first burst
    elapsed = time.perf_counter() - started
    assert emulator.counters.rate_limited == 0
    assert elapsed >= (800 - 100) / 200 * 0.9
    assert max(emulator.counters.batch_sizes) <= 5  # half a second of budget: 100 CU, five headers


def test_requests_per_second_budget(emulator):
    rpc = JsonRpc.from_uri(emulator.url, RpcOptions(budget=RpcBudget(10, per_request=True)))
    started = time.perf_counter()
    for _ in range(15):
        rpc.call("eth_chainId", [])
    assert time.perf_counter() - started >= (15 - 5) / 10 * 0.9


def test_transient_faults_of_writes_are_not_retried(emulator):
    emulator.rules.fault_every, emulator.rules.faults = 1, ("502",)
    rpc = JsonRpc.from_uri(emulator.url, RpcOptions(retry=QUICK_RETRY))
    with pytest.raises(ChainError) as raised:
        rpc.call("eth_sendRawTransaction", ["0x00"])
    assert (
        str(raised.value)
        == "eth_sendRawTransaction failed: HTTP 502 Bad Gateway (not retried: it may have been carried out)"
    )
    assert emulator.counters.requests == 1


def test_batches_are_cut_to_the_learned_cap(emulator):
    emulator.rules.max_batch, emulator.rules.batch_refusal = 7, "erigon"
    rpc = JsonRpc.from_uri(emulator.url)
    results = rpc.batch([("eth_getBlockByNumber", [hex(0), False])] * 30)
    assert len(results) == 30 and all(r["number"] == "0x0" for r in results)
    rpc.batch([("eth_getBlockByNumber", [hex(0), False])] * 30)
    assert emulator.counters.refused["batch-cap"] == 1
    assert max(emulator.counters.batch_sizes[1:]) == 7


def test_topic_filters(anvil, deployed, register_execution):
    instance = deployed.instance_key(0, register_execution(deployed, "topic-instance", 3, model="topic-model"))
    register_execution(deployed, "other", 1, model="topic-model")
    reader = ChainReader(anvil.rpc(), bytes.fromhex(deployed.address[2:]))
    head = anvil.web3.eth.block_number
    everything = reader.logs(deployed.deploy_block, head)[1]
    states_of_instance = reader.logs(deployed.deploy_block, head, topics=[STATE_REGISTERED, instance])[1]
    either_event = reader.logs(deployed.deploy_block, head, topics=[[STATE_REGISTERED, INSTANCE_REGISTERED]])[1]
    assert states_of_instance == [
        log for log in everything if log.topics[0] == STATE_REGISTERED and log.topics[1] == instance
    ]
    assert len(states_of_instance) == 3
    assert either_event == [log for log in everything if log.topics[0] in (STATE_REGISTERED, INSTANCE_REGISTERED)]
    with pytest.raises(ConfigurationError) as raised:
        reader.logs(deployed.deploy_block, head, topics=[b"short"])
    assert str(raised.value) == "a log topic has 32 bytes, got 5"


def test_a_provider_refusing_batches_mid_run_gets_single_calls_without_deadlock(emulator):
    # Several chunks in flight on the batch threads when the refusal arrives: each turns into
    # single calls, which must not wait for the very threads they occupy.
    import threading

    emulator.rules.batches = False
    rpc = JsonRpc.from_uri(emulator.url, RpcOptions(batch_size=10))
    results: list = []
    worker = threading.Thread(target=lambda: results.append(rpc.batch([("eth_chainId", [])] * 60)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "batch() is stuck"
    assert results == [["0x7a69"] * 60]
    assert rpc.stats.batches_refused
    rpc.close()


def test_blocks_read_by_hash_stop_at_the_budget_and_hand_their_headers_on(anvil, deployed, register_execution):
    for number in range(3):  # three blocks: 7 logs (model, instance, 5 states), then 6 and 6
        register_execution(deployed, f"guarded-{number}", 5, model="guarded-model")
    head = anvil.web3.eth.block_number
    rpc = anvil.rpc()
    reader = ChainReader(rpc, bytes.fromhex(deployed.address[2:]), max_logs=5)
    reader.head_and_header(None)  # the head as the lag guard sees it: the three blocks are within 8 of it

    stopped, logs = reader.logs(head - 2, head)
    assert stopped == head - 2  # the first block alone is over the budget: it comes whole, and ends the batch
    assert len(logs) == 7 and {log.block_number for log in logs} == {head - 2}
    requests = rpc.stats.requests
    headers = reader.headers([head - 2])
    assert rpc.stats.requests == requests  # read for the guard, not read again
    assert headers[head - 2].hash == bytes(anvil.web3.eth.get_block(head - 2).hash)

    stopped, logs = reader.logs(head - 1, head)
    assert (stopped, len(logs)) == (head - 1, 6)
    stopped, logs = reader.logs(head, head)
    assert (stopped, len(logs)) == (head, 6)


@pytest.mark.parametrize("batches", [True, False])
def test_a_settled_batch_hands_back_a_revert_in_its_place(emulator, deployed, batches):
    """Calls that may revert (the verifier's ENS reads) share one batch: with `settled`, a revert
    comes back as its RpcError where its result would be, the other calls' results beside it; the
    same when the provider refuses batches and the calls go one by one. Without `settled` the
    revert raises, as before."""
    emulator.rules.batches = batches
    rpc = JsonRpc.from_uri(emulator.url)
    calls = [
        ("eth_chainId", []),
        ("eth_call", [{"to": deployed.address, "data": "0xdeadbeef"}, "latest"]),  # no such function: reverts
        ("eth_getCode", [deployed.address, "latest"]),
    ]
    before = emulator.counters.requests
    chain_id, reverted, code = rpc.batch(calls, str, settled=True)
    assert int(chain_id, 16) == 31337
    assert isinstance(reverted, RpcError) and reverted.method == "eth_call"
    assert len(code) > 2
    assert emulator.counters.requests - before == (1 if batches else 1 + 3)  # the refused batch, then singles
    with pytest.raises(RpcError):
        rpc.batch(calls, str)
