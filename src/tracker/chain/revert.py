"""Contract reverts as one line: custom errors decoded with the reverting contract's ABI, also where ape left them undecoded."""

from __future__ import annotations

import ast
import re
from typing import Any

from eth_abi import decode
from eth_utils import keccak

from tracker.errors import one_line

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


def decode_raw_custom_error(error: Any) -> tuple[str, dict[str, Any]] | None:
    """The (name, values) of a custom error that ape left undecoded, in either of two text forms.

    ape-foundry 0.8.12 decodes custom errors of transactions but not those of `eth_call` against
    the anvil from npm, which reports them as `custom error 0x<selector>: <data>`. ape's local
    test provider receives revert data as the text of a Python bytes literal and only unwraps the
    b'...' form (ApeWorX/eth-tester#253), so data whose literal needs double quotes (it contains
    a 0x27 byte and no 0x22) arrives as b"...". Decoded with the reverting contract's ABI, or
    InstanceTracker's when the error does not name one.
    """
    raw = _raw_revert_data(str(getattr(error, "message", "") or error))
    if raw is None:
        return None
    contract_type = getattr(error, "contract_type", None)
    if contract_type is None:
        from ape import project

        contract_type = project.InstanceTracker.contract_type
    selector, data = raw
    for abi in contract_type.errors:
        if keccak(text=abi.selector)[:4] == selector:
            values = decode([i.canonical_type for i in abi.inputs], data)
            return abi.name, {i.name: v for i, v in zip(abi.inputs, values)}
    return None


def describe_revert(error: Exception) -> str:
    """A contract revert as one line: the custom error's name and its values."""
    name, inputs = type(error).__name__, getattr(error, "inputs", None)
    if not inputs and (decoded := decode_raw_custom_error(error)) is not None:
        name, inputs = decoded
    if inputs:
        values = ", ".join(f"{key}={_show(value)}" for key, value in inputs.items())
        return f"{name}({values})"
    return one_line(error)


def _show(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)
