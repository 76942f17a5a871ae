"""Reading the chain for the indexer: raw JSON-RPC through the connected provider's transport.

Responses are parsed straight from JSON (no web3 result formatters, which cost more than the
rest of the indexer together on large log ranges). Block headers and receipts go out as JSON-RPC
batch requests, one entry per distinct block or transaction, never one request per event.
`eth_getLogs` runs over block ranges that adapt: they halve when the node refuses a range or
returns more logs than a batch should hold, and double while they come back sparse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from tracker.errors import ChainError, ConfigurationError, one_line

DEFAULT_RPC_BATCH = 250


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


def _bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def _int(value: str | int) -> int:
    return value if isinstance(value, int) else int(value, 16)


def parse_log(entry: dict[str, Any]) -> RawLog:
    return RawLog(
        address=_bytes(entry["address"]),
        topics=tuple(_bytes(t) for t in entry["topics"]),
        data=_bytes(entry["data"]),
        block_number=_int(entry["blockNumber"]),
        block_hash=_bytes(entry["blockHash"]),
        tx_hash=_bytes(entry["transactionHash"]),
        log_index=_int(entry["logIndex"]),
    )


def parse_header(entry: dict[str, Any]) -> BlockHeader:
    return BlockHeader(
        number=_int(entry["number"]),
        hash=_bytes(entry["hash"]),
        parent_hash=_bytes(entry["parentHash"]),
        timestamp=_int(entry["timestamp"]),
    )


def parse_receipt(entry: dict[str, Any]) -> Receipt:
    # Pre-London receipts have no effectiveGasPrice; the transaction's gasPrice is then the price.
    price = entry.get("effectiveGasPrice") or entry.get("gasPrice") or "0x0"
    return Receipt(
        tx_hash=_bytes(entry["transactionHash"]),
        block_hash=_bytes(entry["blockHash"]),
        from_address=_bytes(entry["from"]),
        to_address=_bytes(entry["to"]) if entry.get("to") else None,
        gas_used=_int(entry["gasUsed"]),
        effective_gas_price=_int(price),
    )


class JsonRpc:
    """JSON-RPC calls over a web3 transport (`HTTPProvider` and friends), single or batched."""

    def __init__(self, transport: Any, batch_size: int = DEFAULT_RPC_BATCH):
        self.transport = transport
        self.batch_size = batch_size

    @classmethod
    def from_web3(cls, web3: Any, batch_size: int = DEFAULT_RPC_BATCH) -> "JsonRpc":
        """The transport behind a web3 instance (ape's `provider.web3`).

        Raises `ConfigurationError` for transports without JSON-RPC batches, such as ape's
        in-process test chain.
        """
        transport = web3.provider
        if not hasattr(transport, "make_batch_request") or "EthereumTester" in type(transport).__name__:
            raise ConfigurationError(
                "the indexer reads logs over JSON-RPC and the in-process test chain has none: "
                "use --network ethereum:local:foundry, a node or Alchemy"
            )
        return cls(transport, batch_size)

    @classmethod
    def from_uri(cls, uri: str, batch_size: int = DEFAULT_RPC_BATCH) -> "JsonRpc":
        """A JSON-RPC endpoint by URL (used when no ape provider is at hand, e.g. in tests)."""
        from web3 import HTTPProvider

        return cls(HTTPProvider(uri, request_kwargs={"timeout": 60}), batch_size)

    def call(self, method: str, params: Sequence[Any]) -> Any:
        try:
            response = self.transport.make_request(method, list(params))
        except Exception as error:  # transports raise their own errors (requests, sockets)
            raise ChainError(f"{method} failed: {one_line(error)}") from error
        return _result(method, response)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Results in the order of `calls`, sent `batch_size` requests per round trip."""
        results: list[Any] = []
        for start in range(0, len(calls), self.batch_size):
            chunk = [(method, list(params)) for method, params in calls[start : start + self.batch_size]]
            try:
                responses = self.transport.make_batch_request(chunk)
            except Exception as error:
                raise ChainError(f"batch of {chunk[0][0]} failed: {one_line(error)}") from error
            if isinstance(responses, dict):  # the node refused the whole batch
                results.append(_result(chunk[0][0], responses))
                continue
            if len(responses) != len(chunk):
                raise ChainError(f"batch of {len(chunk)} {chunk[0][0]} got {len(responses)} answers")
            results.extend(_result(method, response) for (method, _), response in zip(chunk, responses))
        return results


def _result(method: str, response: Any) -> Any:
    if not isinstance(response, dict):
        raise ChainError(f"{method}: unexpected answer {response!r:.80}")
    error = response.get("error")
    if error:
        if isinstance(error, dict):
            raise RpcError(method, error.get("code"), str(error.get("message", error)))
        raise RpcError(method, None, str(error))
    return response.get("result")


class ChainReader:
    """What the indexer reads from a chain, in as few round trips as the node allows."""

    def __init__(self, rpc: JsonRpc, address: bytes, initial_span: int = 1000, max_span: int = 100_000,
                 max_logs: int = 10_000):
        if initial_span < 1 or max_span < initial_span:
            raise ConfigurationError(f"block span must be between 1 and {max_span}, got {initial_span}")
        self.rpc = rpc
        self.address = address
        self.span = initial_span
        self.max_span = max_span
        self.max_logs = max_logs

    def chain_id(self) -> int:
        return _int(self.rpc.call("eth_chainId", []))

    def code(self, address: bytes) -> bytes:
        return _bytes(self.rpc.call("eth_getCode", ["0x" + address.hex(), "latest"]))

    def head_and_header(self, number: int | None) -> tuple[int, BlockHeader | None]:
        """The head block number and, in the same round trip, the header at `number` (if any)."""
        calls: list[tuple[str, Sequence[Any]]] = [("eth_blockNumber", [])]
        if number is not None and number >= 0:
            calls.append(("eth_getBlockByNumber", [hex(number), False]))
        results = self.rpc.batch(calls)
        header = parse_header(results[1]) if len(results) > 1 and results[1] else None
        return _int(results[0]), header

    def headers(self, numbers: Iterable[int]) -> dict[int, BlockHeader]:
        """Headers by number (blocks past the head are left out)."""
        wanted = sorted(set(numbers))
        results = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in wanted])
        return {n: parse_header(r) for n, r in zip(wanted, results) if r}

    def receipts(self, tx_hashes: Iterable[bytes]) -> dict[bytes, Receipt]:
        wanted = list(dict.fromkeys(tx_hashes))
        results = self.rpc.batch([("eth_getTransactionReceipt", ["0x" + h.hex()]) for h in wanted])
        receipts = {}
        for tx_hash, result in zip(wanted, results):
            if result is None:
                raise ChainError(f"no receipt for transaction 0x{tx_hash.hex()} (the chain moved; retry)")
            receipts[tx_hash] = parse_receipt(result)
        return receipts

    def logs(self, start: int, last: int) -> tuple[int, list[RawLog]]:
        """The contract's logs from `start` up to at most `last`; returns the block it stopped at."""
        while True:
            end = min(last, start + self.span - 1)
            try:
                entries = self.rpc.call(
                    "eth_getLogs", [{"address": "0x" + self.address.hex(), "fromBlock": hex(start), "toBlock": hex(end)}]
                )
            except ChainError:
                # Providers refuse ranges that are too long or answers that are too large, each in
                # its own words: any refusal of a range wider than one block is retried narrower.
                if end == start:
                    raise
                self.span = max(1, (end - start + 1) // 2)
                continue
            if len(entries) > self.max_logs:
                self.span = max(1, (end - start + 1) // 2)
            elif len(entries) < self.max_logs // 4 and end - start + 1 == self.span:
                self.span = min(self.max_span, self.span * 2)
            return end, [parse_log(e) for e in entries]
