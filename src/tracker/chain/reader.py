"""Reading a chain in as few round trips as the provider allows: logs over adaptive block ranges,
block headers, receipts and transactions in JSON-RPC batches.

`eth_getLogs` answers are read as they arrive (`Rpc.stream`), and reading stops at the first block
boundary once a batch holds `max_logs` logs: memory is bounded by that budget (or by one block, if
one block alone holds more), however wide the range and however many logs the provider sends.

Block ranges adapt to what comes back. A range refusal (and nothing else: rate limits and faults
are `tracker.chain.rpc`'s to retry) narrows the range, to the range the provider's message
suggests where it gives one, and to the block-range limit it states where it states one; a batch
that reached the budget before the end of its range narrows the next range in proportion; and
ranges double again while answers come back sparse, so a dense stretch or one refusal leaves no
permanent cap. A refusal that says nothing usable halves the range and keeps it there for a while
(`REFUSAL_MEMORY` answers), then probes wider again.

Near the head, a load-balanced provider may answer `eth_getLogs` from a node a few blocks behind
the one that answered `eth_blockNumber`, and such a node answers a range it has not reached with
fewer logs, not with an error. The last `lag_guard` blocks below the head are therefore read one
block at a time by block hash (EIP-234), in one batch, which a node that lacks the block refuses
instead of answering short; that refusal ("unknown block"), and a range refused as beyond the log
node's head, are retried for up to `LAGGING_NODE_RETRY.max_wait` seconds while the node catches up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from tracker.chain.hosted import is_unknown_block, range_refusal
from tracker.chain.rpc import Rpc, RpcError
from tracker.errors import ChainError, ConfigurationError
from tracker.retry import RetryPolicy, with_retry

# Receipts and transactions carry much, so they go out in smaller, concurrent batches.
RECEIPT_BATCH = 25
# Blocks below the head read by block hash, so that a lagging log node cannot answer them short.
LAG_GUARD_BLOCKS = 8
# After a refusal that says nothing usable, ranges stay below the refused width for this many answers.
REFUSAL_MEMORY = 16
# How long to wait for a log node that does not have a block the head node has.
LAGGING_NODE_RETRY = RetryPolicy(attempts=12, base_delay=0.5, max_delay=4.0, max_wait=30.0)

# One topic position: any topic (None), one topic, or any of several.
TopicFilter = Sequence[bytes | Sequence[bytes] | None]


class ChainMovedError(ChainError):
    """The chain changed while a batch was read (a reorg in progress); the batch is read again."""


class LogNodeBehindError(ChainError):
    """The provider's log node kept lacking a block its head node has, for as long as the policy allows."""


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


class RawLog(NamedTuple):
    """One log as eth_getLogs gives it (a named tuple: cheap to build, a batch holds thousands)."""

    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int


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


class _TransactionEntry(msgspec.Struct):
    hash: str
    input: str


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


class _LogConverter:
    """Turns the logs of one answer into `RawLog`s. A block's hash and number, a transaction's
    hash, the address and the event signature repeat from log to log: each distinct string is
    converted once per answer (a third of the time converting every field of every log took)."""

    def __init__(self) -> None:
        self._hashes: dict[str, bytes] = {}
        self._numbers: dict[str, int] = {}

    def __call__(self, entry: _LogEntry) -> RawLog:
        fromhex = bytes.fromhex
        hashes = self._hashes
        number = self._numbers.get(entry.blockNumber)
        if number is None:
            number = self._numbers[entry.blockNumber] = int(entry.blockNumber, 16)
        block_hash = hashes.get(entry.blockHash)
        if block_hash is None:
            block_hash = hashes[entry.blockHash] = fromhex(entry.blockHash[2:])
        tx_hash = hashes.get(entry.transactionHash)
        if tx_hash is None:
            tx_hash = hashes[entry.transactionHash] = fromhex(entry.transactionHash[2:])
        address = hashes.get(entry.address)
        if address is None:
            address = hashes[entry.address] = fromhex(entry.address[2:])
        topics: tuple[bytes, ...] = ()
        if entry.topics:
            first = hashes.get(entry.topics[0])
            if first is None:
                first = hashes[entry.topics[0]] = fromhex(entry.topics[0][2:])
            topics = (first, *[fromhex(t[2:]) for t in entry.topics[1:]])
        return RawLog(address, topics, fromhex(entry.data[2:]), number, block_hash, tx_hash, int(entry.logIndex, 16))


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


class ChainReader:
    """What the indexer (and the verifier) read from a chain, in as few round trips as the provider allows."""

    def __init__(
        self,
        rpc: Rpc,
        address: bytes,
        initial_span: int = 1000,
        max_span: int = 100_000,
        max_logs: int = 10_000,
        lag_guard: int = LAG_GUARD_BLOCKS,
        lag_retry: RetryPolicy = LAGGING_NODE_RETRY,
    ):
        if initial_span < 1 or max_span < initial_span:
            raise ConfigurationError(f"--batch-blocks must be between 1 and {max_span}, got {initial_span}")
        self.rpc = rpc
        self.address = address
        self.span = initial_span
        self.max_span = max_span
        self.max_logs = max_logs
        self.lag_guard = lag_guard
        self.lag_retry = lag_retry
        # The widest range the provider says it serves, once it has said so.
        self.max_range: int | None = None
        # After a refusal without a usable hint: (width not to exceed, answers left before probing again).
        self._refused: tuple[int, int] | None = None
        self.head: int | None = None
        self.refusals = 0
        # Headers read for the lag guard, handed to the next headers() call instead of read again.
        self._known_headers: dict[int, BlockHeader] = {}

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
        self.head = int(results[0], 16)
        return self.head, header

    def headers(self, numbers: Iterable[int]) -> dict[int, BlockHeader]:
        """Headers by number (blocks past the head are left out)."""
        wanted = sorted(set(numbers))
        known: dict[int, BlockHeader] = {}
        for number in wanted:  # pop(), not `in` then pop(): the next logs() may run on another thread
            header = self._known_headers.pop(number, None)
            if header is not None:
                known[number] = header
        missing = [n for n in wanted if n not in known]
        if missing:
            results = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in missing], _HeaderEntry)
            known.update({n: _header(r) for n, r in zip(missing, results) if r is not None})
        return known

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

    def transactions(self, tx_hashes: Iterable[bytes]) -> dict[bytes, bytes]:
        """The input data of each transaction (what it called)."""
        wanted = list(dict.fromkeys(tx_hashes))
        results = self.rpc.batch(
            [("eth_getTransactionByHash", ["0x" + h.hex()]) for h in wanted], _TransactionEntry, RECEIPT_BATCH
        )
        inputs = {}
        for tx_hash, result in zip(wanted, results):
            if result is None:
                raise ChainError(f"no transaction 0x{tx_hash.hex()} (the chain moved; retry)")
            inputs[tx_hash] = _bytes(result.input)
        return inputs

    def logs(self, start: int, last: int, topics: TopicFilter | None = None) -> tuple[int, list[RawLog]]:
        """The contract's logs from `start` up to at most `last`; returns the block it stopped at.

        `topics` filters as eth_getLogs does, position by position: None for any topic, a
        32-byte topic, or a sequence of topics of which any matches (event signatures, indexed
        arguments such as an instance key).

        A batch holds at most `max_logs` logs unless one block alone has more: reading stops at
        the first block boundary past the budget (the rest of the answer is never held), and the
        next call starts from there. Blocks within `lag_guard` of the head last seen by
        `head_and_header` (or set in `head`) are read one by one by block hash, in a call of
        their own; the headers read for that serve the next `headers()`.
        """
        self._known_headers.clear()  # they serve the headers() call that follows one logs() call
        guard_from = self.head - self.lag_guard + 1 if self.head is not None and self.lag_guard > 0 else None
        if guard_from is not None and last >= guard_from:
            if start >= guard_from:
                return self._guarded_logs(start, last, topics)
            last = guard_from - 1
        return self._range_logs(start, last, topics)

    def _filter(self, topics: TopicFilter | None, **where: str) -> dict[str, Any]:
        log_filter: dict[str, Any] = {"address": "0x" + self.address.hex(), **where}
        if topics is not None:
            log_filter["topics"] = _topics_param(topics)
        return log_filter

    def _range_logs(self, start: int, last: int, topics: TopicFilter | None) -> tuple[int, list[RawLog]]:
        while True:
            end = min(last, start + self._width() - 1)
            log_filter = self._filter(topics, fromBlock=hex(start), toBlock=hex(end))
            try:
                stopped, logs = self._while_behind(
                    lambda log_filter=log_filter, end=end: self._read_budgeted(log_filter, start, end)
                )
            except RpcError as error:
                if is_unknown_block(error.node_message):
                    raise LogNodeBehindError(
                        f"the provider's log node still lacks blocks up to {end} after "
                        f"{self.lag_retry.max_wait or 0:g} s ({error.node_message}); retry later"
                    ) from error
                if end == start:
                    raise
                self._narrow(start, end, error)
                continue
            self._adapt(end - start + 1, stopped - start + 1, len(logs), stopped < end)
            return stopped, logs

    def _read_budgeted(self, log_filter: dict[str, Any], start: int, end: int) -> tuple[int, list[RawLog]]:
        """The logs of one eth_getLogs over `start`-`end` as they arrive, up to the budget:
        (the last block read whole, its logs). Each log must lie in the range, in chain order."""

        def consume(slices: Iterator[list[_LogEntry]]) -> tuple[int, list[RawLog]]:
            logs: list[RawLog] = []
            over: int | None = None  # the block in which the budget was reached
            previous = (start, -1)
            convert = _LogConverter()
            for entries in slices:
                for entry in entries:
                    log = convert(entry)
                    place = (log.block_number, log.log_index)
                    if not start <= log.block_number <= end or place <= previous:
                        raise ChainError(
                            f"eth_getLogs for blocks {start}-{end} answered a log of block {log.block_number} "
                            f"(index {log.log_index}) out of range or out of order"
                        )
                    previous = place
                    if over is not None and log.block_number > over:
                        return over, logs
                    logs.append(log)
                    if over is None and len(logs) >= self.max_logs:
                        over = log.block_number
            return end, logs

        return self.rpc.stream("eth_getLogs", [log_filter], _LogEntry, consume)

    def _width(self) -> int:
        width = self.span
        if self.max_range is not None:
            width = min(width, self.max_range)
        if self._refused is not None:
            width = min(width, self._refused[0])
        return max(1, width)

    def _narrow(self, start: int, end: int, error: RpcError) -> None:
        """A refused range: narrower, as the provider suggests where it does."""
        self.refusals += 1
        width = end - start + 1
        refusal = range_refusal(error.node_message, error.data)
        if refusal.max_blocks is not None and refusal.max_blocks < width:
            self.max_range = refusal.max_blocks if self.max_range is None else min(self.max_range, refusal.max_blocks)
        suggested = refusal.suggested
        if suggested is not None and suggested[0] == start and start <= suggested[1] < end:
            self.span = suggested[1] - start + 1
        elif refusal.max_blocks is not None and refusal.max_blocks < width:
            self.span = refusal.max_blocks
        else:  # nothing usable: halve, and stay there for a while before probing wider again
            self.span = max(1, width // 2)
            self._refused = (self.span, REFUSAL_MEMORY)

    def _adapt(self, width: int, covered: int, count: int, full: bool) -> None:
        """The next range after `count` logs over the first `covered` of `width` blocks asked for
        (`full`: the budget was reached before the end of the range)."""
        if self._refused is not None:
            ceiling, left = self._refused
            self._refused = (ceiling, left - 1) if left > 1 else None
        if full:  # dense: as many blocks as held a batch's worth of logs here, so the next batch just fits
            self.span = max(1, covered * self.max_logs // max(1, count))
        elif count < self.max_logs // 4 and width >= self._width() and self._refused is None:
            self.span = min(self.max_span, width * 2)

    def _guarded_logs(self, start: int, last: int, topics: TopicFilter | None) -> tuple[int, list[RawLog]]:
        """Logs near the head, block by block by hash: a node that lacks a block refuses instead of answering short.

        The blocks' answers come in one batch (at most `lag_guard` blocks of logs); the batch
        returned ends at the first block boundary past the budget, as a range read does.
        """
        numbers = list(range(start, last + 1))
        headers = self.headers(numbers)
        missing = [n for n in numbers if n not in headers]
        if missing:
            raise ChainMovedError(f"block {missing[0]} is gone")
        calls = [("eth_getLogs", [self._filter(topics, blockHash="0x" + headers[n].hash.hex())]) for n in numbers]
        try:
            answers = self._while_behind(lambda: self.rpc.batch(calls, list[_LogEntry]))
        except RpcError as error:
            if not is_unknown_block(error.node_message):
                raise
            now = self.headers(numbers)
            if any(now.get(n) != headers[n] for n in numbers):
                raise ChainMovedError(f"blocks {start}-{last} changed while they were read") from error
            raise LogNodeBehindError(
                f"the provider's log node still lacks block {last} after {self.lag_retry.max_wait or 0:g} s "
                f"({error.node_message}); retry later or index with more --confirmations"
            ) from error
        logs: list[RawLog] = []
        stopped = last
        convert = _LogConverter()
        for number, entries in zip(numbers, answers):
            if len(logs) >= self.max_logs:
                stopped = number - 1
                break
            previous = -1
            for entry in entries:
                log = convert(entry)
                if log.block_number != number or log.block_hash != headers[number].hash or log.log_index <= previous:
                    raise ChainError(
                        f"eth_getLogs by hash of block {number} answered a log of block {log.block_number} "
                        f"(index {log.log_index}) out of its block or out of order"
                    )
                previous = log.log_index
                logs.append(log)
        self._known_headers.update({n: headers[n] for n in numbers if n <= stopped})
        return stopped, logs

    def _while_behind(self, fetch: Any) -> Any:
        """`fetch()`, retried while the log node says it lacks a block the head node has."""

        def behind(error: BaseException) -> bool:
            return isinstance(error, RpcError) and is_unknown_block(error.node_message)

        return with_retry(fetch, self.lag_retry, retryable=behind, sleep=time.sleep)

    def forget_pending(self) -> None:
        """Drops what the reader kept for the next call (headers read for the lag guard), after a
        reorg or a restart from another block; logs are never kept between calls."""
        self._known_headers.clear()


def _topic_hex(topic: bytes | str) -> str:
    if isinstance(topic, str):
        topic = bytes.fromhex(topic.removeprefix("0x"))
    if len(topic) != 32:
        raise ConfigurationError(f"a log topic has 32 bytes, got {len(topic)}")
    return "0x" + topic.hex()


def _topics_param(topics: TopicFilter) -> list[Any]:
    param: list[Any] = []
    for position in topics:
        if position is None:
            param.append(None)
        elif isinstance(position, (bytes, str)):
            param.append(_topic_hex(position))
        else:
            param.append([_topic_hex(t) for t in position])
    return param
