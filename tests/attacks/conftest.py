"""Fixtures for the attack suite: the contract suite's strict helpers (`expect_revert`, `events`,
`sign`, `block_time`), taken from tests/contract/conftest.py so that there is one copy of them,
the off-chain model in tests/contract/contract_model.py, and the cast of each attack.

`contract`, `owner`, `other` and `operator` come from tests/conftest.py as for every suite.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

CONTRACT_SUITE = Path(__file__).resolve().parent.parent / "contract"
if str(CONTRACT_SUITE) not in sys.path:
    sys.path.insert(0, str(CONTRACT_SUITE))  # contract_model, importable by the attack tests


def _load_contract_suite_helpers():
    spec = importlib.util.spec_from_file_location("contract_suite_conftest", CONTRACT_SUITE / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_helpers = _load_contract_suite_helpers()
expect_revert = _helpers.expect_revert
events = _helpers.events
sign = _helpers.sign
block_time = _helpers.block_time

ANVIL_ONLY = (
    "needs anvil's mempool (evm_setAutomine, txpool_content): "
    "run `ape test tests/attacks --network ethereum:local:foundry` (bin/test does)"
)


@pytest.fixture
def victim(owner):
    return owner


@pytest.fixture
def attacker(other):
    """The stranger: a front-running bot, a squatter, a forger."""
    return other


@pytest.fixture
def target(accounts):
    """A third account, the intended receiver of a transfer."""
    return accounts[3]


@pytest.fixture
def anvil(chain):
    """ape's provider when it is anvil; the test is skipped on ape's in-process chain."""
    provider = chain.provider
    if provider.name != "foundry":
        pytest.skip(ANVIL_ONLY)
    return provider
