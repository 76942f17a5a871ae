"""Decoding InstanceTracker logs with the contract's ABI.

A log is decoded when its first topic is the hash of one of the ABI's event signatures, it has
one topic per indexed input and its data decodes strictly as the other inputs. Logs of another
address are counted as foreign. A log of the decoded address that does not decode is a bug in
our ABI or our decoder, never data to skip: `EventDecoder.decode` raises `UndecodableLogError`
naming the log and the reason.

Strings are kept as their exact bytes (ABI `string` and `bytes` share one encoding): a string
argument is whatever bytes the sender chose, NUL bytes and invalid UTF-8 included, and turning
it into text is the reader's choice (`render_text`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from eth_abi import decode as abi_decode
from eth_utils import keccak

from tracker.chain.reader import RawLog
from tracker.errors import ChainError

EVENT_NAMES = (
    "ModelRegistered",
    "InstanceRegistered",
    "StateRegistered",
    "AttemptEnded",
    "InstanceTerminated",
    "TransitionRegistered",
    "TransferProposed",
    "InstanceTransferred",
    "OperatorSet",
    "ClientIdRegistered",
    "CertificateRegistered",
    "StatesAnchored",
)


class UndecodableLogError(ChainError):
    """A log of the decoded contract does not decode with its ABI (our bug: the run stops)."""


def render_text(raw: bytes) -> str:
    """Exact bytes as text that never fails and never collides: UTF-8 text as it is, except that
    a backslash becomes `\\\\`, and a control character (NUL included: Postgres text cannot hold
    it) or a byte that is not UTF-8 becomes `\\xNN`. Two different byte strings never render
    alike, and a rendering holds nothing a terminal would act on."""
    text = raw.decode("utf-8", "surrogateescape").replace("\\", "\\\\")
    return _ESCAPED.sub(_escape, text)


# Control characters, and the lone surrogates that surrogateescape makes of bytes that are not UTF-8.
_ESCAPED = re.compile("[\x00-\x1f\x7f\udc80-\udcff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00 if code >= 0xDC00 else code:02x}"


@dataclass(frozen=True)
class EventSpec:
    """One event of the ABI: its topic and how its inputs split over topics and data."""

    name: str
    topic: bytes
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]
    static_data: bool  # every non-indexed input is one ABI word: no string or bytes


class DecodedEvent(NamedTuple):
    """One decoded log (a named tuple: a batch builds a hundred thousand of them)."""

    name: str
    log: RawLog
    args: dict[str, Any]


@dataclass
class DecodeOutcome:
    events: list[DecodedEvent] = field(default_factory=list)
    foreign: int = 0


def _plain(abi_type: str, value: Any) -> Any:
    """Decoded values as the loader stores them: addresses as 20 bytes, the rest unchanged."""
    if abi_type == "address":
        return bytes.fromhex(value[2:])
    return value


def _exact(abi_type: str) -> str:
    """The type to decode an input as: strings as the bytes they are (the same ABI encoding)."""
    return "bytes" if abi_type == "string" else abi_type


_INVALID = object()
STATIC_WORD_TYPES = ("address", "bool", "bytes32")


def _is_static_word(abi_type: str) -> bool:
    return abi_type in STATIC_WORD_TYPES or abi_type.startswith("uint")


def _word_value(abi_type: str, word: bytes) -> Any:
    """One ABI word as its value, or `_INVALID` when it is not a clean encoding of the type."""
    if abi_type == "bytes32":
        return word
    if abi_type == "address":
        return word[12:] if not any(word[:12]) else _INVALID
    if abi_type == "bool":
        return word[31] == 1 if not any(word[:31]) and word[31] <= 1 else _INVALID
    bits = int(abi_type[4:] or 256)
    value = int.from_bytes(word, "big")
    return value if value < 1 << bits else _INVALID


def _word_reader(abi_type: str) -> Callable[[bytes], Any]:
    """`_word_value` for one type, with what depends on the type worked out once."""
    if abi_type == "bytes32":
        return _same
    if abi_type.startswith("uint"):
        limit = 1 << int(abi_type[4:] or 256)

        def read_uint(word: bytes) -> Any:
            value = int.from_bytes(word, "big")
            return value if value < limit else _INVALID

        return read_uint
    return lambda word: _word_value(abi_type, word)


def _topic_value(abi_type: str, topic: bytes) -> Any:
    if abi_type == "address":
        return topic[12:]
    if abi_type == "bool":
        return topic[-1] == 1
    if abi_type.startswith("uint"):
        return int.from_bytes(topic, "big")
    return topic  # bytes32, and the hash of dynamic values


def _topic_reader(abi_type: str) -> Callable[[bytes], Any]:
    return lambda topic: _topic_value(abi_type, topic)


def _same(topic: bytes) -> bytes:
    return topic


def _address_topic(topic: bytes) -> bytes:
    return topic[12:]


_TOPIC_READERS: dict[str, Callable[[bytes], Any]] = {"bytes32": _same, "address": _address_topic}


class EventDecoder:
    """Decodes the logs of one contract address with an event ABI."""

    def __init__(self, specs: Iterable[EventSpec], address: bytes):
        self.by_topic = {spec.topic: spec for spec in specs}
        self.address = address
        # Per event, how each topic becomes its value, chosen once instead of per log.
        self._topic_readers = {
            spec.topic: tuple((name, _TOPIC_READERS.get(kind) or _topic_reader(kind)) for name, kind in spec.indexed)
            for spec in self.by_topic.values()
        }
        # Events whose indexed inputs are all bytes32 (StateRegistered's key and state, ...): the
        # topics are the values, paired with their names without a reader call per topic.
        self._bytes32_topics = {
            spec.topic: tuple(name for name, _ in spec.indexed)
            for spec in self.by_topic.values()
            if all(kind == "bytes32" for _, kind in spec.indexed)
        }
        self._word_readers = {
            spec.topic: tuple((name, kind, _word_reader(kind)) for name, kind in spec.data)
            for spec in self.by_topic.values()
            if spec.static_data
        }

    @classmethod
    def from_abi(cls, abi: Iterable[Any], address: bytes) -> EventDecoder:
        """From ABI entries: ethpm-types ABI objects or plain JSON dictionaries."""
        specs = []
        for entry in abi:
            item = entry if isinstance(entry, dict) else entry.model_dump(mode="json")
            if item.get("type") != "event" or item.get("anonymous"):
                continue
            inputs = item.get("inputs", [])
            data = tuple((i["name"], i["type"]) for i in inputs if not i.get("indexed"))
            signature = f"{item['name']}({','.join(i['type'] for i in inputs)})"
            specs.append(
                EventSpec(
                    name=item["name"],
                    topic=keccak(text=signature),
                    indexed=tuple((i["name"], i["type"]) for i in inputs if i.get("indexed")),
                    data=data,
                    static_data=all(_is_static_word(kind) for _, kind in data),
                )
            )
        return cls(specs, address)

    @classmethod
    def for_tracker(cls, address: bytes) -> EventDecoder:
        """The InstanceTracker ABI of the compiled project."""
        from ape import project

        return cls.from_abi(project.InstanceTracker.contract_type.abi, address)

    def decode(self, logs: Iterable[RawLog]) -> DecodeOutcome:
        """The events of the decoder's address; raises `UndecodableLogError` on the first log of
        that address that does not decode."""
        outcome = DecodeOutcome()
        append = outcome.events.append
        for log in logs:
            if log.address != self.address:
                outcome.foreign += 1
                continue
            event = self._decode(log)
            if isinstance(event, str):
                raise UndecodableLogError(
                    f"log {log.log_index} of block {log.block_number} (transaction 0x{log.tx_hash.hex()}) "
                    f"of 0x{log.address.hex()} does not decode with InstanceTracker's ABI: {event}; "
                    "indexing stops rather than skip it"
                )
            append(event)
        return outcome

    def decode_one(self, log: RawLog) -> DecodedEvent | None:
        """The event, or None when the log does not decode."""
        event = self._decode(log)
        return None if isinstance(event, str) else event

    def _decode(self, log: RawLog) -> DecodedEvent | str:
        """The event, or why the log does not decode."""
        spec = self.by_topic.get(log.topics[0]) if log.topics else None
        if spec is None:
            return "its first topic is no event of the ABI" if log.topics else "it has no topics"
        if len(log.topics) != len(spec.indexed) + 1:
            return f"{spec.name} has {len(spec.indexed)} indexed inputs, the log {len(log.topics) - 1} topics after the first"
        topics = log.topics
        names = self._bytes32_topics.get(spec.topic)
        if names is not None:
            args = dict(zip(names, topics[1:]))
        else:
            args = {name: read(topics[i]) for i, (name, read) in enumerate(self._topic_readers[spec.topic], 1)}
        if spec.static_data:
            # Only one-word values: slicing the words is the whole ABI decoding, and is much faster.
            data = log.data
            if len(data) != 32 * len(spec.data):
                return f"{spec.name} has {32 * len(spec.data)} data bytes, the log {len(data)}"
            for index, (name, kind, read) in enumerate(self._word_readers[spec.topic]):
                value = read(data[32 * index : 32 * index + 32])
                if value is _INVALID:
                    return f"{spec.name}.{name} is not a clean {kind}"
                args[name] = value
        else:
            try:
                values = abi_decode([_exact(kind) for _, kind in spec.data], log.data, strict=True)
            except Exception as error:  # eth_abi raises several error types for malformed data
                return f"{spec.name} data: {type(error).__name__}"
            args.update({name: _plain(kind, value) for (name, kind), value in zip(spec.data, values)})
        return DecodedEvent(spec.name, log, args)
