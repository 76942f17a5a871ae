"""The instance protocol: the published, ordered list of an instance's registered states (the published prototype's format plus additions)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tracker.documents.canonical import without_absent
from tracker.documents.ids import DocumentError, normalize_address, normalize_id


@dataclass
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
            end_hash=normalize_id(item["end_hash"], "end_hash"),
            end_data=str(item["end_data"]),
            state_count=_integer(item["state_count"], "state_count"),
            accumulator_head=normalize_id(item["accumulator_head"], "accumulator_head"),
            block_nr=_integer(item["block_nr"], "block_nr"),
            transaction_hash=normalize_id(item["transaction_hash"], "transaction_hash"),
            timestamp=_integer(item["timestamp"], "timestamp"),
            final=bool(item.get("final", False)),
        )


def _integer(value: Any, what: str) -> int:
    """A JSON integer (not a bool, not a float, not text), within the range a uint64 holds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DocumentError(f"{what} must be an integer, got {str(value)[:40]!r}")
    if not 0 <= value < 2**64:
        raise DocumentError(f"{what} is out of range: {str(value)[:40]}")
    return value


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
        try:
            entries = [
                ProtocolEntry(
                    state_hash=normalize_id(item["state_hash"], "state_hash"),
                    timestamp=int(item["timestamp"]),
                    block_nr=int(item["block_nr"]),
                    client_address=normalize_address(item["client_address"]),
                    transaction_hash=normalize_id(item["transaction_hash"], "transaction_hash"),
                    state_data=str(item["state_data"]),
                    event_type=str(item.get("event_type", "Register State")),
                    seq=int(item["seq"]) if item.get("seq") is not None else None,
                    merkle_root=normalize_id(item["merkle_root"], "merkle_root") if item.get("merkle_root") else None,
                    merkle_proof=[normalize_id(p, "merkle_proof") for p in item["merkle_proof"]]
                    if item.get("merkle_proof") is not None
                    else None,
                )
                for item in data["instance_protocol"]
            ]
            return cls(
                model_hash=normalize_id(data["model_hash"], "model_hash"),
                instance_hash=normalize_id(data["instance_hash"], "instance_hash"),
                model_data=str(data["model_data"]),
                instance_data=str(data["instance_data"]),
                instance_protocol=entries,
                chain_id=int(data["chain_id"]) if data.get("chain_id") is not None else None,
                contract_address=normalize_address(data["contract_address"]) if data.get("contract_address") else None,
                state_count=int(data["state_count"]) if data.get("state_count") is not None else None,
                accumulator_head=normalize_id(data["accumulator_head"], "accumulator_head")
                if data.get("accumulator_head")
                else None,
                end_hash=normalize_id(data["end_hash"], "end_hash") if data.get("end_hash") else None,
                end_data=str(data["end_data"]) if data.get("end_data") else None,
                execution_id=normalize_id(data["execution_id"], "execution_id") if data.get("execution_id") else None,
                owner=normalize_address(data["owner"]) if data.get("owner") else None,
                mode=str(data["mode"]) if data.get("mode") is not None else None,
                final=bool(data["final"]) if data.get("final") is not None else None,
                attempts=[AttemptEntry.from_json(item) for item in data.get("attempts") or []],
            )
        except KeyError as missing:
            raise DocumentError(f"instance protocol lacks the field {missing.args[0]!r}") from None
        except (TypeError, ValueError) as error:
            raise DocumentError(f"instance protocol has a malformed field: {error}") from None
