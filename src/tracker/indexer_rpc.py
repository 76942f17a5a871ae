"""Reading the chain for the indexer: JSON-RPC to the HTTP endpoint of the connected provider.

Answers are decoded with msgspec straight into the few fields the indexer reads (no web3 result
formatters, which cost more than the rest of the indexer together on large log ranges, and a
receipt's logs are skipped without being built). Block headers and receipts go out as JSON-RPC
batch requests, one entry per distinct block or transaction, never one request per event.
`eth_getLogs` runs over block ranges that adapt: they halve when the node refuses a range (and
stay below it) or returns more logs than a batch should hold (the surplus is kept for the next
batch), and double while they come back sparse.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Iterable, Sequence, TypeVar

import msgspec

from tracker.errors import ChainError, ConfigurationError, one_line

DEFAULT_RPC_BATCH = 250
PARALLEL_BATCHES = 3
# Receipts carry all their logs, so they go out in smaller, concurrent batches.
RECEIPT_BATCH = 25
RPC_TIMEOUT_S = 120

T = TypeVar("T")


class RpcError(ChainError):
    """The node answered a JSON-RPC request with an error."""

    def __init__(self, method: str, code: int | None, message: str):
        super().__init__(f"{method} failed: {message}" + (f" (code {code})" if code is not None else ""))
        self.method = method
        self.code = code
        self.node_message = message


@dataclass(frozen=True)
class BlockHeader:
    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int


@dataclass(frozen=True)
class Receipt:
    tx_hash: bytes
    block_hash: bytes
    from_address: bytes
    to_address: bytes | None
    gas_used: int
    effective_gas_price: int

    @property
    def fee_wei(self) -> int:
        return self.gas_used * self.effective_gas_price


@dataclass(frozen=True)
class RawLog:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int


# Wire shapes: msgspec decodes only these fields and skips the rest (a receipt's logs above all).
class _ErrorBody(msgspec.Struct):
    code: int | None = None
    message: str = ""


class _Response(msgspec.Struct, Generic[T]):
    id: Any = None
    result: T | None = None
    error: _ErrorBody | None = None


class _LogEntry(msgspec.Struct):
    address: str
    topics: list[str]
    data: str
    blockNumber: str
    blockHash: str
    transactionHash: str
    logIndex: str


class _HeaderEntry(msgspec.Struct):
    number: str
    hash: str
    parentHash: str
    timestamp: str


class _ReceiptEntry(msgspec.Struct):
    transactionHash: str
    blockHash: str
    gasUsed: str
    effectiveGasPrice: str | None = None
    gasPrice: str | None = None
    to: str | None = None
    from_: str = msgspec.field(name="from", default="0x" + "00" * 20)


def _bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def _log(entry: _LogEntry) -> RawLog:
    return RawLog(
        address=_bytes(entry.address),
        topics=tuple(_bytes(t) for t in entry.topics),
        data=_bytes(entry.data),
        block_number=int(entry.blockNumber, 16),
        block_hash=_bytes(entry.blockHash),
        tx_hash=_bytes(entry.transactionHash),
        log_index=int(entry.logIndex, 16),
    )


def _header(entry: _HeaderEntry) -> BlockHeader:
    return BlockHeader(int(entry.number, 16), _bytes(entry.hash), _bytes(entry.parentHash), int(entry.timestamp, 16))


def _receipt(entry: _ReceiptEntry) -> Receipt:
    # Pre-London receipts have no effectiveGasPrice; the transaction's gasPrice is then the price.
    return Receipt(
        tx_hash=_bytes(entry.transactionHash),
        block_hash=_bytes(entry.blockHash),
        from_address=_bytes(entry.from_),
        to_address=_bytes(entry.to) if entry.to else None,
        gas_used=int(entry.gasUsed, 16),
        effective_gas_price=int(entry.effectiveGasPrice or entry.gasPrice or "0x0", 16),
    )


class JsonRpc:
    """JSON-RPC over HTTP to one node: single calls and batches, answers decoded by msgspec.

    It talks to the node the connected ape provider uses (`from_provider`), with its own HTTP
    session so that large answers are decoded once, straight into the fields the indexer reads.
    """

    def __init__(self, uri: str, batch_size: int = DEFAULT_RPC_BATCH):
        import requests

        self.uri = uri
        self.batch_size = batch_size
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/json"
        self._ids = itertools.count(1)
        self._id_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_provider(cls, provider: Any, batch_size: int = DEFAULT_RPC_BATCH) -> "JsonRpc":
        """The HTTP JSON-RPC endpoint of a connected ape provider.

        Raises `ConfigurationError` for ape's in-process test chain, which has no JSON-RPC.
        """
        uri = getattr(provider, "http_uri", None)
        if not uri:
            web3 = getattr(provider, "web3", None)
            uri = getattr(getattr(web3, "provider", None), "endpoint_uri", None)
        if not uri:
            raise ConfigurationError(
                "the indexer reads logs over JSON-RPC and this provider has no HTTP endpoint "
                "(ape's in-process test chain): use --network ethereum:local:foundry, a node or Alchemy"
            )
        return cls(str(uri), batch_size)

    @classmethod
    def from_uri(cls, uri: str, batch_size: int = DEFAULT_RPC_BATCH) -> "JsonRpc":
        return cls(uri, batch_size)

    def _post(self, payload: Any, what: str) -> bytes:
        try:
            response = self.session.post(self.uri, data=msgspec.json.encode(payload), timeout=RPC_TIMEOUT_S)
        except Exception as error:  # requests raises many connection error types
            raise ChainError(f"{what} failed: {one_line(error)}") from error
        if response.status_code != 200 and not response.content.startswith((b"{", b"[")):
            raise RpcError(what, response.status_code, response.text[:200].strip() or response.reason)
        return response.content

    def call(self, method: str, params: Sequence[Any], result_type: Any = Any) -> Any:
        body = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}, method)
        return _result(method, _decode(body, _Response[result_type], method))

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], result_type: Any = Any,
              chunk_size: int | None = None) -> list[Any]:
        """Results in the order of `calls`: `chunk_size` (default `batch_size`) requests per round
        trip, and up to `PARALLEL_BATCHES` round trips at a time when there are several."""
        size = chunk_size or self.batch_size
        chunks = [calls[start : start + size] for start in range(0, len(calls), size)]
        if len(chunks) <= 1:
            return [r for chunk in chunks for r in self._batch_chunk(chunk, result_type)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(PARALLEL_BATCHES, thread_name_prefix="indexer-rpc")
        return [r for answers in self._pool.map(lambda c: self._batch_chunk(c, result_type), chunks) for r in answers]

    def _batch_chunk(self, chunk: Sequence[tuple[str, Sequence[Any]]], result_type: Any) -> list[Any]:
        with self._id_lock:
            ids = [next(self._ids) for _ in chunk]
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": list(params)}
            for i, (method, params) in zip(ids, chunk)
        ]
        what = f"batch of {len(chunk)} {chunk[0][0]}"
        body = self._post(payload, what)
        if body.lstrip().startswith(b"{"):  # the node refused the whole batch
            _result(what, _decode(body, _Response[Any], what))
            raise ChainError(f"{what}: the node did not answer the batch")
        answers = {a.id: a for a in _decode(body, list[_Response[result_type]], what)}
        if len(answers) != len(chunk):
            raise ChainError(f"{what} got {len(answers)} answers")
        return [_result(method, answers.get(i)) for i, (method, _) in zip(ids, chunk)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.session.close()


def _decode(body: bytes, shape: Any, what: str) -> Any:
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.DecodeError as error:
        raise ChainError(f"{what}: unexpected answer: {one_line(error)}") from error


def _result(method: str, response: Any) -> Any:
    if response is None:
        raise ChainError(f"{method}: no answer")
    if response.error is not None:
        raise RpcError(method, response.error.code, response.error.message)
    return response.result


class ChainReader:
    """What the indexer reads from a chain, in as few round trips as the node allows."""

    def __init__(self, rpc: JsonRpc, address: bytes, initial_span: int = 1000, max_span: int = 100_000,
                 max_logs: int = 10_000):
        if initial_span < 1 or max_span < initial_span:
            raise ConfigurationError(f"--batch-blocks must be between 1 and {max_span}, got {initial_span}")
        self.rpc = rpc
        self.address = address
        self.span = initial_span
        self.max_span = max_span
        self.max_logs = max_logs
        # Logs fetched past the end of the last batch: (first block, last block, logs).
        self._pending: tuple[int, int, list[RawLog]] | None = None

    def chain_id(self) -> int:
        return int(self.rpc.call("eth_chainId", [], str), 16)

    def code(self, address: bytes) -> bytes:
        return _bytes(self.rpc.call("eth_getCode", ["0x" + address.hex(), "latest"], str))

    def head_and_header(self, number: int | None) -> tuple[int, BlockHeader | None]:
        """The head block number and, in the same round trip, the header at `number` (if any)."""
        calls: list[tuple[str, Sequence[Any]]] = [("eth_blockNumber", [])]
        if number is not None and number >= 0:
            calls.append(("eth_getBlockByNumber", [hex(number), False]))
        results = self.rpc.batch(calls)
        header = None
        if len(results) > 1 and results[1]:
            header = _header(msgspec.convert(results[1], _HeaderEntry))
        return int(results[0], 16), header

    def headers(self, numbers: Iterable[int]) -> dict[int, BlockHeader]:
        """Headers by number (blocks past the head are left out)."""
        wanted = sorted(set(numbers))
        results = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in wanted], _HeaderEntry)
        return {n: _header(r) for n, r in zip(wanted, results) if r is not None}

    def receipts(self, tx_hashes: Iterable[bytes]) -> dict[bytes, Receipt]:
        wanted = list(dict.fromkeys(tx_hashes))
        results = self.rpc.batch(
            [("eth_getTransactionReceipt", ["0x" + h.hex()]) for h in wanted], _ReceiptEntry, RECEIPT_BATCH
        )
        receipts = {}
        for tx_hash, result in zip(wanted, results):
            if result is None:
                raise ChainError(f"no receipt for transaction 0x{tx_hash.hex()} (the chain moved; retry)")
            receipts[tx_hash] = _receipt(result)
        return receipts

    def logs(self, start: int, last: int) -> tuple[int, list[RawLog]]:
        """The contract's logs from `start` up to at most `last`; returns the block it stopped at.

        A batch holds at most `max_logs` logs unless one block alone has more: an answer with
        more is cut at a block boundary and the rest is kept for the next call, not fetched again.
        """
        if self._pending is not None and self._pending[0] == start and self._pending[1] <= last:
            _, fetched_end, entries = self._pending
            self._pending = None
            return self._cut(start, fetched_end, entries)
        self._pending = None
        while True:
            end = min(last, start + self.span - 1)
            try:
                entries = self.rpc.call(
                    "eth_getLogs",
                    [{"address": "0x" + self.address.hex(), "fromBlock": hex(start), "toBlock": hex(end)}],
                    list[_LogEntry],
                )
            except RpcError:
                # Providers refuse ranges that are too long or answers that are too large, each in
                # its own words: any refusal of a range wider than one block is retried narrower.
                if end == start:
                    raise
                # Halve, and never grow back past the halved width: at most 2x below the node's
                # limit, instead of probing it again and again.
                self.span = self.max_span = max(1, (end - start + 1) // 2)
                continue
            if len(entries) > self.max_logs:
                self.span = max(1, (end - start + 1) // 2)
            elif len(entries) < self.max_logs // 4 and end - start + 1 == self.span:
                self.span = min(self.max_span, self.span * 2)
            return self._cut(start, end, [_log(e) for e in entries])

    def _cut(self, start: int, end: int, logs: list[RawLog]) -> tuple[int, list[RawLog]]:
        if len(logs) <= self.max_logs:
            return end, logs
        cut_block = logs[self.max_logs].block_number
        if cut_block == start:  # one block holds more than max_logs: it goes in whole
            cut_block = next((log.block_number for log in logs if log.block_number > start), end + 1)
        if cut_block > end:
            return end, logs
        index = next(i for i, log in enumerate(logs) if log.block_number >= cut_block)
        self._pending = (cut_block, end, logs[index:])
        return cut_block - 1, logs[:index]

    def forget_pending(self) -> None:
        """Drops logs kept for the next batch (after a reorg or a restart from another block)."""
        self._pending = None
