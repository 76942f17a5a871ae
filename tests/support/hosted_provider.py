"""A hosted JSON-RPC provider on loopback: an HTTP server in front of an upstream node (anvil)
that imitates the published limits of Alchemy and Infura, and the faults of a load-balanced node.

    with HostedProvider(anvil_url, Rules(latency=0.06, compute_units_per_second=330)) as provider:
        rpc = JsonRpc.from_uri(provider.url)

Every rule is off until configured, and `Rules` may be changed while the server runs. What each
rule imitates, and where its numbers and wording come from:

* `latency`: seconds before each HTTP request is answered (hosted providers are 30-150 ms away).
* `compute_units_per_second`: a token bucket holding `burst_seconds` of budget, charged per call
  from `costs`, Alchemy's throughput costs (https://www.alchemy.com/docs/reference/compute-unit-costs:
  the "Throughput CU" column where it has a value, else "CU"); a batch costs the sum of its calls,
  and a request the bucket cannot pay for is refused, not charged. Alchemy evaluates its limit
  over a 10-second window (https://www.alchemy.com/docs/reference/throughput); the default here
  is one second, the stricter reading. Refusals: with `style="alchemy"`, HTTP 429 and Alchemy's
  body (code 429, "Your app has exceeded its compute units per second capacity..."); with
  `style="infura"`, code -32005 "project ID request rate exceeded" with `data.backoff_seconds`
  (https://docs.infura.io/api/networks/ethereum/how-to/avoid-rate-limiting), by default with
  HTTP 429 as that page says (`rate_limit_status=200` puts it in an HTTP 200 answer).
  `retry_after` adds a Retry-After header; `rate_limit_entries` answers a batch with HTTP 200
  and a rate-limit error in each entry the bucket cannot pay for (as some load balancers do).
* `log_rules`: the eth_getLogs result rule of the style. Alchemy: a range wider than 2,000
  blocks may return at most 10,000 logs, else code -32602 "Log response size exceeded. You can
  make eth_getLogs requests with up to a 2K block range ... this block range should work: [a, b]"
  (wording from answers quoted in ethers-io/ethers.js#4703). Infura: more than 10,000 results are
  refused with -32005 "query returned more than 10000 results. Try with this block range [a, b]."
  and `data` {"from", "to", "limit"} (same source).
* `max_block_range`: a hard block-range limit. Alchemy's free tier: code -32600 "You can make
  eth_getLogs requests with up to a 500 block range. Based on your parameters, this block range
  should work: [a, b]" (quoted in risc0/risc0-ethereum#656; the limit is 10 blocks on Ethereum
  today, https://www.alchemy.com/docs/chains/ethereum/ethereum-api-endpoints/eth-get-logs).
  Infura: code -32602 "range 1000000 exceeds limit of 10000" (INFURA/infura#237).
* `max_batch`: batches of more calls are refused: as geth does ("batch too large", -32600, as
  the only entry of an array; go-ethereum rpc/handler.go) or as Erigon does ("batch limit 100
  exceeded (can increase by --rpc.batch.limit). Requested batch of size: 401", one object;
  erigontech/erigon#17245). `batches=False` refuses every batch with "Batch requests are
  disabled" (-32202, hiero-ledger/hiero-json-rpc-relay).
* `fault_every`: every n-th HTTP request fails with the next of `faults`: "500", "502", "503"
  (an HTML error page, as a proxy gives) or "reset" (the connection is reset, no answer).
* `hang_from`: from the n-th HTTP request on, nothing is answered (the connection stays open
  until the server stops, at most `HANG_LIMIT_S`); `hang_batches`: no batch is answered.
* `log_lag`: a load-balanced pair whose log node lags its header node by that many blocks:
  eth_getLogs sees the chain only up to head - log_lag. With `lag_answer="silent"` a range past
  it is answered short, as geth behind a load balancer did (ethereum/go-ethereum#24078); with
  "error" it is refused with -32602 "block range extends beyond current head block" as current
  clients do (ethereum/execution-apis#875). A block hash it does not have is refused with geth's
  "unknown block" (-32000).
* `after_range_logs`: called with (first, last) after a ranged eth_getLogs was answered upstream
  and before the answer goes out: a test runs a reorganisation there, so that the logs come from
  one chain and every later read (headers, receipts) from another, as happens when a
  load-balanced provider's log node and header node sit on two sides of a reorg, or when the
  chain reorganises between two requests of the indexer.

Loopback only and bounded: the server binds 127.0.0.1, and `counters` records what it saw.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

HANG_LIMIT_S = 120.0

# Alchemy's throughput cost per method (see the module docstring); others cost DEFAULT_COST.
ALCHEMY_THROUGHPUT_CU: dict[str, int] = {
    "net_version": 0,
    "eth_chainId": 0,
    "eth_syncing": 0,
    "eth_blockNumber": 10,
    "eth_feeHistory": 10,
    "eth_maxPriorityFeePerGas": 10,
    "eth_createAccessList": 10,
    "eth_getTransactionReceipt": 20,
    "eth_getBlockByNumber": 20,
    "eth_getBlockByHash": 20,
    "eth_getTransactionByHash": 20,
    "eth_gasPrice": 20,
    "eth_getBalance": 20,
    "eth_getCode": 20,
    "eth_getStorageAt": 20,
    "eth_getTransactionCount": 20,
    "eth_estimateGas": 20,
    "eth_call": 26,
    "eth_getLogs": 60,
    "eth_sendRawTransaction": 250,
    "eth_getBlockReceipts": 500,
}
DEFAULT_COST = 20

ALCHEMY_RATE_LIMIT = (
    "Your app has exceeded its compute units per second capacity. If you have retries enabled, you can "
    "safely ignore this message. If not, check out https://docs.alchemy.com/reference/throughput"
)
INFURA_RATE_LIMIT = "project ID request rate exceeded"
ALCHEMY_LOG_SIZE = (
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on "
    "the response size, or you can request any block range with a cap of 10K logs in the response. Based on "
    "your parameters and the response size limit, this block range should work: [{first}, {last}]"
)
ALCHEMY_LOG_RANGE = (
    "You can make eth_getLogs requests with up to a {limit} block range. Based on your parameters, "
    "this block range should work: [{first}, {last}]"
)
INFURA_LOG_RESULTS = "query returned more than {limit} results. Try with this block range [{first}, {last}]."
INFURA_LOG_RANGE = "range {width} exceeds limit of {limit}"
GETH_BATCH_TOO_LARGE = "batch too large"
ERIGON_BATCH_LIMIT = "batch limit {limit} exceeded (can increase by --rpc.batch.limit). Requested batch of size: {size}"
BATCHES_DISABLED = "Batch requests are disabled"
UNKNOWN_BLOCK = "unknown block"
BEYOND_HEAD = "block range extends beyond current head block"
ERROR_PAGES = {
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
}


@dataclass
class Rules:
    """What the emulated provider enforces (see the module docstring); everything off by default."""

    latency: float = 0.0
    compute_units_per_second: float | None = None
    burst_seconds: float = 1.0
    costs: dict[str, int] = field(default_factory=lambda: dict(ALCHEMY_THROUGHPUT_CU))
    style: str = "alchemy"
    rate_limit_status: int = 429
    retry_after: float | None = None
    infura_backoff_seconds: float = 1.0
    rate_limit_entries: bool = False
    log_rules: bool = False
    max_logs: int = 10_000
    wide_range: int = 2_000
    max_block_range: int | None = None
    max_batch: int | None = None
    batch_refusal: str = "geth"
    batches: bool = True
    fault_every: int = 0
    faults: tuple[str, ...] = ("502", "503", "500", "reset")
    hang_from: int | None = None
    hang_batches: bool = False
    log_lag: int = 0
    lag_answer: str = "silent"
    after_range_logs: Callable[[int, int], None] | None = None

    def cost(self, method: str) -> int:
        return self.costs.get(method, DEFAULT_COST)


@dataclass
class Counters:
    """What the emulator saw and did."""

    requests: int = 0
    calls: Counter = field(default_factory=Counter)
    compute_units: int = 0
    rate_limited: int = 0
    rate_limited_entries: int = 0
    faults: Counter = field(default_factory=Counter)
    hung: int = 0
    refused: Counter = field(default_factory=Counter)
    batch_sizes: list[int] = field(default_factory=list)
    log_ranges: list[tuple[int, int, int]] = field(default_factory=list)
    log_hashes: int = 0


class _Bucket:
    def __init__(self, rate: float, capacity: float):
        self.rate = rate
        self.capacity = capacity
        self.level = capacity
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self, cost: float) -> bool:
        with self.lock:
            now = time.monotonic()
            self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
            self.last = now
            if self.level >= cost:
                self.level -= cost
                return True
            return False


class _ProviderError(Exception):
    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            self.error["data"] = data


class HostedProvider:
    """The emulator: start it with `with`, point a client at `url`."""

    def __init__(self, upstream: str, rules: Rules | None = None):
        self.upstream = upstream
        self.rules = rules or Rules()
        self.counters = Counters()
        self._lock = threading.Lock()
        self._bucket: _Bucket | None = None
        self._bucket_key: tuple[float, float] | None = None
        self._stopping = threading.Event()
        self._local = threading.local()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                emulator._handle(self)

            def finish(self) -> None:
                try:
                    super().finish()
                except (OSError, ValueError):  # the connection was reset on purpose
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # resets and hung connections end in socket errors, on purpose

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="hosted-provider", daemon=True)

    def __enter__(self) -> HostedProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    # -- one HTTP request ---------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        rules = self.rules
        with self._lock:
            self.counters.requests += 1
            number = self.counters.requests
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if (rules.hang_from is not None and number >= rules.hang_from) or (
            rules.hang_batches and body.lstrip().startswith(b"[")
        ):
            with self._lock:
                self.counters.hung += 1
            self._stopping.wait(HANG_LIMIT_S)
            handler.close_connection = True
            return
        if rules.latency > 0:
            time.sleep(rules.latency)
        if rules.fault_every and number % rules.fault_every == 0:
            kind = rules.faults[(number // rules.fault_every - 1) % len(rules.faults)]
            with self._lock:
                self.counters.faults[kind] += 1
            if kind == "reset":
                self._reset(handler)
            else:
                self._send(
                    handler, int(kind), f"<html><body><h1>{ERROR_PAGES[int(kind)]}</h1></body></html>", "text/html"
                )
            return
        try:
            request = json.loads(body)
        except json.JSONDecodeError:
            self._send_json(
                handler, 200, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
            )
            return
        if isinstance(request, list):
            self._batch(handler, request)
        else:
            self._single(handler, request)

    def _single(self, handler: BaseHTTPRequestHandler, request: dict) -> None:
        if not self._charge([request.get("method", "")]):
            self._rate_limited(handler, request.get("id"))
            return
        self._send_json(handler, 200, self._answer([request])[0])

    def _batch(self, handler: BaseHTTPRequestHandler, batch: list) -> None:
        rules = self.rules
        with self._lock:
            self.counters.batch_sizes.append(len(batch))
        if not rules.batches:
            self._refuse("batch-refused")
            error = {"code": -32202, "message": BATCHES_DISABLED}
            self._send_json(handler, 200, {"jsonrpc": "2.0", "id": None, "error": error})
            return
        if rules.max_batch is not None and len(batch) > rules.max_batch:
            self._refuse("batch-cap")
            if rules.batch_refusal == "erigon":
                message = ERIGON_BATCH_LIMIT.format(limit=rules.max_batch, size=len(batch))
                answer: Any = {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": message}}
            else:
                first = next((entry.get("id") for entry in batch if isinstance(entry, dict)), None)
                answer = [{"jsonrpc": "2.0", "id": first, "error": {"code": -32600, "message": GETH_BATCH_TOO_LARGE}}]
            self._send_json(handler, 200, answer)
            return
        if rules.rate_limit_entries:
            admitted = [entry for entry in batch if self._charge([entry.get("method", "")])]
            answers = {id(entry): answer for entry, answer in zip(admitted, self._answer(admitted))}
            out = []
            for entry in batch:
                if id(entry) in answers:
                    out.append(answers[id(entry)])
                else:
                    with self._lock:
                        self.counters.rate_limited_entries += 1
                    out.append({"jsonrpc": "2.0", "id": entry.get("id"), "error": self._rate_limit_error()})
            self._send_json(handler, 200, out)
            return
        if not self._charge([entry.get("method", "") for entry in batch]):
            self._rate_limited(handler, None)
            return
        self._send_json(handler, 200, self._answer(batch))

    # -- the budget -----------------------------------------------------------------------------

    def _charge(self, methods: list[str]) -> bool:
        rules = self.rules
        cost = sum(rules.cost(m) for m in methods)
        if rules.compute_units_per_second is not None:
            key = (rules.compute_units_per_second, rules.burst_seconds)
            with self._lock:
                if self._bucket_key != key:
                    self._bucket = _Bucket(key[0], key[0] * key[1])
                    self._bucket_key = key
                bucket = self._bucket
            assert bucket is not None
            if not bucket.take(cost):
                return False
        with self._lock:
            self.counters.compute_units += cost
        return True

    def _rate_limit_error(self) -> dict:
        rules = self.rules
        if rules.style == "infura":
            data = {
                "see": "https://infura.io/docs/ethereum/jsonrpc/ratelimits",
                "current_rps": 13.333,
                "allowed_rps": 10.0,
                "backoff_seconds": rules.infura_backoff_seconds,
            }
            return {"code": -32005, "message": INFURA_RATE_LIMIT, "data": data}
        return {"code": 429, "message": ALCHEMY_RATE_LIMIT}

    def _rate_limited(self, handler: BaseHTTPRequestHandler, request_id: Any) -> None:
        with self._lock:
            self.counters.rate_limited += 1
        headers = {}
        if self.rules.retry_after is not None:
            headers["Retry-After"] = f"{self.rules.retry_after:g}"
        answer = {"jsonrpc": "2.0", "id": request_id, "error": self._rate_limit_error()}
        self._send_json(handler, self.rules.rate_limit_status, answer, headers)

    def _refuse(self, rule: str) -> None:
        with self._lock:
            self.counters.refused[rule] += 1

    # -- answers ----------------------------------------------------------------------------------

    def _answer(self, entries: list[dict]) -> list[dict]:
        """Answers in order: eth_getLogs under the log rules, everything else forwarded upstream in one batch."""
        answers: dict[int, dict] = {}
        forward = [(i, e) for i, e in enumerate(entries) if e.get("method") != "eth_getLogs"]
        if forward:
            upstream = self._upstream([e for _, e in forward])
            by_id = {a.get("id"): a for a in upstream}
            for i, entry in forward:
                answers[i] = by_id.get(entry.get("id")) or {
                    "jsonrpc": "2.0",
                    "id": entry.get("id"),
                    "error": {"code": -32603, "message": "no answer upstream"},
                }
        for i, entry in enumerate(entries):
            if entry.get("method") == "eth_getLogs":
                try:
                    result = self._logs(entry.get("params") or [{}])
                    answers[i] = {"jsonrpc": "2.0", "id": entry.get("id"), "result": result}
                except _ProviderError as refusal:
                    answers[i] = {"jsonrpc": "2.0", "id": entry.get("id"), "error": refusal.error}
        with self._lock:
            for entry in entries:
                self.counters.calls[entry.get("method", "")] += 1
        return [answers[i] for i in range(len(entries))]

    def _logs(self, params: list) -> list:
        rules = self.rules
        log_filter = dict(params[0]) if params and isinstance(params[0], dict) else {}
        head = int(self._call("eth_blockNumber", []), 16)
        visible = head - rules.log_lag
        if "blockHash" in log_filter:
            if rules.log_lag:
                block = self._call("eth_getBlockByHash", [log_filter["blockHash"], False])
                if block is None or int(block["number"], 16) > visible:
                    self._refuse("unknown-block")
                    raise _ProviderError(-32000, UNKNOWN_BLOCK)
            with self._lock:
                self.counters.log_hashes += 1
            return self._call("eth_getLogs", [log_filter])
        first = self._block_number(log_filter.get("fromBlock"), visible)
        last = self._block_number(log_filter.get("toBlock"), visible)
        if rules.log_lag and last > visible:
            if rules.lag_answer == "error":
                self._refuse("beyond-head")
                raise _ProviderError(-32602, BEYOND_HEAD)
            last = visible
        if first > last:
            self._record_range(first, last, 0)
            return []
        width = last - first + 1
        if rules.max_block_range is not None and width > rules.max_block_range:
            self._refuse("log-range")
            if rules.style == "infura":
                raise _ProviderError(-32602, INFURA_LOG_RANGE.format(width=width, limit=rules.max_block_range))
            suggestion = ALCHEMY_LOG_RANGE.format(
                limit=rules.max_block_range, first=hex(first), last=hex(first + rules.max_block_range - 1)
            )
            raise _ProviderError(-32600, suggestion)
        logs = self._call("eth_getLogs", [{**log_filter, "fromBlock": hex(first), "toBlock": hex(last)}])
        if rules.log_rules and len(logs) > rules.max_logs:
            cutoff = int(logs[rules.max_logs]["blockNumber"], 16) - 1
            if rules.style == "infura":
                self._refuse("log-results")
                end = max(cutoff, first)
                message = INFURA_LOG_RESULTS.format(limit=rules.max_logs, first=hex(first), last=hex(end))
                raise _ProviderError(-32005, message, {"from": hex(first), "to": hex(end), "limit": rules.max_logs})
            if width > rules.wide_range:
                self._refuse("log-size")
                end = min(last, max(cutoff, first + rules.wide_range - 1))
                raise _ProviderError(-32602, ALCHEMY_LOG_SIZE.format(first=hex(first), last=hex(end)))
        self._record_range(first, last, len(logs))
        if rules.after_range_logs is not None:
            rules.after_range_logs(first, last)
        return logs

    def _record_range(self, first: int, last: int, count: int) -> None:
        with self._lock:
            self.counters.log_ranges.append((first, last, count))

    @staticmethod
    def _block_number(tag: Any, head: int) -> int:
        if tag in (None, "latest", "safe", "finalized", "pending"):
            return head
        if tag == "earliest":
            return 0
        return int(tag, 16)

    # -- upstream and the wire --------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _upstream(self, entries: list[dict]) -> list[dict]:
        payload: Any = entries if len(entries) > 1 else entries[0]
        response = self._session().post(self.upstream, json=payload, timeout=60)
        answer = response.json()
        return answer if isinstance(answer, list) else [answer]

    def _call(self, method: str, params: list) -> Any:
        answer = self._upstream([{"jsonrpc": "2.0", "id": 1, "method": method, "params": params}])[0]
        if "error" in answer:
            raise _ProviderError(answer["error"].get("code", -32603), answer["error"].get("message", "upstream error"))
        return answer.get("result")

    @staticmethod
    def _reset(handler: BaseHTTPRequestHandler) -> None:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        handler.connection.close()

    def _send_json(
        self, handler: BaseHTTPRequestHandler, status: int, answer: Any, headers: dict[str, str] | None = None
    ) -> None:
        self._send(handler, status, json.dumps(answer), "application/json", headers)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        text: str,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
