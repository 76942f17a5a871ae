"""Reading the chain over JSON-RPC, the way hosted providers want to be read.

`JsonRpc` talks to an HTTP endpoint (a node, Alchemy, Infura, a load balancer); `InProcessRpc`
answers the same calls from ape's in-process test chain; `rpc_for(provider)` picks one for a
connected ape provider. Both offer `call`, `batch` and `stream`, and answers are decoded with
msgspec straight into the few fields the caller reads (no web3 result formatters, which cost more
than the rest of the indexer together on large log ranges). `stream` hands a long array result
(eth_getLogs) to its caller a slice at a time while it arrives (`_ArraySlices`), so that a reader
can stop at a budget without ever holding the whole answer.

What `JsonRpc` does about providers:

* Rate limits (HTTP 429, JSON-RPC 429 or -32005 with a rate-limit message, per call or per
  entry of a batch) are retried with exponential backoff and full jitter, honouring
  `Retry-After` and Infura's `backoff_seconds`, within the retry policy's `max_wait`; past it one
  `RateLimitedError` names the provider's answer and what to do. A rate limit is never a refusal
  of the request: callers never see it as one.
* Transient faults of reads (HTTP 5xx, reset or dropped connections, no answer within the
  timeout) are retried the same way; past the policy, `ProviderUnavailableError`. Writes
  (`eth_sendRawTransaction`) are retried on rate limits only, which providers answer before
  doing anything.
* `RpcBudget` paces requests client-side with a token bucket (compute units per second with
  Alchemy's cost table, or requests per second), and batches are cut so that none costs more
  than half a second of budget, so that a run stays under its plan instead of bouncing off it.
* Batch caps and providers that refuse batches are recognised from the answer once and worked
  around for the rest of the run (smaller batches, or single calls in parallel).

The retries themselves are `tracker.retry.with_retry` under the options' `RetryPolicy`.
"""

from __future__ import annotations

import email.utils
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from tracker.chain.hosted import (
    ALCHEMY_COMPUTE_UNITS,
    backoff_hint,
    batch_refusal,
    compute_units,
    is_quota_exhausted,
    is_rate_limit,
)
from tracker.errors import ChainError, ConfigurationError, one_line
from tracker.retry import RetryPolicy, with_retry

DEFAULT_RPC_BATCH = 250
PARALLEL_BATCHES = 3
DEFAULT_TIMEOUT_S = 30.0
# Attempts are many and cheap; the two minutes of `max_wait` are what bounds a call.
DEFAULT_RPC_RETRY = RetryPolicy(attempts=64, base_delay=0.25, max_delay=8.0, max_wait=120.0)
# The client-side bucket holds half a second of budget: requests that reach the provider up to
# half a second late or early still fit the provider's own one-second bucket.
BURST_SECONDS = 0.5
# A streamed answer is read from the socket this many bytes at a time.
STREAM_CHUNK_BYTES = 1 << 20
# No item of a streamed answer is longer: a log's data costs 8 gas a byte, so even a 60M-gas
# block holds under 8 MB of it (16 MB as hex).
MAX_ITEM_BYTES = 32 << 20
READ_PREFIXES = ("eth_get", "net_", "web3_")
READ_METHODS = frozenset(
    {
        "eth_blockNumber",
        "eth_call",
        "eth_chainId",
        "eth_createAccessList",
        "eth_estimateGas",
        "eth_feeHistory",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_blobBaseFee",
        "eth_syncing",
    }
)
T = TypeVar("T")


class RpcError(ChainError):
    """The node answered a JSON-RPC request with an error (a refusal, not a rate limit)."""

    def __init__(self, method: str, code: int | None, message: str, data: Any = None):
        super().__init__(f"{method} failed: {message}" + (f" (code {code})" if code is not None else ""))
        self.method = method
        self.code = code
        self.node_message = message
        self.data = data


class RateLimitedError(ChainError):
    """The provider kept answering with its rate limit for as long as the retry policy allows."""

    already_retried = True


class ProviderUnavailableError(ChainError):
    """The provider kept failing (5xx, dropped connections, no answer) for as long as the policy allows."""

    already_retried = True


class QuotaExhaustedError(ChainError):
    """The provider's daily or monthly quota is used up: waiting seconds does not help."""


@dataclass(frozen=True)
class RpcBudget:
    """A request budget to stay under: compute units per second with a cost table, or requests per second."""

    per_second: float
    per_request: bool = False
    costs: Mapping[str, int] = field(default_factory=lambda: ALCHEMY_COMPUTE_UNITS)

    def __post_init__(self) -> None:
        if self.per_second <= 0:
            raise ConfigurationError(f"--rpc-budget must be positive, got {self.per_second:g}")

    def cost(self, method: str) -> int:
        return 1 if self.per_request else compute_units(method, self.costs)

    @property
    def burst(self) -> float:
        """The most one request may cost: what the client-side bucket holds."""
        return max(1.0, self.per_second * BURST_SECONDS)

    def describe(self) -> str:
        unit = "requests" if self.per_request else "compute units"
        return f"{self.per_second:g} {unit} per second"


@dataclass(frozen=True)
class RpcOptions:
    """How `JsonRpc` talks to a provider."""

    budget: RpcBudget | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    retry: RetryPolicy = DEFAULT_RPC_RETRY
    batch_size: int = DEFAULT_RPC_BATCH
    parallel: int = PARALLEL_BATCHES

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigurationError(f"--rpc-timeout must be positive, got {self.timeout:g}")
        if self.batch_size < 1 or self.parallel < 1:
            raise ConfigurationError("the RPC batch size and parallelism must be at least 1")


@dataclass
class RpcStats:
    """What a `JsonRpc` did so far (for benchmarks and status lines): HTTP requests, JSON-RPC calls
    and their compute units at Alchemy's costs (attempts that were refused and retried included)."""

    requests: int = 0
    calls: int = 0
    compute_units: int = 0
    rate_limited: int = 0
    transient_faults: int = 0
    retries: int = 0
    seconds_waiting: float = 0.0
    batch_cap: int | None = None
    batches_refused: bool = False


class Rpc(Protocol):
    """What readers need of a chain: single calls and batches, answers decoded into `result_type`."""

    stats: RpcStats

    def call(self, method: str, params: Sequence[Any], result_type: Any = Any) -> Any: ...

    def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        result_type: Any = Any,
        chunk_size: int | None = None,
        settled: bool = False,
    ) -> list[Any]: ...

    def stream(
        self, method: str, params: Sequence[Any], item_type: Any, consume: Callable[[Iterator[list[Any]]], T]
    ) -> T: ...

    def close(self) -> None: ...


# Wire shapes: msgspec decodes only these fields and skips the rest (a receipt's logs above all).
class _ErrorBody(msgspec.Struct):
    code: int | None = None
    message: str = ""
    data: Any = None


class _Response(msgspec.Struct, Generic[T]):
    id: Any = None
    result: T | None = None
    error: _ErrorBody | None = None


class _RateLimited(Exception):
    """A rate-limit answer (retried); `after` is how long the provider asked to wait."""

    def __init__(self, answer: str, after: float | None = None):
        super().__init__(answer)
        self.answer = answer
        self.after = after


class _Transient(Exception):
    """A fault a later attempt may not meet (retried for reads)."""


class _BatchRefused(Exception):
    """The provider refused a batch as such: too large (with the limit it allows) or at all."""

    def __init__(self, limit: int | None):
        super().__init__(limit)
        self.limit = limit


class _Pacer:
    """A token bucket shared by all threads: take(cost) waits until the budget allows it."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.level = capacity
        self.last = clock()
        self.lock = threading.Lock()

    def take(self, cost: float) -> float:
        """Takes `cost` tokens (waiting for them) and returns the seconds waited."""
        waited = 0.0
        with self.lock:  # waiting with the lock held queues the other threads behind this one
            while True:
                now = self.clock()
                self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
                self.last = now
                needed = min(cost, self.capacity)
                if self.level >= needed:
                    self.level -= cost  # a request dearer than the bucket leaves it in debt
                    return waited
                pause = (needed - self.level) / self.rate
                time.sleep(pause)
                waited += pause


def _is_read(method: str) -> bool:
    return method in READ_METHODS or method.startswith(READ_PREFIXES)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed is not None else None


class JsonRpc:
    """JSON-RPC over HTTP to one endpoint: single calls and batches, paced, retried, decoded by msgspec.

    It talks to the endpoint the connected ape provider uses (`from_provider`), with its own HTTP
    session so that large answers are decoded once, straight into the fields the reader needs.
    """

    def __init__(self, uri: str, options: RpcOptions | None = None):
        import requests

        self.uri = uri
        self.options = options or RpcOptions()
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/json"
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(4, self.options.parallel + 1))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.stats = RpcStats()
        self._stats_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._id_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        # Single calls get a pool of their own: a chunk that turns into single calls runs on a
        # thread of the chunk pool, and waiting there for tasks of the same pool could deadlock.
        self._single_pool: ThreadPoolExecutor | None = None
        budget = self.options.budget
        self._pacer = _Pacer(budget.per_second, budget.burst) if budget is not None else None
        self._batch_cap: int | None = None
        self._batches_refused = False
        # A batch larger than any the provider accepted so far goes alone (a probe), so that threads
        # reading at once learn a batch cap or a refusal from one refusal, not one each.
        self._probe = threading.RLock()
        self._accepted = 1

    @classmethod
    def from_provider(cls, provider: Any, options: RpcOptions | None = None) -> JsonRpc:
        """The HTTP JSON-RPC endpoint of a connected ape provider.

        Raises `ConfigurationError` for ape's in-process test chain, which has no JSON-RPC
        (`rpc_for` gives an `InProcessRpc` for it).
        """
        uri = _http_uri(provider)
        if not uri:
            raise ConfigurationError(
                "the indexer reads logs over JSON-RPC and this provider has no HTTP endpoint "
                "(ape's in-process test chain): use --network ethereum:local:foundry, a node or Alchemy"
            )
        return cls(uri, options)

    @classmethod
    def from_uri(cls, uri: str, options: RpcOptions | None = None) -> JsonRpc:
        return cls(uri, options)

    # -- single calls -------------------------------------------------------------------------

    def call(self, method: str, params: Sequence[Any], result_type: Any = Any) -> Any:
        """The result of one call; `RpcError` when the node refuses it."""
        return self._call(method, params, result_type, self.options.retry)

    def _call(self, method: str, params: Sequence[Any], result_type: Any, policy: RetryPolicy) -> Any:
        shape = _Response[result_type]

        def attempt() -> Any:
            self._pace([method])
            request = {"jsonrpc": "2.0", "id": self._next_id(), "method": method, "params": list(params)}
            response = _decode(self._post(request, method), shape, method)
            _raise_rate_limit(response)
            return response

        return _result(method, self._retrying(attempt, [method], method, policy))

    # -- batches ------------------------------------------------------------------------------

    def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        result_type: Any = Any,
        chunk_size: int | None = None,
        settled: bool = False,
    ) -> list[Any]:
        """Results in the order of `calls`, in as few round trips as the provider allows.

        At most `chunk_size` (default: the options' batch size, or the provider's cap once known)
        calls per round trip, none costing more than the budget's burst, and up to `parallel`
        round trips at a time; single calls in parallel for a provider that refuses batches.
        `settled`: a call the node refuses (a revert) comes back as its `RpcError` in its place
        instead of raising, so that calls which may revert share a round trip.
        """
        if not calls:
            return []
        if self._batches_refused:
            return self._singles(calls, result_type, settled)
        chunks = self._chunks(calls, chunk_size)
        if len(chunks) == 1:
            return self._run_chunk(chunks[0], result_type, settled=settled)
        pool = self._ensure_pool()
        return [
            r
            for answers in pool.map(lambda c: self._run_chunk(c, result_type, settled=settled), chunks)
            for r in answers
        ]

    def _chunks(
        self, calls: Sequence[tuple[str, Sequence[Any]]], chunk_size: int | None
    ) -> list[Sequence[tuple[str, Sequence[Any]]]]:
        size = min(chunk_size or self.options.batch_size, self._batch_cap or self.options.batch_size)
        budget = self.options.budget
        chunks: list[Sequence[tuple[str, Sequence[Any]]]] = []
        start, cost = 0, 0.0
        for index, (method, _) in enumerate(calls):
            price = budget.cost(method) if budget is not None else 0
            if index > start and (index - start >= size or (budget is not None and cost + price > budget.burst)):
                chunks.append(calls[start:index])
                start, cost = index, 0.0
            cost += price
        chunks.append(calls[start:])
        return chunks

    def _run_chunk(
        self,
        chunk: Sequence[tuple[str, Sequence[Any]]],
        result_type: Any,
        policy: RetryPolicy | None = None,
        settled: bool = False,
    ) -> list[Any]:
        if self._batches_refused:
            return self._singles(chunk, result_type, settled)
        policy = policy or self.options.retry
        if len(chunk) == 1:
            method, params = chunk[0]
            return [_settle(lambda: self._call(method, params, result_type, policy), settled)]
        if len(chunk) <= self._accepted:
            return self._run_batch(chunk, result_type, policy, settled)
        with self._probe:  # what the probe before this one learned decides how this chunk goes
            if self._batches_refused:
                return self._singles(chunk, result_type, settled)
            cap = self._batch_cap
            if cap is not None and len(chunk) > cap:
                return [
                    r
                    for start in range(0, len(chunk), cap)
                    for r in self._run_chunk(chunk[start : start + cap], result_type, policy, settled)
                ]
            return self._run_batch(chunk, result_type, policy, settled)

    def _run_batch(
        self, chunk: Sequence[tuple[str, Sequence[Any]]], result_type: Any, policy: RetryPolicy, settled: bool = False
    ) -> list[Any]:
        started = time.monotonic()
        answers: dict[int, Any] = {}
        shape = list[_Response[result_type]]
        what = f"batch of {len(chunk)} {chunk[0][0]}"

        def attempt() -> None:
            pending = [i for i in range(len(chunk)) if i not in answers]
            methods = [chunk[i][0] for i in pending]
            self._pace(methods)
            ids = self._next_ids(len(pending))
            payload = [
                {"jsonrpc": "2.0", "id": request_id, "method": chunk[i][0], "params": list(chunk[i][1])}
                for request_id, i in zip(ids, pending)
            ]
            try:
                body = self._post(payload, what)
            except _RateLimited:
                if len(pending) > 1:  # the whole batch costs more than the provider's bucket holds now
                    self._count_split()
                    raise _BatchRefused(max(1, len(pending) // 2)) from None
                raise
            if body.lstrip().startswith(b"{"):
                self._whole_batch_refused(_decode(body, _Response[Any], what), what, len(pending))
            decoded = _decode(body, shape, what)
            if len(decoded) == 1 and len(pending) > 1 and decoded[0].error is not None:
                self._whole_batch_refused(decoded[0], what, len(pending))
            self._accepted = max(self._accepted, len(pending))
            by_id = {a.id: a for a in decoded}
            limited: list[_RateLimited] = []
            for request_id, i in zip(ids, pending):
                answer = by_id.get(request_id)
                if answer is None:
                    raise ChainError(f"{what} got {len(decoded)} answers for {len(pending)} calls")
                if answer.error is not None and is_rate_limit(answer.error.code, answer.error.message):
                    limited.append(_RateLimited(answer.error.message, backoff_hint(answer.error.data)))
                    continue
                answers[i] = answer
            if limited:
                raise limited[0]

        try:
            self._retrying(attempt, [m for m, _ in chunk], what, policy)
        except _BatchRefused as refusal:
            return self._resplit(chunk, answers, refusal.limit, result_type, policy, started, settled)
        return [_settle(partial(_result, method, answers[i]), settled) for i, (method, _) in enumerate(chunk)]

    def _resplit(
        self,
        chunk: Sequence[tuple[str, Sequence[Any]]],
        answers: dict[int, Any],
        limit: int | None,
        result_type: Any,
        policy: RetryPolicy,
        started: float,
        settled: bool = False,
    ) -> list[Any]:
        """Runs what is left of a chunk the provider refused as a batch: smaller, or one by one."""
        remaining = None if policy.max_wait is None else max(0.0, policy.max_wait - (time.monotonic() - started))
        sub_policy = replace(policy, max_wait=remaining)
        pending = [i for i in range(len(chunk)) if i not in answers]
        results: dict[int, Any] = {i: _settle(partial(_result, chunk[i][0], answers[i]), settled) for i in answers}
        if limit is None:  # no batches at all: the rest as single calls, in parallel
            results.update(zip(pending, self._singles([chunk[i] for i in pending], result_type, settled)))
        else:
            for start in range(0, len(pending), limit):
                part = pending[start : start + limit]
                results.update(zip(part, self._run_chunk([chunk[i] for i in part], result_type, sub_policy, settled)))
        return [results[i] for i in range(len(chunk))]

    def _whole_batch_refused(self, response: Any, what: str, size: int) -> None:
        """An answer that is one error for the whole batch: a batch limit, a rate limit or a refusal."""
        error = response.error
        if error is None:
            raise ChainError(f"{what}: the node answered the batch with a single result")
        if is_rate_limit(error.code, error.message):
            if size > 1:
                self._count_split()
                raise _BatchRefused(max(1, size // 2))
            raise _RateLimited(error.message, backoff_hint(error.data))
        refusal = batch_refusal(f"{error.message} {error.data if isinstance(error.data, str) else ''}")
        if refusal is not None and refusal.refused:
            self._batches_refused = True
            with self._stats_lock:
                self.stats.batches_refused = True
            raise _BatchRefused(None)
        if refusal is not None:
            cap = refusal.limit if refusal.limit is not None and refusal.limit < size else size // 2
            cap = max(1, cap)
            self._batch_cap = cap if self._batch_cap is None else min(self._batch_cap, cap)
            with self._stats_lock:
                self.stats.batch_cap = self._batch_cap
            raise _BatchRefused(cap)
        raise RpcError(what, error.code, error.message, error.data)

    def _count_split(self) -> None:
        with self._stats_lock:
            self.stats.rate_limited += 1

    def _singles(
        self, calls: Sequence[tuple[str, Sequence[Any]]], result_type: Any, settled: bool = False
    ) -> list[Any]:
        if len(calls) == 1:
            return [_settle(lambda: self.call(calls[0][0], calls[0][1], result_type), settled)]
        with self._stats_lock:
            if self._single_pool is None:
                self._single_pool = ThreadPoolExecutor(self.options.parallel, thread_name_prefix="rpc-single")
            pool = self._single_pool
        return list(pool.map(lambda c: _settle(lambda: self.call(c[0], c[1], result_type), settled), calls))

    # -- transport, pacing and retries --------------------------------------------------------

    def _next_id(self) -> int:
        with self._id_lock:
            return next(self._ids)

    def _next_ids(self, count: int) -> list[int]:
        with self._id_lock:
            return [next(self._ids) for _ in range(count)]

    def _ensure_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.options.parallel, thread_name_prefix="rpc")
        return self._pool

    def _pace(self, methods: Iterable[str]) -> None:
        methods = list(methods)
        budget = self.options.budget
        cost = sum(budget.cost(m) for m in methods) if budget is not None else 0
        waited = self._pacer.take(cost) if self._pacer is not None else 0.0
        with self._stats_lock:
            self.stats.calls += len(methods)
            self.stats.compute_units += sum(compute_units(m) for m in methods)
            self.stats.seconds_waiting += waited

    def _post(self, payload: Any, what: str) -> bytes:
        """One HTTP round trip; rate limits and transient faults raise the exceptions retried."""
        return self._open(payload, what).content

    def _open(self, payload: Any, what: str, stream: bool = False) -> Any:
        """The HTTP response to `payload`, once it is known to carry an answer (with `stream`, its
        body not read yet); rate limits and transient faults raise the exceptions retried."""
        import requests

        with self._stats_lock:
            self.stats.requests += 1
        timeout = self.options.timeout
        try:
            response = self.session.post(
                self.uri, data=msgspec.json.encode(payload), timeout=(timeout, timeout), stream=stream
            )
        except requests.Timeout as error:
            raise _Transient(f"no answer within {timeout:g} s") from error
        except requests.ConnectionError as error:
            text = one_line(error)
            if "refused" in text.lower() or "name or service not known" in text.lower():
                raise ChainError(f"{what} failed: cannot connect to {self.uri}: {text}") from error
            raise _Transient(text) from error
        except requests.exceptions.ChunkedEncodingError as error:  # the connection broke mid-answer
            raise _Transient(one_line(error)) from error
        except requests.RequestException as error:  # invalid URL and the like: permanent
            raise ChainError(f"{what} failed: {one_line(error)}") from error
        if response.status_code == 200:
            return response
        try:  # an error answer: read it whole (it is short), and give the connection back
            content = response.content
        except requests.RequestException as error:
            raise _Transient(one_line(error)) from error
        finally:
            response.close()
        if response.status_code == 429:
            raise _RateLimited(
                _answer_text(content, response.reason), _retry_after(response.headers.get("Retry-After"))
            )
        if response.status_code == 402:
            raise QuotaExhaustedError(
                f"the provider's quota is used up: {_answer_text(content, response.reason)} "
                "(wait for it to reset, or move to a larger plan)"
            )
        if response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code} {response.reason}".strip())
        if not content.lstrip().startswith((b"{", b"[")):
            raise RpcError(what, response.status_code, response.text[:200].strip() or response.reason)
        return response

    def _retrying(self, action: Callable[[], T], methods: Sequence[str], what: str, policy: RetryPolicy) -> T:
        reads = all(_is_read(m) for m in methods)
        started = time.monotonic()
        attempts = 0

        def retryable(error: BaseException) -> bool:
            return isinstance(error, _RateLimited) or (reads and isinstance(error, _Transient))

        def counted() -> T:
            nonlocal attempts
            attempts += 1
            return action()

        def on_retry(_attempt: int, error: BaseException, pause: float) -> None:
            with self._stats_lock:
                self.stats.retries += 1
                self.stats.seconds_waiting += pause
                if isinstance(error, _RateLimited):
                    self.stats.rate_limited += 1
                else:
                    self.stats.transient_faults += 1

        try:
            return with_retry(
                counted,
                policy,
                on_retry=on_retry,
                retryable=retryable,
                wait_hint=lambda error: getattr(error, "after", None),
            )
        except _RateLimited as error:
            elapsed = time.monotonic() - started
            budget = self.options.budget
            advice = (
                f"lower --rpc-budget below {budget.describe()}, or move to a larger plan"
                if budget is not None
                else "set --rpc-budget to your plan's compute units per second, or move to a larger plan"
            )
            raise RateLimitedError(
                f"{what}: the provider still answered with its rate limit after {attempts} attempts in "
                f"{elapsed:.0f} s: {one_line(error.answer)} ({advice})"
            ) from None
        except _Transient as error:
            elapsed = time.monotonic() - started
            if not reads:
                raise ChainError(f"{what} failed: {error} (not retried: it may have been carried out)") from None
            raise ProviderUnavailableError(
                f"{what} failed: {error} ({attempts} attempts in {elapsed:.0f} s; check the endpoint, "
                "or raise --rpc-timeout or --rpc-retry-window)"
            ) from None

    # -- streamed answers -----------------------------------------------------------------------

    def stream(
        self, method: str, params: Sequence[Any], item_type: Any, consume: Callable[[Iterator[list[Any]]], T]
    ) -> T:
        """`consume(slices)` over the result of a call that is a JSON array of flat objects
        (eth_getLogs): `slices` are lists of `item_type`, decoded one at a time while the answer
        arrives, and whatever `consume` did not read when it returns is dropped unread. So memory
        holds what `consume` keeps and one slice of the answer, however long the answer is.

        Paced and retried as `call` is: a rate limit, or a fault before or while the answer
        arrives, runs the call again and `consume` again from the first slice (so `consume`
        keeps its state to itself). An error answer raises `RpcError` as `call` does.
        """

        def attempt() -> T:
            self._pace([method])
            request = {"jsonrpc": "2.0", "id": self._next_id(), "method": method, "params": list(params)}
            response = self._open(request, method, stream=True)
            try:
                return consume(self._slices(response, method, item_type))
            finally:
                response.close()

        return self._retrying(attempt, [method], method, self.options.retry)

    def _slices(self, response: Any, method: str, item_type: Any) -> Iterator[list[Any]]:
        import requests

        slices = _ArraySlices(method)
        try:
            for chunk in response.iter_content(STREAM_CHUNK_BYTES):
                for piece in slices.feed(chunk):
                    yield _decode(piece, list[item_type], method)
                if slices.ended:
                    return
        except requests.RequestException as error:  # the connection broke while the answer arrived
            raise _Transient(one_line(error)) from error
        if slices.started:
            raise _Transient("the answer ended before its result did")
        answer = _decode(slices.whole or b"", _Response[Any], method)  # not a result array: an error, or null
        _raise_rate_limit(answer)
        if _result(method, answer):
            raise ChainError(f"{method}: unexpected answer: a result that is not an array")

    def close(self) -> None:
        for pool in (self._pool, self._single_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._pool = self._single_pool = None
        self.session.close()


class _ArraySlices:
    """Cuts the `result` array of a JSON-RPC answer, as it arrives, into JSON arrays of whole items.

    Items are found by their boundaries (`}` and `{` separated by a comma): the items it is used for
    are flat objects whose strings are hex, and each slice is then decoded strictly, so a boundary
    read wrongly fails loudly instead of splitting an item. An answer that is not a result array
    (an error, null) is kept whole in `whole`, to be read as an ordinary answer. Each chunk is
    searched once (with a boundary's width of what came before), and an item, or an answer
    before its result, longer than `MAX_ITEM_BYTES` is refused rather than held.
    """

    START = re.compile(rb'"result"\s*:\s*\[')
    BOUNDARY = re.compile(rb"\}\s*,\s*\{")
    # The array's end: after its last item, or at once (an empty array). Two patterns, not one
    # alternation: a pattern that starts with a literal is searched at C speed, `|^...` is tried
    # at every position (35 times slower, most of the reading time of a large backfill).
    END = re.compile(rb"\}\s*\]")
    EMPTY = re.compile(rb"\s*\]")
    OVERLAP = 8

    def __init__(self, what: str) -> None:
        self.what = what
        self.buffer = b""
        self.started = False
        self.ended = False
        self.whole: bytes | None = None

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if self.ended:
            return
        fresh = max(0, len(self.buffer) - self.OVERLAP)  # where a boundary may end in this chunk
        self.buffer += chunk
        if not self.started:
            found = self.START.search(self.buffer)
            if found is None:
                if len(self.buffer) > MAX_ITEM_BYTES:
                    raise ChainError(f"{self.what}: an answer longer than {MAX_ITEM_BYTES >> 20} MiB without a result")
                self.whole = self.buffer
                return
            self.whole = None
            self.started = True
            self.buffer = self.buffer[found.end() :]
            fresh = 0
        end = self.EMPTY.match(self.buffer) if fresh == 0 else None
        if end is None:
            end = self.END.search(self.buffer, fresh)
        if end is not None:  # the array closes in this chunk: the rest of the answer is not needed
            self.ended = True
            items = self.buffer[: end.start() + 1].strip() if end.group().lstrip().startswith(b"}") else b""
            self.buffer = b""
            if items:
                yield b"[" + items + b"]"
            return
        boundaries = list(self.BOUNDARY.finditer(self.buffer, fresh))
        if boundaries:
            cut = boundaries[-1]
            yield b"[" + self.buffer[: cut.start() + 1] + b"]"
            self.buffer = self.buffer[cut.end() - 1 :]
        if len(self.buffer) > MAX_ITEM_BYTES:
            raise ChainError(
                f"{self.what}: an item of the answer is longer than {MAX_ITEM_BYTES >> 20} MiB, more than any log can be"
            )


class InProcessRpc:
    """The same calls answered by ape's in-process test chain (web3's EthereumTesterProvider).

    Requests go through the tester's own request formatting (hex quantities to integers) but not
    through web3's middleware (which would read lowercase addresses as ENS names), and results are
    turned back into JSON-RPC's wire form (hex quantities and data) before they are decoded, so
    that readers cannot tell the two chains apart. A `blockHash` log filter, which the tester
    does not know, is answered from the block's number. Calls run one at a time.
    """

    def __init__(self, web3: Any):
        from web3.middleware import combine_middleware

        provider = web3.provider
        self._request = combine_middleware(
            middleware=tuple(getattr(provider, "_middleware", ())), w3=web3, provider_request_fn=provider.make_request
        )
        self._lock = threading.Lock()
        self.stats = RpcStats()

    def call(self, method: str, params: Sequence[Any], result_type: Any = Any) -> Any:
        params = list(params)
        if method == "eth_getLogs" and params and isinstance(params[0], dict) and "blockHash" in params[0]:
            return self._logs_of_block(params[0], result_type)
        with self._lock:
            self.stats.requests += 1
            self.stats.calls += 1
            self.stats.compute_units += compute_units(method)
            try:
                response = self._request(method, params)
            except Exception as error:  # the tester raises its own validation errors
                raise RpcError(method, None, one_line(error)) from error
        failure = response.get("error")
        if failure:
            if isinstance(failure, dict):
                raise RpcError(method, failure.get("code"), str(failure.get("message", failure)), failure.get("data"))
            raise RpcError(method, None, str(failure))
        result = _wire(response.get("result"))
        if result is None:
            return None
        try:
            return msgspec.convert(result, result_type)
        except msgspec.ValidationError as error:
            raise ChainError(f"{method}: unexpected answer: {one_line(error)}") from error

    def _logs_of_block(self, log_filter: dict, result_type: Any) -> Any:
        header = self.call("eth_getBlockByHash", [log_filter["blockHash"], False])
        if header is None:
            raise RpcError("eth_getLogs", -32000, "unknown block")
        number = header["number"]
        rest = {key: value for key, value in log_filter.items() if key != "blockHash"}
        return self.call("eth_getLogs", [{**rest, "fromBlock": number, "toBlock": number}], result_type)

    def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        result_type: Any = Any,
        chunk_size: int | None = None,
        settled: bool = False,
    ) -> list[Any]:
        return [_settle(partial(self.call, method, params, result_type), settled) for method, params in calls]

    def stream(
        self, method: str, params: Sequence[Any], item_type: Any, consume: Callable[[Iterator[list[Any]]], T]
    ) -> T:
        """`consume` over the whole result as one slice (the tester answers in memory anyway)."""
        items = self.call(method, params, list[item_type])
        return consume(iter([items] if items else []))

    def close(self) -> None:
        pass


def _wire(value: Any) -> Any:
    """A tester result in JSON-RPC's wire form: integers and bytes as 0x-hex, mappings as dicts."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire(item) for item in value]
    return value


def _http_uri(provider: Any) -> str | None:
    uri = getattr(provider, "http_uri", None)
    if not uri:
        web3 = getattr(provider, "web3", None)
        uri = getattr(getattr(web3, "provider", None), "endpoint_uri", None)
    return str(uri) if uri else None


def rpc_for(provider: Any, options: RpcOptions | None = None) -> Rpc:
    """The chain-access layer for a connected ape provider: `JsonRpc` over its HTTP endpoint,
    or `InProcessRpc` for ape's in-process test chain."""
    uri = _http_uri(provider)
    if uri:
        return JsonRpc(uri, options)
    web3 = getattr(provider, "web3", None)
    if web3 is None or not hasattr(getattr(web3, "provider", None), "make_request"):
        raise ConfigurationError(f"provider {getattr(provider, 'name', provider)!r} offers neither HTTP nor web3")
    return InProcessRpc(web3)


def _answer_text(content: bytes, reason: str) -> str:
    """The message of an error answer (a JSON-RPC error body, or the start of the text)."""
    try:
        decoded = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return content[:200].decode("utf-8", "replace").strip() or reason
    if isinstance(decoded, list) and decoded:
        decoded = decoded[0]
    if isinstance(decoded, dict):
        error = decoded.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return content[:200].decode("utf-8", "replace").strip() or reason


def _raise_rate_limit(response: Any) -> None:
    error = response.error
    if error is None:
        return
    if is_quota_exhausted(error.code, error.message):
        raise QuotaExhaustedError(
            f"the provider's quota is used up: {error.message} (wait for it to reset, or move to a larger plan)"
        )
    if is_rate_limit(error.code, error.message):
        raise _RateLimited(error.message, backoff_hint(error.data))


def _decode(body: bytes, shape: Any, what: str) -> Any:
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.DecodeError as error:
        raise ChainError(f"{what}: unexpected answer: {one_line(error)}") from error


def _settle(call: Callable[[], Any], settled: bool) -> Any:
    """The call's result; with `settled`, the node's refusal (`RpcError`) in its place."""
    if not settled:
        return call()
    try:
        return call()
    except RpcError as error:
        return error


def _result(method: str, response: Any) -> Any:
    if response is None:
        raise ChainError(f"{method}: no answer")
    if response.error is not None:
        raise RpcError(method, response.error.code, response.error.message, response.error.data)
    return response.result
