"""Helpers for the contract suite, as fixtures: strict revert checks, decoded events, ids, signatures.

`ape.reverts` passes when a revert carries no custom error at all and skips inputs it does not
know, so the suite uses `expect_revert`, which insists on the error's name and on every value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hexbytes import HexBytes

from tracker.chain.revert import decode_raw_custom_error
from tracker.documents.ids import id_to_bytes32, sha256_hex


def _plain(value: Any) -> Any:
    """Decoded values in one comparable form: bytes for bytes32/bytes, str for addresses."""
    if isinstance(value, (bytes, bytearray, HexBytes)):
        return bytes(value)
    if hasattr(value, "address") and not isinstance(value, str):
        return str(value.address)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class RevertCapture:
    """Filled in when the expected revert happened; `error` is ape's decoded custom error."""

    error: Any = None
    inputs: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _expect_revert(error_name: str, **expected: Any) -> Iterator[RevertCapture]:
    from ape.exceptions import ContractLogicError, CustomError

    capture = RevertCapture()
    try:
        yield capture
    except ContractLogicError as error:
        actual_name, raw_inputs = type(error).__name__, getattr(error, "inputs", None) or {}
        if not isinstance(error, CustomError) and (decoded := decode_raw_custom_error(error)):
            actual_name, raw_inputs = decoded
        assert actual_name == error_name, f"expected {error_name}, reverted with {actual_name}: {error}"
        inputs = {key: _plain(value) for key, value in raw_inputs.items()}
        wanted = {key: _plain(value) for key, value in expected.items()}
        assert inputs == wanted, f"{error_name} inputs {inputs} != expected {wanted}"
        capture.error, capture.inputs = error, inputs
    else:
        raise AssertionError(f"expected revert {error_name}, but the call succeeded")


@pytest.fixture
def expect_revert() -> Callable[..., contextlib.AbstractContextManager[RevertCapture]]:
    """`with expect_revert("NotOwnerOrOperator", owner=address, caller=address): ...`"""
    return _expect_revert


def decoded_events(receipt: Any, name: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every log of the receipt as (event name, arguments), in emission order."""
    events = []
    for log in receipt.events:
        if name is None or log.event_name == name:
            events.append((log.event_name, {k: _plain(v) for k, v in log.event_arguments.items()}))
    return events


@pytest.fixture
def events() -> Callable[..., list[tuple[str, dict[str, Any]]]]:
    """`events(receipt)` or `events(receipt, "StateRegistered")`: the decoded logs, in order."""
    return decoded_events


def b32(label: str) -> bytes:
    """A deterministic nonzero bytes32 id: the SHA-256 of a label, as documents' ids are."""
    return id_to_bytes32(sha256_hex(label))


@pytest.fixture
def ids() -> Callable[[str], bytes]:
    return b32


@pytest.fixture
def hexid() -> Callable[[str], str]:
    """The same ids as `ids`, as the 64-hex strings the Python side uses."""
    return sha256_hex


def sign_fingerprint(account: Any, fingerprint: bytes) -> bytes:
    """The 65-byte EIP-191 signature of the 32 fingerprint bytes by a test account's key."""
    signed = Account.sign_message(encode_defunct(primitive=fingerprint), account.private_key)
    return bytes(signed.signature)


@pytest.fixture
def sign() -> Callable[[Any, bytes], bytes]:
    return sign_fingerprint


@pytest.fixture
def block_time(chain) -> Callable[[Any], int]:
    """The timestamp of the block a receipt was mined in."""
    return lambda receipt: int(chain.blocks[receipt.block_number].timestamp)
