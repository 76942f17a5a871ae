"""The hosted-provider emulator itself: each rule triggers as configured, with the provider's wording.

Plain `requests` talks to it here, not our client, so that these tests check the emulator alone.
"""

from __future__ import annotations

import time

import pytest
import requests
from support.hosted_provider import (
    ALCHEMY_RATE_LIMIT,
    BATCHES_DISABLED,
    BEYOND_HEAD,
    GETH_BATCH_TOO_LARGE,
    INFURA_RATE_LIMIT,
    UNKNOWN_BLOCK,
    HostedProvider,
)


def post(url: str, payload, timeout: float = 10) -> requests.Response:
    return requests.post(url, json=payload, timeout=timeout)


def call(method: str, params=None, request_id: int = 1) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or []}


@pytest.fixture
def emulator(anvil):
    with HostedProvider(anvil.url) as provider:
        yield provider


@pytest.fixture
def logs_in_blocks(anvil, deployed, register_execution):
    """Six registerExecution transactions, one block each: 3 logs in the first (model, instance, state), 2 in each other."""
    register_execution(deployed, "i-0", 1, model="m")
    first = anvil.web3.eth.block_number
    for number in range(1, 6):
        register_execution(deployed, f"i-{number}", 1, model="m")
    return deployed, first, anvil.web3.eth.block_number


def test_answers_like_its_upstream(emulator, anvil):
    answer = post(emulator.url, call("eth_blockNumber")).json()
    assert int(answer["result"], 16) == anvil.web3.eth.block_number
    batch = post(emulator.url, [call("eth_chainId", request_id=7), call("eth_blockNumber", request_id=8)]).json()
    assert [a["id"] for a in batch] == [7, 8]
    assert int(batch[0]["result"], 16) == 31337
    assert emulator.counters.batch_sizes == [2]


def test_latency_delays_every_request(emulator):
    emulator.rules.latency = 0.2
    started = time.perf_counter()
    post(emulator.url, call("eth_chainId"))
    post(emulator.url, [call("eth_chainId"), call("eth_chainId", request_id=2)])
    assert time.perf_counter() - started >= 0.4


def test_alchemy_budget_refuses_with_http_429_and_its_body(emulator):
    emulator.rules.compute_units_per_second = 100  # a bucket of 100 CU; eth_getBlockByNumber costs 20
    statuses = [post(emulator.url, call("eth_getBlockByNumber", ["0x0", False])).status_code for _ in range(5)]
    assert statuses == [200] * 5
    refused = post(emulator.url, call("eth_getBlockByNumber", ["0x0", False], request_id=42))
    assert refused.status_code == 429
    assert refused.json() == {"jsonrpc": "2.0", "id": 42, "error": {"code": 429, "message": ALCHEMY_RATE_LIMIT}}
    assert post(emulator.url, call("eth_chainId")).status_code == 200  # eth_chainId costs 0 CU
    assert emulator.counters.compute_units == 100
    assert emulator.counters.rate_limited == 1


def test_a_batch_costs_the_sum_of_its_calls(emulator):
    emulator.rules.compute_units_per_second = 100
    six_headers = [call("eth_getBlockByNumber", ["0x0", False], request_id=i) for i in range(6)]
    assert post(emulator.url, six_headers).status_code == 429  # 120 CU: more than the bucket holds
    assert post(emulator.url, six_headers[:5]).status_code == 200
    time.sleep(0.35)  # 35 CU flow back in: one 26-CU eth_call fits, a second does not
    assert post(emulator.url, call("eth_call", [{"to": "0x" + "00" * 20}, "latest"])).status_code == 200
    assert post(emulator.url, call("eth_call", [{"to": "0x" + "00" * 20}, "latest"])).status_code == 429


def test_retry_after_header(emulator):
    emulator.rules.compute_units_per_second = 10
    emulator.rules.retry_after = 2
    post(emulator.url, call("eth_blockNumber"))
    refused = post(emulator.url, call("eth_blockNumber"))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "2"


@pytest.mark.parametrize("status", [429, 200])
def test_infura_budget_answers_code_32005(emulator, status):
    emulator.rules.compute_units_per_second = 10
    emulator.rules.style = "infura"
    emulator.rules.rate_limit_status = status
    post(emulator.url, call("eth_blockNumber"))
    refused = post(emulator.url, call("eth_blockNumber", request_id=3))
    assert refused.status_code == status
    error = refused.json()["error"]
    assert (error["code"], error["message"]) == (-32005, INFURA_RATE_LIMIT)
    assert error["data"]["backoff_seconds"] == 1.0


def test_rate_limit_per_batch_entry(emulator):
    emulator.rules.compute_units_per_second = 100
    emulator.rules.rate_limit_entries = True
    answers = post(emulator.url, [call("eth_getBlockByNumber", ["0x0", False], request_id=i) for i in range(8)])
    assert answers.status_code == 200
    body = answers.json()
    assert [("result" in a) for a in body] == [True] * 5 + [False] * 3
    assert {a["error"]["code"] for a in body[5:]} == {429}
    assert emulator.counters.rate_limited_entries == 3


def _get_logs(url: str, address: str, first: int, last: int, request_id: int = 1) -> dict:
    params = [{"address": address, "fromBlock": hex(first), "toBlock": hex(last)}]
    return post(url, call("eth_getLogs", params, request_id)).json()


def test_alchemy_log_rule_refuses_wide_dense_ranges_with_a_range_that_works(emulator, logs_in_blocks):
    deployed, first, last = logs_in_blocks  # 13 logs over 6 blocks
    emulator.rules.log_rules = True
    emulator.rules.max_logs, emulator.rules.wide_range = 5, 3  # scaled down: > 3 blocks may hold <= 5 logs
    assert len(_get_logs(emulator.url, deployed.address, first, first + 2)["result"]) == 7  # narrow: no cap
    refused = _get_logs(emulator.url, deployed.address, first, last)["error"]
    assert refused["code"] == -32602
    assert refused["message"].startswith("Log response size exceeded. You can make eth_getLogs requests with up to")
    suggested = refused["message"].rsplit("this block range should work: [", 1)[1].rstrip("]").split(", ")
    assert int(suggested[0], 16) == first
    answer = _get_logs(emulator.url, deployed.address, first, int(suggested[1], 16))
    assert "result" in answer


def test_infura_log_rule_refuses_more_results_with_the_range_in_data(emulator, logs_in_blocks):
    deployed, first, last = logs_in_blocks
    emulator.rules.style = "infura"
    emulator.rules.log_rules = True
    emulator.rules.max_logs = 5
    refused = _get_logs(emulator.url, deployed.address, first, last)["error"]
    assert refused["code"] == -32005
    assert refused["message"] == (
        f"query returned more than 5 results. Try with this block range [{hex(first)}, {hex(first + 1)}]."
    )
    assert refused["data"] == {"from": hex(first), "to": hex(first + 1), "limit": 5}
    assert len(_get_logs(emulator.url, deployed.address, first, first + 1)["result"]) == 5


@pytest.mark.parametrize(
    ("style", "code", "message"),
    [
        (
            "alchemy",
            -32600,
            "You can make eth_getLogs requests with up to a 2 block range. Based on your parameters, "
            "this block range should work: [{first}, {second}]",
        ),
        ("infura", -32602, "range 6 exceeds limit of 2"),
    ],
)
def test_block_range_limit(emulator, logs_in_blocks, style, code, message):
    deployed, first, last = logs_in_blocks
    emulator.rules.style = style
    emulator.rules.max_block_range = 2
    refused = _get_logs(emulator.url, deployed.address, first, last)["error"]
    assert refused == {"code": code, "message": message.format(first=hex(first), second=hex(first + 1))}
    assert "result" in _get_logs(emulator.url, deployed.address, first, first + 1)


def test_batch_cap_as_geth_refuses(emulator):
    emulator.rules.max_batch = 3
    assert len(post(emulator.url, [call("eth_chainId", request_id=i) for i in range(3)]).json()) == 3
    refused = post(emulator.url, [call("eth_chainId", request_id=10 + i) for i in range(4)]).json()
    assert refused == [{"jsonrpc": "2.0", "id": 10, "error": {"code": -32600, "message": GETH_BATCH_TOO_LARGE}}]


def test_batch_cap_as_erigon_refuses(emulator):
    emulator.rules.max_batch, emulator.rules.batch_refusal = 3, "erigon"
    refused = post(emulator.url, [call("eth_chainId", request_id=i) for i in range(5)]).json()
    assert refused["error"] == {
        "code": -32000,
        "message": "batch limit 3 exceeded (can increase by --rpc.batch.limit). Requested batch of size: 5",
    }


def test_batches_refused_altogether(emulator):
    emulator.rules.batches = False
    refused = post(emulator.url, [call("eth_chainId"), call("eth_chainId", request_id=2)]).json()
    assert refused["error"] == {"code": -32202, "message": BATCHES_DISABLED}
    assert "result" in post(emulator.url, call("eth_chainId")).json()
    assert emulator.counters.refused["batch-refused"] == 1


def test_intermittent_faults(emulator):
    emulator.rules.fault_every, emulator.rules.faults = 2, ("502", "reset")
    assert post(emulator.url, call("eth_chainId")).status_code == 200
    bad_gateway = post(emulator.url, call("eth_chainId"))
    assert bad_gateway.status_code == 502 and "Bad Gateway" in bad_gateway.text
    assert post(emulator.url, call("eth_chainId")).status_code == 200
    with pytest.raises(requests.ConnectionError):
        post(emulator.url, call("eth_chainId"))
    assert emulator.counters.faults == {"502": 1, "reset": 1}


def test_a_request_that_never_answers(emulator):
    emulator.rules.hang_from = 2
    assert post(emulator.url, call("eth_chainId")).status_code == 200
    started = time.perf_counter()
    with pytest.raises(requests.Timeout):
        post(emulator.url, call("eth_chainId"), timeout=0.5)
    assert time.perf_counter() - started < 5
    assert emulator.counters.hung == 1


def test_lagging_log_node_answers_short(emulator, logs_in_blocks, anvil):
    deployed, first, last = logs_in_blocks
    complete = _get_logs(emulator.url, deployed.address, first, last)["result"]
    emulator.rules.log_lag = 2
    short = _get_logs(emulator.url, deployed.address, first, last)["result"]
    assert short == [log for log in complete if int(log["blockNumber"], 16) <= last - 2]
    recent = anvil.web3.eth.get_block(last).hash.hex()
    by_hash = post(emulator.url, call("eth_getLogs", [{"blockHash": "0x" + recent.removeprefix("0x")}])).json()
    assert by_hash["error"] == {"code": -32000, "message": UNKNOWN_BLOCK}
    older = anvil.web3.eth.get_block(last - 2).hash.hex()
    by_hash = post(emulator.url, call("eth_getLogs", [{"blockHash": "0x" + older.removeprefix("0x")}])).json()
    assert len(by_hash["result"]) == 2
    emulator.rules.lag_answer = "error"
    assert _get_logs(emulator.url, deployed.address, first, last)["error"] == {"code": -32602, "message": BEYOND_HEAD}
