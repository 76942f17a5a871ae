"""Decoding InstanceTracker logs with the contract's ABI.

A log is decoded when its first topic is the hash of one of the ABI's event signatures, it has
one topic per indexed input and its data decodes as the other inputs. Everything else (a log of
another contract, an unknown event, malformed topics or data) is counted as skipped, never
loaded and never fatal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak

from tracker.chain.reader import RawLog

EVENT_NAMES = (
    "ModelRegistered",
    "InstanceRegistered",
    "StateRegistered",
    "TransitionRegistered",
    "InstanceTerminated",
    "InstanceTransferred",
    "OperatorSet",
    "ClientIdRegistered",
    "CertificateRegistered",
    "StatesAnchored",
)


@dataclass(frozen=True)
class EventSpec:
    """One event of the ABI: its topic and how its inputs split over topics and data."""

    name: str
    topic: bytes
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]
    static_data: bool  # every non-indexed input is one ABI word: no string or bytes


@dataclass(frozen=True)
class DecodedEvent:
    name: str
    log: RawLog
    args: dict[str, Any]


@dataclass
class DecodeOutcome:
    events: list[DecodedEvent] = field(default_factory=list)
    foreign: int = 0
    undecodable: int = 0

    @property
    def skipped(self) -> int:
        return self.foreign + self.undecodable


def _plain(abi_type: str, value: Any) -> Any:
    """Decoded values as the loader stores them: addresses as 20 bytes, the rest unchanged."""
    if abi_type == "address":
        return bytes.fromhex(value[2:])
    return value


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


def _topic_value(abi_type: str, topic: bytes) -> Any:
    if abi_type == "address":
        return topic[12:]
    if abi_type == "bool":
        return topic[-1] == 1
    if abi_type.startswith("uint"):
        return int.from_bytes(topic, "big")
    return topic  # bytes32, and the hash of dynamic values


class EventDecoder:
    """Decodes the logs of one contract address with an event ABI."""

    def __init__(self, specs: Iterable[EventSpec], address: bytes):
        self.by_topic = {spec.topic: spec for spec in specs}
        self.address = address

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
        outcome = DecodeOutcome()
        for log in logs:
            if log.address != self.address:
                outcome.foreign += 1
                continue
            event = self.decode_one(log)
            if event is None:
                outcome.undecodable += 1
            else:
                outcome.events.append(event)
        return outcome

    def decode_one(self, log: RawLog) -> DecodedEvent | None:
        spec = self.by_topic.get(log.topics[0]) if log.topics else None
        if spec is None or len(log.topics) != len(spec.indexed) + 1:
            return None
        args = {name: _topic_value(kind, topic) for (name, kind), topic in zip(spec.indexed, log.topics[1:])}
        if spec.static_data:
            # Only one-word values: slicing the words is the whole ABI decoding, and is much faster.
            data = log.data
            if len(data) != 32 * len(spec.data):
                return None
            for index, (name, kind) in enumerate(spec.data):
                value = _word_value(kind, data[32 * index : 32 * index + 32])
                if value is _INVALID:
                    return None
                args[name] = value
        else:
            try:
                values = abi_decode([kind for _, kind in spec.data], log.data, strict=True)
            except Exception:  # eth_abi raises several error types for malformed data
                return None
            args.update({name: _plain(kind, value) for (name, kind), value in zip(spec.data, values)})
        return DecodedEvent(spec.name, log, args)
