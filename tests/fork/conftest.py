"""The fork suite: checks, through `ethereum:sepolia-fork:foundry`, what `ape run deploy` set up
on Sepolia (or on bin/fork-tests' local stand-in for it), and exercises the contract on the fork.

What to expect comes from the environment (bin/fork-tests sets it):
TRACKER_FORK_ACCOUNT (address), TRACKER_FORK_ENS_NAME, TRACKER_FORK_URI, TRACKER_FORK_CERT (PEM)
and TRACKER_FORK_CLIENT_ID.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

FORK_NETWORK = "sepolia-fork"
VARIABLES = (
    "TRACKER_FORK_ACCOUNT",
    "TRACKER_FORK_ENS_NAME",
    "TRACKER_FORK_URI",
    "TRACKER_FORK_CERT",
    "TRACKER_FORK_CLIENT_ID",
)


@dataclass(frozen=True)
class ForkIdentity:
    account: str
    ens_name: str
    uri: str
    certificate: Path
    client_id: str


@pytest.fixture(scope="session")
def fork_identity(chain) -> ForkIdentity:
    if chain.provider.network.name != FORK_NETWORK:
        pytest.skip("fork suite: run bin/fork-tests (ape test tests/fork --network ethereum:sepolia-fork:foundry)")
    missing = [name for name in VARIABLES if not os.environ.get(name)]
    if missing:
        pytest.fail(f"set {', '.join(missing)} to what `ape run deploy` set up (bin/fork-tests does)")
    return ForkIdentity(
        account=os.environ["TRACKER_FORK_ACCOUNT"],
        ens_name=os.environ["TRACKER_FORK_ENS_NAME"],
        uri=os.environ["TRACKER_FORK_URI"],
        certificate=Path(os.environ["TRACKER_FORK_CERT"]),
        client_id=os.environ["TRACKER_FORK_CLIENT_ID"],
    )


@pytest.fixture(autouse=True)
def on_the_fork(fork_identity) -> None:
    """Every test here runs on the fork, with the identity it checks."""
