"""Fixtures for the verifier: a real execution registered on chain, its documents and protocol
published in a temporary directory and served over real TLS on loopback, the server's certificate
registered on chain by the instance owner.

Tampering tests change the published files (or the chain) and expect the named check to fail.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tracker.chain.contract import TrackerContract
from tracker.documents.facts import InstanceFacts, StateFacts, model_document
from tracker.documents.protocol import InstanceProtocol, ProtocolEntry
from tracker.publish.certificates import sign_fingerprint
from tracker.publish.server import RunningServer, serve_in_thread

MODEL_DEFINITION = (
    '{"StartAt":"Hello","States":{"Hello":{"Type":"Pass","Next":"World"},"World":{"Type":"Pass","End":true}}}'
)


def _register_certificate(tracker: TrackerContract, account: Any, fingerprint: str) -> None:
    """What `ape run deploy --cert` registers: the fingerprint and the account's EIP-191 signature."""
    signature = sign_fingerprint(account, fingerprint)
    tracker.contract.registerCertificate(bytes.fromhex(fingerprint), signature, sender=account)


@dataclass
class Execution:
    """Documents of one execution: model, instance, states (as published bytes and ids)."""

    model: bytes
    instance: bytes
    states: list[bytes]

    @property
    def model_id(self) -> str:
        return model_document(self.model.decode()).id

    @property
    def instance_id(self) -> str:
        from tracker.documents.ids import sha256_hex

        return sha256_hex(self.instance)

    @property
    def state_ids(self) -> list[str]:
        from tracker.documents.ids import sha256_hex

        return [sha256_hex(s) for s in self.states]


def make_execution(label: str, state_count: int, definition: str = MODEL_DEFINITION) -> Execution:
    model = model_document(definition)
    instance = InstanceFacts(
        execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:hello:{label}",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:hello",
        name=label,
        start_date_ms=1_700_000_000_000,
        model_id=model.id,
        input_sha256="0" * 64,
    ).document()
    states: list[bytes] = []
    previous = ""
    for seq in range(state_count):
        document = StateFacts(
            instance_id=instance.id,
            seq=seq,
            previous_state_id=previous,
            event_id=seq + 2,
            event_type="PassStateEntered",
            state_name=f"S{seq}",
            timestamp_ms=1_700_000_000_000 + seq,
        ).document()
        states.append(document.content)
        previous = document.id
    return Execution(model.content, instance.content, states)


@dataclass
class Published:
    """A served publish directory holding one execution registered on chain."""

    root: Path
    server: RunningServer
    tracker: TrackerContract
    execution: Execution
    protocol: InstanceProtocol
    owner: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url(f"{self.execution.instance_id}.json")

    def document_url(self, identifier: str) -> str:
        return self.server.url(f"documents/{identifier}.json")

    def write_document(self, content: bytes, identifier: str | None = None) -> str:
        from tracker.documents.ids import sha256_hex

        identifier = identifier or sha256_hex(content)
        (self.root / "documents" / f"{identifier}.json").write_bytes(content)
        return identifier

    def write_protocol(self, protocol: InstanceProtocol | dict | bytes | None = None) -> None:
        protocol = self.protocol if protocol is None else protocol
        if isinstance(protocol, InstanceProtocol):
            data = protocol.to_bytes()
        elif isinstance(protocol, dict):
            data = json.dumps(protocol).encode()
        else:
            data = protocol
        (self.root / f"{self.execution.instance_id}.json").write_bytes(data)

    def entry(self, state_id: str, **changes: Any) -> ProtocolEntry:
        base = next(e for e in self.protocol.instance_protocol if e.state_hash == state_id)
        return ProtocolEntry(**{**base.__dict__, **changes})


def publish_execution(
    root: Path,
    server: RunningServer,
    tracker: TrackerContract,
    owner: Any,
    execution: Execution,
    registered: int | None = None,
) -> Published:
    """Registers the execution (its first `registered` states) in one transaction and publishes it."""
    from ape import chain

    (root / "documents").mkdir(parents=True, exist_ok=True)
    ids = execution.state_ids
    on_chain = ids if registered is None else ids[:registered]
    receipt = tracker.send_batch([tracker.register_execution_call(execution.model_id, execution.instance_id, on_chain)])
    timestamp = int(chain.blocks[receipt.block_number].timestamp)
    tx_hash = str(receipt.txn_hash).lower().removeprefix("0x")
    entries = [
        ProtocolEntry(
            state_hash=state_id,
            timestamp=timestamp,
            block_nr=int(receipt.block_number),
            client_address=str(owner.address).lower()[2:],
            transaction_hash=tx_hash,
            state_data=server.url(f"documents/{state_id}.json"),
            seq=seq,
        )
        for seq, state_id in enumerate(ids)
    ]
    protocol = InstanceProtocol(
        model_hash=execution.model_id,
        instance_hash=execution.instance_id,
        model_data=server.url(f"documents/{execution.model_id}.json"),
        instance_data=server.url(f"documents/{execution.instance_id}.json"),
        instance_protocol=entries,
        chain_id=int(chain.chain_id),
        contract_address=tracker.address.lower()[2:],
    )
    return _write_published(root, server, tracker, owner, execution, protocol)


def _write_published(root, server, tracker, owner, execution, protocol) -> Published:
    published = Published(root, server, tracker, execution, protocol, owner)
    for content in [execution.model, execution.instance, *execution.states]:
        published.write_document(content)
    published.write_protocol()
    return published


def publish_anchored(
    root: Path, server: RunningServer, tracker: TrackerContract, owner: Any, execution: Execution, anchor_sender: Any
) -> Published:
    """Registers the instance without states and anchors its states under one Merkle root, sent by
    `anchor_sender`; the protocol entries carry the root and each state's proof (anchor mode)."""
    from ape import chain

    from tracker.chain.merkle import MerkleTree, state_leaf

    (root / "documents").mkdir(parents=True, exist_ok=True)
    tracker.send_batch([tracker.register_execution_call(execution.model_id, execution.instance_id, [])])
    ids = execution.state_ids
    tree = MerkleTree.build([state_leaf(execution.instance_id, state_id, seq) for seq, state_id in enumerate(ids)])
    anchorer = TrackerContract(tracker.contract, anchor_sender)
    receipt = anchorer.send_batch([anchorer.anchor_states_call(tree.root, len(ids))])
    entries = [
        ProtocolEntry(
            state_hash=state_id,
            timestamp=int(chain.blocks[receipt.block_number].timestamp),
            block_nr=int(receipt.block_number),
            client_address=str(owner.address).lower()[2:],
            transaction_hash=str(receipt.txn_hash).lower().removeprefix("0x"),
            state_data=server.url(f"documents/{state_id}.json"),
            seq=seq,
            merkle_root=tree.root.hex(),
            merkle_proof=[p.hex() for p in tree.proof(seq)],
        )
        for seq, state_id in enumerate(ids)
    ]
    protocol = InstanceProtocol(
        execution.model_id,
        execution.instance_id,
        server.url(f"documents/{execution.model_id}.json"),
        server.url(f"documents/{execution.instance_id}.json"),
        entries,
    )
    return _write_published(root, server, tracker, owner, execution, protocol)


@pytest.fixture
def register_certificate() -> Callable[[TrackerContract, Any, str], None]:
    """`register_certificate(tracker, account, fingerprint)` as `ape run deploy --cert` does."""
    return _register_certificate


@pytest.fixture
def serve(tmp_path) -> Iterator[Callable[..., RunningServer]]:
    """`serve(root, tls_name="tls")`: a server on a free loopback port, stopped after the test."""
    running: list[RunningServer] = []

    def start(root: Path, tls_name: str = "tls") -> RunningServer:
        server = serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / tls_name)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def publish(tmp_path, serve, tracker) -> Callable[..., Published]:
    """`publish(account, registered=None, register_certificate=True, states=4, anchored_by=None)`:
    an execution registered on chain by `account` (only its first `registered` states when given;
    with `anchored_by`, its states anchored under a Merkle root sent by that account instead),
    published in a fresh directory, served, and the server's certificate registered by `account`."""
    counter = iter(range(1_000))

    def make(
        account: Any,
        registered: int | None = None,
        register_certificate: bool = True,
        states: int = 4,
        anchored_by: Any = None,
    ) -> Published:
        number = next(counter)
        root = tmp_path / f"publish-{number}"
        root.mkdir()
        server = serve(root)
        owned = TrackerContract(tracker.contract, account)
        if register_certificate:
            _register_certificate(owned, account, server.fingerprint)
        execution = make_execution(f"hello-{number}", states)
        if anchored_by is not None:
            return publish_anchored(root, server, owned, account, execution, anchored_by)
        return publish_execution(root, server, owned, account, execution, registered)

    return make


@pytest.fixture
def published(publish, owner) -> Published:
    """A 4-state execution registered on chain, published, served, and its certificate registered."""
    return publish(owner)


@pytest.fixture
def stalled_origin() -> Iterator[str]:
    """An origin whose server accepts connections and then never answers (a server that is too slow)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
                held.append(connection)
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for connection in held:
        connection.close()
    listener.close()
