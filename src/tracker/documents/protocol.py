"""The instance protocol: the published, ordered list of an instance's registered states (the published prototype's format plus additions)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tracker.documents.canonical import without_absent
from tracker.documents.ids import DocumentError, normalize_address, normalize_id


@dataclass(slots=True)
class ProtocolEntry:
    """One registered state in an instance protocol (the published prototype's fields first)."""

    state_hash: str
    timestamp: int
    block_nr: int
    client_address: str
    transaction_hash: str
    state_data: str
    event_type: str = "Register State"
    seq: int | None = None
    merkle_root: str | None = None
    merkle_proof: list[str] | None = None
    task_data: str | None = None  # where the state's task document is (its id is in the state document)

    def to_json(self) -> dict[str, Any]:
        return without_absent(asdict(self))


@dataclass
class AttemptEntry:
    """How one attempt of the execution ended, as registered: its end document and the chain's
    record of it (`final` once the contract made the instance final with this end)."""

    attempt: int
    end_hash: str
    end_data: str
    state_count: int
    accumulator_head: str
    block_nr: int
    transaction_hash: str
    timestamp: int
    final: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, item: Any) -> AttemptEntry:
        if not isinstance(item, Mapping):
            raise DocumentError("an attempts entry must be a JSON object")
        return cls(
            attempt=_integer(item["attempt"], "attempt"),
            end_hash=normalize_id(_string(item["end_hash"], "end_hash"), "end_hash"),
            end_data=_string(item["end_data"], "end_data"),
            state_count=_integer(item["state_count"], "state_count"),
            accumulator_head=normalize_id(_string(item["accumulator_head"], "accumulator_head"), "accumulator_head"),
            block_nr=_integer(item["block_nr"], "block_nr"),
            transaction_hash=normalize_id(_string(item["transaction_hash"], "transaction_hash"), "transaction_hash"),
            timestamp=_integer(item["timestamp"], "timestamp"),
            final=_boolean(item.get("final", False), "final"),
        )


def _integer(value: Any, what: str) -> int:
    """A JSON integer (not a bool, not a float, not text), within the range a uint64 holds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DocumentError(f"{what} must be an integer, got {str(value)[:40]!r}")
    if not 0 <= value < 2**64:
        raise DocumentError(f"{what} is out of range: {str(value)[:40]}")
    return value


def _string(value: Any, what: str) -> str:
    """A JSON string (ids, addresses and URLs are never numbers or objects)."""
    if not isinstance(value, str):
        raise DocumentError(f"{what} must be a string, got {str(value)[:40]!r}")
    return value


def _boolean(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise DocumentError(f"{what} must be true or false, got {str(value)[:40]!r}")
    return value


def _optional(data: Mapping[str, Any], key: str) -> Any:
    """A field that may be absent or null (the published prototype has none of the additions)."""
    return data.get(key)


def _entry_from_json(item: Any) -> ProtocolEntry:
    if not isinstance(item, Mapping):
        raise DocumentError("an instance_protocol entry must be a JSON object")
    proof = _optional(item, "merkle_proof")
    if proof is not None and not isinstance(proof, list):
        raise DocumentError("merkle_proof must be a list")
    seq, root = _optional(item, "seq"), _optional(item, "merkle_root")
    task_data = _optional(item, "task_data")
    # Interned: many entries share a sender, a transaction, a root and proof hashes, and state ids
    # recur in the documents; a protocol of thousands of entries keeps one copy of each.
    return ProtocolEntry(
        state_hash=sys.intern(normalize_id(_string(item["state_hash"], "state_hash"), "state_hash")),
        timestamp=_integer(item["timestamp"], "timestamp"),
        block_nr=_integer(item["block_nr"], "block_nr"),
        client_address=sys.intern(normalize_address(_string(item["client_address"], "client_address"))),
        transaction_hash=sys.intern(
            normalize_id(_string(item["transaction_hash"], "transaction_hash"), "transaction_hash")
        ),
        state_data=_string(item["state_data"], "state_data"),
        event_type=sys.intern(_string(item.get("event_type", "Register State"), "event_type")),
        seq=_integer(seq, "seq") if seq is not None else None,
        merkle_root=sys.intern(normalize_id(_string(root, "merkle_root"), "merkle_root")) if root else None,
        merkle_proof=[sys.intern(normalize_id(_string(p, "merkle_proof"), "merkle_proof")) for p in proof]
        if proof is not None
        else None,
        task_data=_string(task_data, "task_data") if task_data is not None else None,
    )


@dataclass
class InstanceProtocol:
    """The published, ordered list of an instance's registered states.

    The prototype's fields (`model_hash`, `instance_hash`, `model_data`, `instance_data`,
    `instance_protocol`) are never renamed or dropped; the others are additions readers may ignore.
    """

    model_hash: str
    instance_hash: str
    model_data: str
    instance_data: str
    instance_protocol: list[ProtocolEntry] = field(default_factory=list)
    chain_id: int | None = None
    contract_address: str | None = None
    state_count: int | None = None
    accumulator_head: str | None = None
    end_hash: str | None = None
    end_data: str | None = None
    execution_id: str | None = None
    owner: str | None = None
    mode: str | None = None  # "direct" or "anchored"
    final: bool | None = None
    attempts: list[AttemptEntry] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        skip = {"instance_protocol", "attempts"}
        data = without_absent({key: value for key, value in asdict(self).items() if key not in skip})
        if self.attempts:
            data["attempts"] = [attempt.to_json() for attempt in self.attempts]
        data["instance_protocol"] = [entry.to_json() for entry in self.instance_protocol]
        return data

    def to_bytes(self) -> bytes:
        """Pretty-printed JSON for people; the protocol itself is not hashed, its entries are checked."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: Any) -> InstanceProtocol:
        """Reads a protocol, including the published prototype's format as it is."""
        if not isinstance(data, Mapping):
            raise DocumentError("instance protocol must be a JSON object")
        entries = data.get("instance_protocol")
        if "instance_protocol" in data and not isinstance(entries, list):
            raise DocumentError("instance_protocol must be a list")
        chain_id, state_count, mode, final = (_optional(data, k) for k in ("chain_id", "state_count", "mode", "final"))
        attempts = _optional(data, "attempts") or []
        if not isinstance(attempts, list):
            raise DocumentError("attempts must be a list")
        position = "the protocol"
        try:
            listed = []
            for index, item in enumerate(data["instance_protocol"]):
                position = f"instance_protocol[{index}]"
                listed.append(_entry_from_json(item))
            ended = []
            for index, item in enumerate(attempts):
                position = f"attempts[{index}]"
                ended.append(AttemptEntry.from_json(item))
            position = "the protocol"
            text = {k: _optional(data, k) for k in ("contract_address", "accumulator_head", "end_hash", "end_data")}
            text |= {k: _optional(data, k) for k in ("execution_id", "owner")}
            for key, value in text.items():
                if value is not None:
                    _string(value, key)
            if mode is not None and mode not in ("direct", "anchored"):
                raise DocumentError(f'mode must be "direct" or "anchored", got {str(mode)[:40]!r}')
            return cls(
                model_hash=normalize_id(_string(data["model_hash"], "model_hash"), "model_hash"),
                instance_hash=normalize_id(_string(data["instance_hash"], "instance_hash"), "instance_hash"),
                model_data=_string(data["model_data"], "model_data"),
                instance_data=_string(data["instance_data"], "instance_data"),
                instance_protocol=listed,
                chain_id=_integer(chain_id, "chain_id") if chain_id is not None else None,
                contract_address=normalize_address(text["contract_address"]) if text["contract_address"] else None,
                state_count=_integer(state_count, "state_count") if state_count is not None else None,
                accumulator_head=normalize_id(text["accumulator_head"], "accumulator_head")
                if text["accumulator_head"]
                else None,
                end_hash=normalize_id(text["end_hash"], "end_hash") if text["end_hash"] else None,
                end_data=text["end_data"] or None,
                execution_id=normalize_id(text["execution_id"], "execution_id") if text["execution_id"] else None,
                owner=normalize_address(text["owner"]) if text["owner"] else None,
                mode=mode,
                final=_boolean(final, "final") if final is not None else None,
                attempts=ended,
            )
        except KeyError as missing:
            where = "" if position == "the protocol" else f" in {position}"
            raise DocumentError(f"instance protocol lacks the field {missing.args[0]!r}{where}") from None
        except DocumentError as error:
            where = "" if position == "the protocol" else f"{position}: "
            raise DocumentError(f"instance protocol: {where}{error}") from None
