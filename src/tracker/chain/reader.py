"""Reading a chain in as few round trips as the node allows: logs over adaptive block ranges, block headers and receipts in JSON-RPC batches.

Logs are read as the answer arrives and reading stops at a block boundary once a batch holds
`max_logs` logs, so memory is bounded by that budget (or by one block, if one block alone holds
more), whatever the width of the range. Near the head, where a load-balanced provider may answer
`eth_getLogs` from a node a few blocks behind the one that answered `eth_blockNumber` (and such a
node answers a range it has not reached with fewer logs, not with an error), the last
`lag_guard` blocks are read by block hash (EIP-234), which a node that lacks the block refuses.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from tracker.chain.rpc import JsonRpc, RpcError
from tracker.errors import ChainError, ConfigurationError

# Receipts carry all their logs, so they go out in smaller, concurrent batches.
RECEIPT_BATCH = 25
# Blocks below the head that are read by block hash.
LAG_GUARD_BLOCKS = 8
# Waits for a log node that lacks a block the head node has: seconds between tries.
LAGGING_NODE_WAITS = (0.25, 0.5, 1.0, 2.0, 4.0)


class ChainMovedError(ChainError):
    """The chain changed while a batch was read (a reorg in progress); the batch is read again."""


class LogNodeBehindError(ChainError):
    """The provider's log node kept lacking a block its head node has."""


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


class ChainReader:
    """What the indexer reads from a chain, in as few round trips as the node allows."""

    def __init__(
        self,
        rpc: JsonRpc,
        address: bytes,
        initial_span: int = 1000,
        max_span: int = 100_000,
        max_logs: int = 10_000,
        lag_guard: int = LAG_GUARD_BLOCKS,
    ):
        if initial_span < 1 or max_span < initial_span:
            raise ConfigurationError(f"--batch-blocks must be between 1 and {max_span}, got {initial_span}")
        self.rpc = rpc
        self.address = address
        self.span = initial_span
        self.max_span = max_span
        self.max_logs = max_logs
        self.lag_guard = lag_guard
        self.head: int | None = None

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

    def logs(self, start: int, last: int) -> tuple[int, list[RawLog]]:
        """The contract's logs from `start` up to at most `last`; returns the block it stopped at.

        A batch holds at most `max_logs` logs unless one block alone has more: reading stops at
        the first block boundary past the budget (the rest of the answer is never held), and
        the next call starts from there. Blocks within `lag_guard` of the head last seen by
        `head_and_header` are read by hash, in a call of their own.
        """
        guard_from = None if self.head is None or self.lag_guard <= 0 else self.head - self.lag_guard + 1
        if guard_from is not None and last >= guard_from:
            if start >= guard_from:
                return self._logs_by_hash(start, last)
            last = guard_from - 1
        while True:
            end = min(last, start + self.span - 1)
            log_filter = {"address": "0x" + self.address.hex(), "fromBlock": hex(start), "toBlock": hex(end)}
            try:
                stopped, logs = self._read_budgeted(log_filter, end)
            except RpcError:
                # Providers refuse ranges that are too long or answers that are too large, each in
                # its own words: any refusal of a range wider than one block is retried narrower.
                if end == start:
                    raise
                # Halve, and never grow back past the halved width: at most 2x below the node's
                # limit, instead of probing it again and again.
                self.span = self.max_span = max(1, (end - start + 1) // 2)
                continue
            if stopped < end:  # dense: the next range covers about as many blocks as this batch did
                self.span = max(1, stopped - start + 1)
            elif len(logs) < self.max_logs // 4 and end - start + 1 == self.span:
                self.span = min(self.max_span, self.span * 2)
            return stopped, logs

    def _read_budgeted(self, log_filter: dict[str, Any], end: int) -> tuple[int, list[RawLog]]:
        """Logs of one eth_getLogs as they arrive, up to the budget: (last complete block, logs)."""
        logs: list[RawLog] = []
        over: int | None = None  # the block in which the budget was reached
        slices = self.rpc.stream("eth_getLogs", [log_filter], _LogEntry)
        try:
            for entries in slices:
                for entry in entries:
                    log = _log(entry)
                    if logs and (log.block_number, log.log_index) <= (logs[-1].block_number, logs[-1].log_index):
                        raise ChainError("eth_getLogs answered logs out of chain order")
                    if over is not None and log.block_number > over:
                        return over, logs
                    logs.append(log)
                    if over is None and len(logs) >= self.max_logs:
                        over = log.block_number
        finally:
            slices.close()
        return end, logs

    def _logs_by_hash(self, start: int, last: int) -> tuple[int, list[RawLog]]:
        """Logs of blocks near the head, one eth_getLogs per block hash, all in one batch."""
        numbers = list(range(start, last + 1))
        headers = self.headers(numbers)
        if any(n not in headers for n in numbers):
            raise ChainMovedError(f"block {min(n for n in numbers if n not in headers)} is gone")
        calls = [
            ("eth_getLogs", [{"address": "0x" + self.address.hex(), "blockHash": "0x" + headers[n].hash.hex()}])
            for n in numbers
        ]
        for wait in (*LAGGING_NODE_WAITS, None):
            try:
                answers = self.rpc.batch(calls, list[_LogEntry])
                break
            except RpcError as error:
                if "unknown block" not in error.node_message.lower() and "not found" not in error.node_message.lower():
                    raise
                if wait is None:
                    raise LogNodeBehindError(
                        f"the node answering eth_getLogs still lacks blocks up to {last} "
                        f"({error.node_message}); retry later, or index with more --confirmations"
                    ) from error
                time.sleep(wait)
        logs = []
        for number, entries in zip(numbers, answers):
            for entry in entries:
                log = _log(entry)
                if log.block_number != number or log.block_hash != headers[number].hash:
                    raise ChainError(f"eth_getLogs for the hash of block {number} answered a log of another block")
                logs.append(log)
        return last, logs

    def forget_pending(self) -> None:
        """Kept for callers that reset the reader after a reorg: reads hold nothing between calls."""
