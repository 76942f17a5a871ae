"""Guard: every function, event and custom error in the contract's ABI is exercised by this suite.

A name counts as exercised when another test file in this folder calls it (`.name(`), or names it
in an expected event or revert (`"Name"`). A new ABI item without a test fails here.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
# OpenZeppelin's Address raises it only when the delegatecall target has no code; multicall's
# target is the contract itself, so it cannot happen.
UNREACHABLE = {"AddressEmptyCode"}
# Tests of the Python client, skipped while it still speaks the v1 ABI: they exercise nothing here.
NOT_COUNTED = {Path(__file__).name, "test_client.py", "test_contract_revert_decoding.py"}


def _suite_text() -> str:
    return "\n".join(p.read_text() for p in sorted(HERE.glob("test_*.py")) if p.name not in NOT_COUNTED)


def test_every_abi_item_is_exercised(project):
    contract_type = project.InstanceTracker.contract_type
    text = _suite_text()
    functions = {abi.name for abi in contract_type.abi if abi.type == "function"}
    events = {abi.name for abi in contract_type.events}
    errors = {abi.name for abi in contract_type.errors} - UNREACHABLE
    assert len(functions) == 27 and len(events) == 12 and len(errors) == 21
    missing = sorted(name for name in functions if f".{name}(" not in text and f".{name}." not in text)
    missing += sorted(name for name in events | errors if f'"{name}"' not in text)
    assert missing == []
