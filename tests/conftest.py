"""Shared fixtures: accounts and a freshly deployed InstanceTracker on the chain ape connects to
(ape's local chain by default, anvil with `--network ethereum:local:foundry`)."""

from __future__ import annotations

import pytest

from tracker.chain.contract import TrackerContract


@pytest.fixture(scope="session")
def owner(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def other(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def operator(accounts):
    return accounts[2]


@pytest.fixture
def contract(owner, project):
    return owner.deploy(project.InstanceTracker)


@pytest.fixture
def tracker(contract, owner) -> TrackerContract:
    return TrackerContract(contract, owner)
