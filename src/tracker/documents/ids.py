"""Identifiers and addresses in their one written form (64 or 40 lowercase hex characters, no 0x), SHA-256, timestamps."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

from tracker.errors import TrackerError

ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")
ADDRESS_PATTERN = re.compile(r"^[0-9a-f]{40}$")


class DocumentError(TrackerError):
    """A document or identifier is malformed."""


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


def checksum_address(value: str) -> str:
    """An address in the EIP-55 checksummed `0x` form that ape and web3 take."""
    from eth_utils import to_checksum_address

    return to_checksum_address("0x" + normalize_address(value))
