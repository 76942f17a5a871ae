"""Shared fixtures: accounts and a freshly deployed InstanceTracker on the chain ape connects to
(ape's local chain by default, anvil with `--network ethereum:local:foundry`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tracker.chain.contract import TrackerContract
from tracker.dev import sfn_emulation

# Step Functions behaviour moto lacks (versions, per-execution definitions, redrive fields),
# for every in-process moto of the suite; moto servers run `python -m tracker.dev.sfn_emulation`.
sfn_emulation.install()

TESTS = Path(__file__).resolve().parent
# Every test of these folders carries the marker; bin/test selects suites by marker.
FOLDER_MARKERS = {"contract": "contract", "deploy": "anvil", "fork": "fork", "indexer": "postgres"}


def pytest_configure(config):
    """The Sepolia fork needs its upstream node before ape connects (else ape stops with an
    INTERNALERROR on the unexpanded ${SEPOLIA_NODE_URI} of ape-config.yaml)."""
    network = str(config.getoption("network", default="") or "")
    if "sepolia-fork" in network and not os.environ.get("SEPOLIA_NODE_URI"):
        pytest.exit(
            "the fork suite forks Sepolia from SEPOLIA_NODE_URI, which is not set: set it to a Sepolia node's "
            "URL, or run bin/fork-tests (it starts a local stand-in and sets it)",
            returncode=4,
        )


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        if folder in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[folder])


@pytest.fixture
def aws(monkeypatch):
    """moto in-process, executing state machines for real, with placeholder credentials."""
    import boto3
    from moto import mock_aws

    for key, value in {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.session.Session(region_name="us-east-1")


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
