"""Fixtures of the indexer suite: an anvil of our own, a fresh contract and Postgres schema per test.

The indexer reads over JSON-RPC, which ape's in-process chain does not offer, so this suite
starts one anvil (on a free port) for the session and drives the contract with plain web3
transactions from anvil's unlocked accounts (the same test mnemonic as ape's test accounts).
Every test gets its own Postgres schema in TEST_DATABASE_URL, dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from web3 import HTTPProvider, Web3

from tracker.chain.rpc import JsonRpc
from tracker.dev.services import free_port
from tracker.documents.ids import sha256_hex
from tracker.indexer.store import drop_schema

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def start_anvil(port: int, chain_id: int = 31337) -> subprocess.Popen:
    process = subprocess.Popen(
        ["anvil", "--port", str(port), "--silent", "--gas-limit", "300000000", "--chain-id", str(chain_id)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    web3 = Web3(HTTPProvider(f"http://127.0.0.1:{port}"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            _ = web3.eth.chain_id
            return process
        except Exception:  # not listening yet
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("anvil did not start")


@dataclass
class Anvil:
    url: str
    web3: Web3

    def rpc(self) -> JsonRpc:
        return JsonRpc.from_uri(self.url)

    def snapshot(self) -> str:
        return self.web3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snapshot_id: str) -> None:
        assert self.web3.provider.make_request("evm_revert", [snapshot_id])["result"] is True

    def mine(self, blocks: int = 1) -> None:
        self.web3.provider.make_request("anvil_mine", [hex(blocks)])


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    port = free_port()
    process = start_anvil(port)
    url = f"http://127.0.0.1:{port}"
    try:
        yield Anvil(url, Web3(HTTPProvider(url)))
    finally:
        process.terminate()
        process.wait(timeout=10)


def b32(label: str) -> bytes:
    return bytes.fromhex(sha256_hex(label))


class TrackerOnAnvil:
    """An InstanceTracker deployed on the suite's anvil, called with plain web3 transactions."""

    def __init__(self, anvil: Anvil, contract_type: Any, keys: Sequence[str]):
        self.anvil = anvil
        self.web3 = anvil.web3
        self.accounts = [Account.from_key(k).address for k in keys]
        self.keys = list(keys)
        abi = contract_type.model_dump(mode="json", by_alias=True)["abi"]
        factory = self.web3.eth.contract(abi=abi, bytecode=contract_type.deployment_bytecode.bytecode)
        receipt = self._wait(factory.constructor().transact({"from": self.accounts[0]}))
        self.address: str = receipt.contractAddress
        self.deploy_block: int = receipt.blockNumber
        self.contract = self.web3.eth.contract(address=self.address, abi=abi)

    def _wait(self, tx_hash: bytes) -> Any:
        receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt.status == 1, receipt
        return receipt

    def send(self, method: str, *args: Any, sender: int = 0) -> Any:
        function = getattr(self.contract.functions, method)(*args)
        return self._wait(function.transact({"from": self.accounts[sender], "gas": 29_000_000}))

    def sign(self, sender: int, fingerprint: bytes) -> bytes:
        signed = Account.sign_message(encode_defunct(primitive=fingerprint), self.keys[sender])
        return bytes(signed.signature)

    @staticmethod
    def head_before(model: bytes, instance: bytes, states: Sequence[bytes], count: int) -> bytes:
        """The chain head after the first `count` states (the contract's hash chain)."""
        head = keccak(model + instance)
        for state in states[:count]:
            head = keccak(head + state)
        return head


@pytest.fixture(scope="session")
def anvil_keys(accounts) -> list[str]:
    """Private keys of the test mnemonic's first accounts: anvil's unlocked accounts too."""
    return [accounts[i].private_key for i in range(4)]


@pytest.fixture
def deployed(anvil, anvil_keys, project) -> TrackerOnAnvil:
    return TrackerOnAnvil(anvil, project.InstanceTracker.contract_type, anvil_keys)


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


@pytest.fixture
def schema(database_url) -> Iterator[str]:
    name = f"indexer_test_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(database_url) as connection:
        drop_schema(connection, name)


@pytest.fixture
def db(database_url, schema) -> Iterator[psycopg.Connection]:
    """A connection whose search_path is the test's schema (read-only use in assertions)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(schema)))
        yield connection


@dataclass
class Story:
    """What `produce_every_event` did, for the assertions."""

    model: bytes
    instance: bytes
    states: list[bytes]
    end_document: bytes
    root: bytes
    fingerprint: bytes
    execution_tx: bytes
    execution_block: int
    owner_txs: list[bytes]
    counts: dict[str, int]

    @property
    def event_count(self) -> int:
        return sum(self.counts.values())


def _produce_every_event(tracker: TrackerOnAnvil) -> Story:
    """One model, two instances (one terminated), five states, and one of every other event."""
    model, instance, second = b32("model"), b32("instance-1"), b32("instance-2")
    states = [b32(f"state-{i}") for i in range(4)]
    owner_txs = []
    execution = tracker.send("registerExecution", model, instance, states[:3])
    owner_txs.append(execution.transactionHash)
    owner_txs.append(tracker.send("registerStates", instance, 3, states[3:]).transactionHash)
    head = tracker.head_before(model, instance, states, 1)
    owner_txs.append(tracker.send("registerTransition", instance, head, states[1:], 1).transactionHash)
    owner_txs.append(tracker.send("setOperator", tracker.accounts[2], True).transactionHash)
    owner_txs.append(tracker.send("registerClientId", "acme-tracker").transactionHash)
    fingerprint = b32("certificate")
    owner_txs.append(tracker.send("registerCertificate", fingerprint, tracker.sign(0, fingerprint)).transactionHash)
    end_document = b32("end")
    owner_txs.append(tracker.send("terminateInstance", instance, end_document).transactionHash)
    owner_txs.append(tracker.send("transferInstance", instance, tracker.accounts[1]).transactionHash)
    tracker.send("registerExecution", model, second, [b32("state-x")], sender=1)
    root = b32("root")
    tracker.send("anchorStates", root, 7, sender=1)
    counts = {
        "ModelRegistered": 1,
        "InstanceRegistered": 2,
        "StateRegistered": 5,
        "TransitionRegistered": 1,
        "InstanceTerminated": 1,
        "InstanceTransferred": 1,
        "OperatorSet": 1,
        "ClientIdRegistered": 1,
        "CertificateRegistered": 1,
        "StatesAnchored": 1,
    }
    return Story(
        model,
        instance,
        states,
        end_document,
        root,
        fingerprint,
        bytes(execution.transactionHash),
        execution.blockNumber,
        [bytes(h) for h in owner_txs],
        counts,
    )


@pytest.fixture
def produce_every_event():
    """`produce_every_event(deployed)` sends one transaction per kind of event and returns a Story."""
    return _produce_every_event


@pytest.fixture
def label_id():
    """`label_id("x")`: a deterministic nonzero bytes32 id, the SHA-256 of the label."""
    return b32


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on."""
    return free_port()


@pytest.fixture
def deploy_tracker(anvil, anvil_keys, project):
    """`deploy_tracker()`: one more InstanceTracker on the suite's anvil."""
    return lambda: TrackerOnAnvil(anvil, project.InstanceTracker.contract_type, anvil_keys)


@pytest.fixture
def second_chain(anvil_keys, project) -> Iterator[TrackerOnAnvil]:
    """An InstanceTracker on a second anvil (chain id 4242), stopped after the test."""
    port = free_port()
    process = start_anvil(port, chain_id=4242)
    url = f"http://127.0.0.1:{port}"
    try:
        yield TrackerOnAnvil(Anvil(url, Web3(HTTPProvider(url))), project.InstanceTracker.contract_type, anvil_keys)
    finally:
        process.terminate()
        process.wait(timeout=10)
