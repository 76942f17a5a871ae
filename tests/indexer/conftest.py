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
from eth_abi import encode
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

    def _wait(self, tx_hash: bytes, status: int = 1) -> Any:
        receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt.status == status, receipt
        return receipt

    def send(self, method: str, *args: Any, sender: int = 0) -> Any:
        function = getattr(self.contract.functions, method)(*args)
        return self._wait(function.transact({"from": self.accounts[sender], "gas": 29_000_000}))

    def send_reverting(self, method: str, *args: Any, sender: int = 0) -> Any:
        """Sends a call that reverts on chain (gas given, so no estimate refuses it first)."""
        function = getattr(self.contract.functions, method)(*args)
        tx_hash = function.transact({"from": self.accounts[sender], "gas": 500_000})
        return self._wait(tx_hash, status=0)

    def address_of(self, index: int) -> bytes:
        return bytes.fromhex(self.accounts[index][2:].lower())

    def sign(self, sender: int, fingerprint: bytes) -> bytes:
        signed = Account.sign_message(encode_defunct(primitive=fingerprint), self.keys[sender])
        return bytes(signed.signature)

    def instance_key(self, owner: int, execution: bytes) -> bytes:
        return keccak(encode(["address", "bytes32"], [self.accounts[owner], execution]))

    @staticmethod
    def head(execution: bytes, model: bytes, document: bytes, states: Sequence[bytes]) -> bytes:
        """The chain head after `states`: keccak256(abi.encode(execution, model, document)), then
        keccak256(head ‖ state) per state."""
        head = keccak(execution + model + document)
        for state in states:
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
    execution: bytes
    key: bytes
    moved_key: bytes
    anchored_execution: bytes
    states: list[bytes]
    end_documents: list[bytes]
    root: bytes
    fingerprint: bytes
    execution_tx: bytes
    execution_block: int
    counts: dict[str, int]

    @property
    def event_count(self) -> int:
        return sum(self.counts.values())


def _produce_every_event(tracker: TrackerOnAnvil) -> Story:
    """Every event: a direct instance of account 0 with five states, a transition, an attempt end,
    a termination and a transfer to account 1; an anchored instance account 2 runs for account 0 as
    its operator (an anchor and a final close); account 1's own instance; a client id, a certificate."""
    owner, newcomer, operator = tracker.accounts[:3]
    model, execution, document = b32("model"), b32("execution-1"), b32("document-1")
    states = [b32(f"state-{i}") for i in range(5)]
    execution_receipt = tracker.send("registerExecution", owner, execution, model, document, states[:3])
    tracker.send("registerStates", owner, execution, 3, states[3:4])
    head_before = tracker.head(execution, model, document, states[:1])
    tracker.send("registerTransition", owner, execution, head_before, states[1:4], 1)
    tracker.send("setOperator", operator, True)
    tracker.send("registerClientId", "acme-tracker")
    fingerprint = b32("certificate")
    tracker.send("registerCertificate", fingerprint, tracker.sign(0, fingerprint))
    ends = [b32("end-0"), b32("end-1")]
    tracker.send("endAttempt", owner, execution, 4, [], 0, ends[0])
    tracker.send("terminate", owner, execution, 4, states[4:], 1, ends[1])
    tracker.send("proposeTransfer", execution, newcomer)
    tracker.send("acceptTransfer", owner, execution, sender=1)
    anchored = b32("execution-anchored")
    tracker.send("registerAnchoredExecution", owner, anchored, model, b32("document-anchored"), sender=2)
    root = b32("root")
    tracker.send("anchorStates", root, 7, sender=2)
    tracker.send("closeAnchored", owner, anchored, 0, 7, b32("anchored-head"), b32("anchored-end"), True, sender=2)
    tracker.send(
        "registerExecution", newcomer, b32("execution-2"), b32("model-2"), b32("document-2"), [b32("x")], sender=1
    )
    counts = {
        "ModelRegistered": 2,
        "InstanceRegistered": 3,
        "StateRegistered": 6,
        "AttemptEnded": 1,
        "InstanceTerminated": 2,
        "TransitionRegistered": 1,
        "TransferProposed": 1,
        "InstanceTransferred": 1,
        "OperatorSet": 1,
        "ClientIdRegistered": 1,
        "CertificateRegistered": 1,
        "StatesAnchored": 1,
    }
    return Story(
        model=model,
        execution=execution,
        key=tracker.instance_key(0, execution),
        moved_key=tracker.instance_key(1, execution),
        anchored_execution=anchored,
        states=states,
        end_documents=ends,
        root=root,
        fingerprint=fingerprint,
        execution_tx=bytes(execution_receipt.transactionHash),
        execution_block=execution_receipt.blockNumber,
        counts=counts,
    )


@pytest.fixture
def produce_every_event():
    """`produce_every_event(deployed)` sends one transaction per kind of event and returns a Story."""
    return _produce_every_event


@pytest.fixture
def label_id():
    """`label_id("x")`: a deterministic nonzero bytes32 id, the SHA-256 of the label."""
    return b32


def register(tracker: TrackerOnAnvil, label: str, states: int, sender: int = 0, model: str = "model") -> bytes:
    """Registers a direct instance of account `sender` with `states` states; returns its execution id."""
    execution = b32(f"execution-{label}")
    tracker.send(
        "registerExecution",
        tracker.accounts[sender],
        execution,
        b32(model),
        b32(f"document-{label}"),
        [b32(f"state-{label}-{i}") for i in range(states)],
        sender=sender,
    )
    return execution


@pytest.fixture
def register_execution():
    """`register_execution(tracker, label, states, sender=0, model="model")`: a direct instance."""
    return register


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
