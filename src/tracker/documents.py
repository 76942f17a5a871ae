"""Documents and their identifiers.

Every identifier is the SHA-256 of the exact bytes that are published, so a verifier downloads the
bytes and hashes them; nothing is ever re-serialised. Documents other than the model document
are canonical JSON, produced only by `canonical_json`:

* UTF-8, object keys sorted by code point, no insignificant whitespace (`,` and `:` separators);
* strings escaped as JSON requires and nothing more (non-ASCII characters are kept as they are);
* no floats: numbers are integers, timestamps are integer milliseconds since the Unix epoch;
* absent optional facts are left out, never written as null.

Identifiers are 64 lowercase hex characters without `0x`; addresses 40 lowercase hex characters
without `0x`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from tracker.errors import TrackerError

ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")
ADDRESS_PATTERN = re.compile(r"^[0-9a-f]{40}$")
STATE_DOCUMENT_VERSION = 1


class DocumentError(TrackerError):
    """A document or identifier is malformed."""


def canonical_json(value: Any) -> bytes:
    """The one canonical JSON encoding of the project (see the module docstring)."""
    _reject_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise DocumentError(f"canonical JSON has no floats (got {value!r}); use integers")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DocumentError(f"canonical JSON keys must be strings (got {key!r})")
            _reject_floats(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _reject_floats(item)


def sha256_hex(data: bytes | str) -> str:
    """SHA-256 of bytes (strings are taken as UTF-8), as 64 lowercase hex characters."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def normalize_id(value: str | bytes, what: str = "identifier") -> str:
    """Accepts `0x`-prefixed or bare hex (any case) or 32 raw bytes; returns 64 lowercase hex."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 32:
            raise DocumentError(f"{what} must be 32 bytes, got {len(value)}")
        return bytes(value).hex()
    text = str(value).strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if not ID_PATTERN.match(text):
        raise DocumentError(f"{what} must be 64 hex characters, got {value!r}")
    return text


def normalize_address(value: str) -> str:
    """Returns an address as 40 lowercase hex characters without `0x`."""
    text = str(value).strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if not ADDRESS_PATTERN.match(text):
        raise DocumentError(f"address must be 40 hex characters, got {value!r}")
    return text


def id_to_bytes32(identifier: str) -> bytes:
    """The `bytes32` form of an identifier, as passed to the contract."""
    return bytes.fromhex(normalize_id(identifier))


def to_millis(moment: datetime | int) -> int:
    """A timestamp as integer milliseconds since the epoch (naive datetimes are taken as UTC)."""
    if isinstance(moment, int):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(round(moment.timestamp() * 1000))


@dataclass(frozen=True)
class Document:
    """Published bytes and their identifier."""

    content: bytes

    @property
    def id(self) -> str:
        return sha256_hex(self.content)


def model_document(definition_text: str) -> Document:
    """The model document: the definition text exactly as DescribeStateMachine returns it."""
    return Document(definition_text.encode("utf-8"))


def _drop_absent(facts: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in facts.items() if value is not None}


@dataclass(frozen=True)
class InstanceFacts:
    """Facts about an execution that never change after it started (never status or stop date)."""

    execution_arn: str
    state_machine_arn: str
    name: str
    start_date_ms: int
    model_id: str
    input_sha256: str
    state_machine_version_arn: str | None = None
    account_id: str | None = None
    role_arn: str | None = None

    def document(self) -> Document:
        return Document(canonical_json(_drop_absent({"kind": "instance", **asdict(self)})))


@dataclass(frozen=True)
class StateFacts:
    """One state an instance entered. `previous_state_id` chains each state to the whole trace."""

    instance_id: str
    seq: int
    previous_state_id: str
    event_id: int
    event_type: str
    state_name: str
    timestamp_ms: int
    input_sha256: str | None = None
    output_sha256: str | None = None
    input: Any = None
    output: Any = None
    version: int = STATE_DOCUMENT_VERSION

    def document(self) -> Document:
        return Document(canonical_json(_drop_absent({"kind": "state", **asdict(self)})))


@dataclass(frozen=True)
class EndFacts:
    """How an execution ended; registered when it ends, after which the instance is terminated."""

    instance_id: str
    status: str
    stop_date_ms: int
    state_count: int
    last_state_id: str
    output_sha256: str | None = None
    error: str | None = None
    cause: str | None = None

    def document(self) -> Document:
        return Document(canonical_json(_drop_absent({"kind": "end", **asdict(self)})))


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
        return _drop_absent(asdict(self))


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

    def to_json(self) -> dict[str, Any]:
        data = _drop_absent({key: value for key, value in asdict(self).items() if key != "instance_protocol"})
        data["instance_protocol"] = [entry.to_json() for entry in self.instance_protocol]
        return data

    def to_bytes(self) -> bytes:
        """Pretty-printed JSON for people; the protocol itself is not hashed, its entries are checked."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: Any) -> "InstanceProtocol":
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
            )
        except KeyError as missing:
            raise DocumentError(f"instance protocol lacks the field {missing.args[0]!r}") from None
        except (TypeError, ValueError) as error:
            raise DocumentError(f"instance protocol has a malformed field: {error}") from None


def chain_head(model_id: str, instance_id: str, state_ids: list[str]) -> str:
    """The contract's accumulator over an ordered trace: keccak256 chained from (model, instance)."""
    from eth_utils import keccak

    head = keccak(id_to_bytes32(model_id) + id_to_bytes32(instance_id))
    for state_id in state_ids:
        head = keccak(head + id_to_bytes32(state_id))
    return head.hex()
