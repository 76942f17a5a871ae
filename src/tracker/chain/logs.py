"""InstanceTracker's events as the tracker and the verifier read them: filtered by event and
indexed values, decoded with the compiled ABI (`tracker.chain.events`), never retyped.

Over JSON-RPC the raw `eth_getLogs` answer is decoded by msgspec straight into the fields read
(web3's result formatters checksum an address per log, which costs more than the request itself
for a thousand logs, and a dictionary per log costs memory); ape's in-process test chain speaks no
JSON-RPC, so there web3's own method is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from eth_abi import encode

from tracker.chain.events import DecodedEvent, EventDecoder, EventSpec
from tracker.chain.reader import RawLog
from tracker.documents.ids import checksum_address, normalize_address
from tracker.errors import ChainError, one_line

TopicValue = str | bytes | int | bool | None


@dataclass(frozen=True)
class TrackerEvent:
    """One decoded event with where it happened."""

    name: str
    args: dict[str, Any]
    block_number: int
    transaction_hash: str
    log_index: int


@cache
def _decoder() -> EventDecoder:
    return EventDecoder.for_tracker(b"")


def event_spec(name: str) -> EventSpec:
    for spec in _decoder().by_topic.values():
        if spec.name == name:
            return spec
    raise KeyError(f"InstanceTracker has no event {name}")


def topic_of(name: str) -> str:
    """The topic 0 of an event, from the compiled ABI."""
    return "0x" + event_spec(name).topic.hex()


def _encode_topic(kind: str, value: TopicValue) -> str:
    if isinstance(value, str) and kind == "address":
        return "0x" + encode(["address"], [checksum_address(value)]).hex()
    if isinstance(value, str):
        return "0x" + bytes.fromhex(value.removeprefix("0x")).rjust(32, b"\0").hex()
    if isinstance(value, bytes):
        return "0x" + value.rjust(32, b"\0").hex()
    return "0x" + encode([kind], [value]).hex()


def _quantity(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


def _data(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


def events(
    address: str,
    name: str,
    indexed: Sequence[TopicValue | Sequence[TopicValue]] = (),
    from_block: int = 0,
    to_block: int | str = "latest",
) -> list[TrackerEvent]:
    """The contract's `name` events whose indexed inputs match `indexed` (in ABI order; None is any
    value, a list is any of its values), decoded, in chain order."""
    return events_of_kinds(address, [name], indexed, from_block, to_block)


def events_of_kinds(
    address: str,
    names: Sequence[str],
    indexed: Sequence[TopicValue | Sequence[TopicValue]] = (),
    from_block: int = 0,
    to_block: int | str = "latest",
) -> list[TrackerEvent]:
    """Events of several kinds in one `eth_getLogs` (topic 0 is any of them), decoded, in chain
    order. `indexed` applies to each kind alike, so the kinds must share the types of the indexed
    inputs it gives a value for (e.g. the instance key that StateRegistered, AttemptEnded and
    InstanceTerminated all index first, or the execution InstanceRegistered and
    InstanceTransferred both index third)."""
    found = list(iter_events_of_kinds(address, names, indexed, from_block, to_block))
    found.sort(key=lambda event: (event.block_number, event.log_index))
    return found


def iter_events_of_kinds(
    address: str,
    names: Sequence[str],
    indexed: Sequence[TopicValue | Sequence[TopicValue]] = (),
    from_block: int = 0,
    to_block: int | str = "latest",
) -> Iterator[TrackerEvent]:
    """`events_of_kinds` one event at a time, in the node's order (chain order), each raw log
    let go once decoded: a reader that keeps only a few fields of each of many events never
    holds them all decoded at once."""
    if not names:
        return iter(())
    params = _filter(address, names, indexed, from_block, to_block)
    return _decoded(address, names, _raw_logs(params, from_block, to_block))


def _filter(
    address: str,
    names: Sequence[str],
    indexed: Sequence[TopicValue | Sequence[TopicValue]],
    from_block: int,
    to_block: int | str,
) -> dict[str, Any]:
    """The `eth_getLogs` filter of `names` events of `address` whose indexed inputs match `indexed`."""
    specs = [event_spec(name) for name in names]
    kinds = [kind for _, kind in specs[0].indexed]
    for spec in specs[1:]:
        theirs = [kind for _, kind in spec.indexed]
        for position, value in enumerate(indexed):
            if value is not None and (position >= len(theirs) or theirs[position] != kinds[position]):
                raise ValueError(f"{spec.name} does not index input {position} as {specs[0].name} does")
    first: Any = topic_of(names[0]) if len(names) == 1 else [topic_of(name) for name in names]
    topics: list[Any] = [first]
    for kind, value in zip(kinds, indexed):
        if value is None:
            topics.append(None)
        elif isinstance(value, (list, tuple)):
            topics.append([_encode_topic(kind, v) for v in value])
        else:
            topics.append(_encode_topic(kind, value))  # type: ignore[arg-type]
    while topics and topics[-1] is None:
        topics.pop()
    end = to_block if isinstance(to_block, str) else hex(to_block)
    return {"address": checksum_address(address), "topics": topics, "fromBlock": hex(from_block), "toBlock": end}


def _decoded(address: str, names: Sequence[str], raw: list[RawLog]) -> Iterator[TrackerEvent]:
    wanted = set(names)
    decoder = EventDecoder(_decoder().by_topic.values(), bytes.fromhex(normalize_address(address)))
    raw.reverse()
    while raw:
        log = raw.pop()  # in chain order, and let go of as it is decoded
        decoded: DecodedEvent | None = decoder.decode_one(log)
        if decoded is None or decoded.name not in wanted:
            kind = "/".join(names)
            raise ChainError(f"a {kind} log of {address} in block {log.block_number} does not decode with our ABI")
        yield TrackerEvent(decoded.name, decoded.args, log.block_number, log.tx_hash.hex(), log.log_index)


@dataclass(frozen=True)
class LogQuery:
    """One `eth_getLogs` of `read_together`: the `names` events whose indexed inputs match `indexed`."""

    names: Sequence[str]
    indexed: Sequence[TopicValue | Sequence[TopicValue]] = ()
    from_block: int = 0
    to_block: int | str = "latest"


def read_together(
    address: str, queries: Sequence[LogQuery], calls: Sequence[bytes] = ()
) -> tuple[list[Iterator[TrackerEvent]], list[bytes]]:
    """Several log queries of `address` and `eth_call`s of it (encoded calldata) in one JSON-RPC
    batch: one round trip to a hosted provider where one request each would cost as many 60 ms
    trips. Returns each query's events (in chain order, decoded as they are read) and each call's
    return data. A call that reverts raises `ChainError`."""
    wanted = [query for query in queries if query.names]
    requests: list[tuple[str, list[Any]]] = [
        ("eth_getLogs", [_filter(address, q.names, q.indexed, q.from_block, q.to_block)]) for q in wanted
    ]
    to = checksum_address(address)
    requests += [("eth_call", [{"to": to, "data": "0x" + bytes(data).hex()}, "latest"]) for data in calls]
    try:
        answers = _rpc().batch(requests, list[_WireLog] | str) if requests else []
    except ChainError:
        raise
    except Exception as error:  # transport- and node-specific errors
        raise ChainError(f"reading the logs and state of {address} failed: {one_line(error)}") from error
    found: dict[int, Iterator[TrackerEvent]] = {}
    for index, query in enumerate(wanted):
        found[id(query)] = _decoded(address, query.names, _from_wire(answers[index] or []))
        answers[index] = None  # converted: the wire entries are gone
    events = [found.get(id(query), iter(())) for query in queries]
    results = [_data(answer or "0x") for answer in answers[len(wanted) :]]
    return events, results


class _TransactionOrBlock(msgspec.Struct):
    """The fields read of a transaction (its sender) or a block header (its time)."""

    sender: str | None = msgspec.field(default=None, name="from")
    timestamp: str | None = None


def senders_and_times(hashes: Sequence[str], numbers: Sequence[int]) -> tuple[dict[str, str], dict[int, int]]:
    """The sender (40 hex) of each transaction and the timestamp of each block, in one JSON-RPC
    batch (what `transaction_senders` and `block_timestamps` read in two)."""
    wanted_hashes = sorted(set(hashes))
    wanted_numbers = sorted(set(numbers))
    requests: list[tuple[str, list[Any]]] = [("eth_getTransactionByHash", ["0x" + h]) for h in wanted_hashes]
    requests += [("eth_getBlockByNumber", [hex(n), False]) for n in wanted_numbers]
    answers = _rpc().batch(requests, _TransactionOrBlock) if requests else []
    senders: dict[str, str] = {}
    for tx_hash, answer in zip(wanted_hashes, answers):
        if answer is None or answer.sender is None:
            raise ChainError(f"the node does not know transaction 0x{tx_hash}")
        senders[tx_hash] = normalize_address(answer.sender)
    times: dict[int, int] = {}
    for number, answer in zip(wanted_numbers, answers[len(wanted_hashes) :]):
        if answer is None or answer.timestamp is None:
            raise ChainError(f"the node does not know block {number}")
        times[number] = int(answer.timestamp, 16)
    return senders, times


class _WireLog(msgspec.Struct):
    """The fields of an `eth_getLogs` entry that are read (msgspec skips the others)."""

    address: str
    topics: list[str]
    data: str
    blockNumber: str
    blockHash: str
    transactionHash: str
    logIndex: str


@cache
def _json_rpc(uri: str) -> Any:
    from tracker.chain.rpc import JsonRpc

    return JsonRpc.from_uri(uri)


def _from_wire(entries: Any) -> list[RawLog]:
    """Raw logs of decoded wire entries, each entry let go of once converted (for 10,000 logs,
    the two lists whole at once would cost several MB more)."""
    if isinstance(entries, str):
        raise ChainError(f"eth_getLogs: unexpected answer {entries[:40]!r}")
    entries.reverse()
    converted = []
    while entries:
        e = entries.pop()
        converted.append(
            RawLog(
                address=_data(e.address),
                topics=tuple(_data(t) for t in e.topics),
                data=_data(e.data),
                block_number=int(e.blockNumber, 16),
                block_hash=_data(e.blockHash),
                tx_hash=_data(e.transactionHash),
                log_index=int(e.logIndex, 16),
            )
        )
    return converted


def chain_rpc() -> Any:
    """The chain-access layer for the connected provider that the log readers share (`JsonRpc`,
    or `InProcessRpc` for ape's in-process chain)."""
    return _rpc()


def _rpc() -> Any:
    """The chain-access layer for the connected provider: `JsonRpc` over its HTTP endpoint
    (one per endpoint, so its knowledge of the provider lasts), else ape's in-process chain."""
    from ape import chain

    from tracker.chain.rpc import InProcessRpc, _http_uri

    uri = _http_uri(chain.provider)
    return _json_rpc(uri) if uri else InProcessRpc(chain.provider.web3)


def _raw_logs(params: dict[str, Any], from_block: int, to_block: int | str) -> list[RawLog]:
    """`eth_getLogs` as raw logs: over JSON-RPC decoded by msgspec straight into the fields read
    (no dictionary per log, no web3 result formatters); ape's in-process test chain speaks no
    JSON-RPC, so there web3's own method is used."""
    from ape import chain
    from web3.providers import JSONBaseProvider

    web3 = chain.provider.web3
    try:
        if isinstance(web3.provider, JSONBaseProvider):
            uri = getattr(chain.provider, "http_uri", None) or getattr(web3.provider, "endpoint_uri", None)
            if uri:
                return _from_wire(_json_rpc(str(uri)).call("eth_getLogs", [params], list[_WireLog]))
            from web3.types import RPCEndpoint

            response = web3.provider.make_request(RPCEndpoint("eth_getLogs"), [params])
            if "error" in response:
                raise ChainError(f"eth_getLogs failed: {one_line(response['error'])}")
            raw = list(response["result"])
        else:
            in_process = {**params, "fromBlock": from_block, "toBlock": to_block}
            raw = [dict(log) for log in web3.eth.get_logs(in_process)]  # type: ignore[arg-type,unused-ignore]
    except ChainError:
        raise
    except Exception as error:  # web3 raises transport- and node-specific errors
        raise ChainError(f"eth_getLogs failed: {one_line(error)}") from error
    return [
        RawLog(
            address=_data(entry["address"]),
            topics=tuple(_data(t) for t in entry["topics"]),
            data=_data(entry["data"]),
            block_number=_quantity(entry["blockNumber"]),
            block_hash=_data(entry["blockHash"]),
            tx_hash=_data(entry["transactionHash"]),
            log_index=_quantity(entry["logIndex"]),
        )
        for entry in raw
    ]


def _batched(requests: Sequence[Any], one: Any) -> list[Any]:
    """Results of web3 requests, in one JSON-RPC batch where the provider takes batches (ape's
    in-process chain does not: one by one there)."""
    from ape import chain

    web3 = chain.provider.web3
    if len(requests) > 1:
        try:
            with web3.batch_requests() as batch:
                for request in requests:
                    batch.add(one(web3, request))
                return list(batch.execute())
        except Exception:  # a provider without batch support
            pass
    return [one(web3, request) for request in requests]


def block_timestamps(numbers: Sequence[int]) -> dict[int, int]:
    """Block timestamps, in one batch where the provider takes batches."""
    wanted = sorted(set(numbers))
    blocks = _batched(wanted, lambda web3, number: web3.eth.get_block(number)) if wanted else []
    return {number: int(block["timestamp"]) for number, block in zip(wanted, blocks)}


def transaction_senders(hashes: Sequence[str]) -> dict[str, str]:
    """The sender of each transaction (40 hex), in one batch where the provider takes batches."""
    wanted = sorted(set(hashes))
    found = _batched(wanted, lambda web3, tx_hash: web3.eth.get_transaction("0x" + tx_hash)) if wanted else []
    return {tx_hash: normalize_address(str(item["from"])) for tx_hash, item in zip(wanted, found)}
