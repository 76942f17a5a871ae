"""Reading a chain in as few round trips as the node allows: logs over adaptive block ranges, block headers and receipts in JSON-RPC batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from tracker.chain.rpc import JsonRpc, RpcError
from tracker.errors import ChainError, ConfigurationError

# Receipts carry all their logs, so they go out in smaller, concurrent batches.
RECEIPT_BATCH = 25


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
        self, rpc: JsonRpc, address: bytes, initial_span: int = 1000, max_span: int = 100_000, max_logs: int = 10_000
    ):
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
