"""Helpers for the contract suite, as fixtures: strict revert checks, decoded events, ids, signatures.

`ape.reverts` passes when a revert carries no custom error at all and skips inputs it does not
know, so the suite uses `expect_revert`, which insists on the error's name and on every value.
"""

from __future__ import annotations

import ast
import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pytest
from eth_abi import decode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from hexbytes import HexBytes

from tracker.documents import id_to_bytes32, sha256_hex


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


_RAW_CUSTOM_ERROR = re.compile(r"custom error (0x[0-9a-fA-F]{8}):?\s*(?:0x)?([0-9a-fA-F]*)")


def _raw_revert_data(message: str) -> tuple[bytes, bytes] | None:
    """(selector, arguments) from a revert message ape could not decode, or None."""
    match = _RAW_CUSTOM_ERROR.search(message)
    if match is not None:
        return bytes.fromhex(match.group(1)[2:]), bytes.fromhex(match.group(2))
    if message.startswith('b"') and message.endswith('"'):
        data = ast.literal_eval(message)
        return data[:4], data[4:]
    return None


def _decode_raw_custom_error(error: Any) -> tuple[str, dict[str, Any]] | None:
    """Decodes a revert that ape left undecoded, in either of two text forms.

    ape-foundry 0.8.12 decodes custom errors of transactions but not those of `eth_call` against
    the anvil from npm, which reports them as `custom error 0x<selector>: <data>`. ape's local
    test provider receives revert data as the text of a Python bytes literal and only unwraps the
    b'...' form (ApeWorX/eth-tester#253), so data whose literal needs double quotes (it contains
    a 0x27 byte and no 0x22) arrives as b"...". The ABI is the contract's own.
    """
    raw = _raw_revert_data(str(getattr(error, "message", "") or error))
    contract_type = getattr(error, "contract_type", None)
    if raw is None or contract_type is None:
        return None
    selector, data = raw
    for abi in contract_type.errors:
        if keccak(text=abi.selector)[:4] == selector:
            values = decode([i.canonical_type for i in abi.inputs], data)
            return abi.name, {i.name: v for i, v in zip(abi.inputs, values)}
    return None


@contextlib.contextmanager
def _expect_revert(error_name: str, **expected: Any) -> Iterator[RevertCapture]:
    from ape.exceptions import ContractLogicError, CustomError

    capture = RevertCapture()
    try:
        yield capture
    except ContractLogicError as error:
        actual_name, raw_inputs = type(error).__name__, getattr(error, "inputs", None) or {}
        if not isinstance(error, CustomError) and (decoded := _decode_raw_custom_error(error)):
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
    """`with expect_revert("InstanceNotOwned", instance=b32, caller=address): ...`"""
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
