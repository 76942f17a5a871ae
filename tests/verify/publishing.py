"""Executions registered on chain with the chain client and published the way the tracker
publishes them (documents under documents/<id>.json, the protocol as <instance id>.json, in the
v2 shape: execution id, owner, mode, attempts), for the verifier's tests and the attack suite.

Plain functions and classes, no fixtures: tests/verify/conftest.py and tests/attacks/ wrap them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker.chain.contract import SentTransaction, TrackerContract
from tracker.chain.merkle import MerkleTree, state_leaf
from tracker.documents.facts import Document, EndFacts, InstanceFacts, StateFacts, chain_head, model_document
from tracker.documents.protocol import AttemptEntry, InstanceProtocol, ProtocolEntry
from tracker.publish.certificates import sign_fingerprint
from tracker.publish.server import RunningServer

MODEL_DEFINITION = (
    '{"StartAt":"Hello","States":{"Hello":{"Type":"Pass","Next":"World"},"World":{"Type":"Pass","End":true}}}'
)


def address_of(account: Any) -> str:
    return str(account.address).lower()[2:]


def register_certificate(tracker: TrackerContract, account: Any, fingerprint: str) -> None:
    """What `ape run deploy --cert` registers: the fingerprint and the account's EIP-191 signature."""
    signature = sign_fingerprint(account, fingerprint)
    tracker.contract.registerCertificate(bytes.fromhex(fingerprint), signature, sender=account)


def block_time(number: int) -> int:
    from ape import chain

    return int(chain.blocks[number].timestamp)


@dataclass
class Execution:
    """The documents of one execution: model, instance and hash-chained states."""

    facts: InstanceFacts
    model: Document
    instance: Document
    states: list[Document]

    @property
    def execution_id(self) -> str:
        return self.facts.execution_id

    @property
    def model_id(self) -> str:
        return self.model.id

    @property
    def instance_id(self) -> str:
        return self.instance.id

    @property
    def state_ids(self) -> list[str]:
        return [state.id for state in self.states]

    def head(self, count: int | None = None) -> str:
        ids = self.state_ids if count is None else self.state_ids[:count]
        return chain_head(self.execution_id, self.model_id, self.instance_id, ids)

    def extend(self, count: int, attempt: int = 0) -> list[Document]:
        """Adds `count` further states (of `attempt`) to the trace and returns them."""
        added = []
        for _ in range(count):
            seq = len(self.states)
            document = state_document(self.instance_id, seq, self.state_ids[-1] if seq else "", attempt)
            self.states.append(document)
            added.append(document)
        return added


def state_document(instance_id: str, seq: int, previous: str, attempt: int = 0, name: str | None = None) -> Document:
    return StateFacts(
        instance_id=instance_id,
        seq=seq,
        previous_state_id=previous,
        attempt=attempt,
        event_id=seq + 2,
        event_type="PassStateEntered",
        state_name=name or f"S{seq}",
        timestamp_ms=1_700_000_000_000 + seq,
    ).document()


def make_execution(label: str, state_count: int, definition: str = MODEL_DEFINITION) -> Execution:
    model = model_document(definition)
    facts = InstanceFacts(
        execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:hello:{label}",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:hello",
        name=label,
        start_date_ms=1_700_000_000_000,
        model_id=model.id,
        input_sha256="0" * 64,
    )
    execution = Execution(facts, model, facts.document(), [])
    execution.extend(state_count)
    return execution


def end_document(execution: Execution, attempt: int, status: str, state_count: int) -> Document:
    return EndFacts(
        instance_id=execution.instance_id,
        attempt=attempt,
        status=status,
        stop_date_ms=1_700_000_100_000 + attempt,
        state_count=state_count,
        last_state_id=execution.state_ids[state_count - 1] if state_count else "",
    ).document()


@dataclass
class Published:
    """A served publish directory holding one execution registered on chain under `owner`."""

    root: Path
    server: RunningServer
    tracker: TrackerContract  # sends as `owner`
    execution: Execution
    protocol: InstanceProtocol
    owner: Any
    anchored: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url(f"{self.execution.instance_id}.json")

    @property
    def owner_address(self) -> str:
        return address_of(self.owner)

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

    def as_sender(self, account: Any) -> TrackerContract:
        return TrackerContract(self.tracker.contract, account)

    def entry(self, position: int, **changes: Any) -> ProtocolEntry:
        return dataclasses.replace(self.protocol.instance_protocol[position], **changes)

    # ------------------------------------------------------------------ growing the trace

    def entries_for(self, sent: SentTransaction, first_seq: int, count: int, sender: Any) -> list[ProtocolEntry]:
        timestamp = block_time(sent.block_number)
        ids = self.execution.state_ids
        return [
            ProtocolEntry(
                state_hash=ids[seq],
                timestamp=timestamp,
                block_nr=sent.block_number,
                client_address=address_of(sender),
                transaction_hash=sent.transaction_hash,
                state_data=self.document_url(ids[seq]),
                seq=seq,
            )
            for seq in range(first_seq, first_seq + count)
        ]

    def add_states(self, count: int, attempt: int = 0, sender: Any = None, publish: bool = True) -> SentTransaction:
        """Registers `count` further states (direct mode) from `sender` (default: the owner)."""
        first = len(self.execution.states)
        documents = self.execution.extend(count, attempt)
        return self.register_documents(first, documents, sender, publish)

    def add_documents(self, documents: list[Document], sender: Any = None, publish: bool = True) -> SentTransaction:
        """Registers the given documents, whatever they say, as the next states (direct mode)."""
        first = len(self.execution.states)
        self.execution.states.extend(documents)
        return self.register_documents(first, documents, sender, publish)

    def register_documents(
        self, first: int, documents: list[Document], sender: Any = None, publish: bool = True
    ) -> SentTransaction:
        """Registers the documents as states `first`, `first + 1`, ... (direct mode) sent by `sender`."""
        sender = sender or self.owner
        for document in documents:
            self.write_document(document.content)
        client = self.as_sender(sender)
        ids = [d.id for d in documents]
        sent = client.send([client.register_states_call(self.owner_address, self.execution.execution_id, first, ids)])
        if publish:
            self.protocol.instance_protocol += self.entries_for(sent, first, len(documents), sender)
            self.refresh()
        return sent

    def anchor_states(self, count: int, attempt: int = 0, sender: Any = None, publish: bool = True) -> SentTransaction:
        """Anchors `count` further states (anchored mode) under one new root sent by `sender`."""
        first = len(self.execution.states)
        documents = self.execution.extend(count, attempt)
        for document in documents:
            self.write_document(document.content)
        return self.anchor_documents(first, documents, sender, publish)

    def anchor_documents(
        self, first: int, documents: list[Document], sender: Any = None, publish: bool = True
    ) -> SentTransaction:
        """Anchors the documents as states `first`, `first + 1`, ... under one root sent by `sender`."""
        sender = sender or self.owner
        execution_id = self.execution.execution_id
        tree = MerkleTree.build([state_leaf(execution_id, d.id, first + i) for i, d in enumerate(documents)])
        client = self.as_sender(sender)
        sent = client.send([client.anchor_states_call(tree.root, len(documents))])
        if publish:
            entries = self.entries_for(sent, first, len(documents), sender)
            for index, entry in enumerate(entries):
                entry.merkle_root = tree.root.hex()
                entry.merkle_proof = [p.hex() for p in tree.proof(index)]
            self.protocol.instance_protocol += entries
            self.refresh()
        return sent

    def end(
        self,
        status: str,
        final: bool,
        attempt: int | None = None,
        sender: Any = None,
        document: Document | None = None,
        listed: bool = True,
    ) -> Document:
        """Ends the current attempt (endAttempt / terminate, or closeAnchored) with an end document
        (the one this project writes, unless `document` is given); `listed` False leaves it out of
        the protocol."""
        sender = sender or self.owner
        count = len(self.execution.states)
        attempt = len([a for a in self.protocol.attempts if not a.final]) if attempt is None else attempt
        document = document or end_document(self.execution, attempt, status, count)
        self.write_document(document.content)
        client = self.as_sender(sender)
        x = self.execution.execution_id
        if self.anchored:
            call = client.close_anchored_call(
                self.owner_address, x, attempt, count, self.execution.head(count), document.id, final
            )
        elif final:
            call = client.terminate_call(self.owner_address, x, count, [], attempt, document.id)
        else:
            call = client.end_attempt_call(self.owner_address, x, count, [], attempt, document.id)
        sent = client.send([call])
        if not listed:
            return document
        self.protocol.attempts.append(
            AttemptEntry(
                attempt=attempt,
                end_hash=document.id,
                end_data=self.document_url(document.id),
                state_count=count,
                accumulator_head=self.execution.head(count),
                block_nr=sent.block_number,
                transaction_hash=sent.transaction_hash,
                timestamp=block_time(sent.block_number),
                final=final,
            )
        )
        self.protocol.final = final
        self.refresh()
        return document

    def refresh(self) -> None:
        """Rewrites the protocol's summary fields and the published file."""
        protocol = self.protocol
        protocol.state_count = len(protocol.instance_protocol)
        ids = [entry.state_hash for entry in protocol.instance_protocol]
        protocol.accumulator_head = chain_head(
            self.execution.execution_id, protocol.model_hash, protocol.instance_hash, ids
        )
        if protocol.attempts:
            protocol.end_hash = protocol.attempts[-1].end_hash
            protocol.end_data = protocol.attempts[-1].end_data
        self.write_protocol()


def publish(
    root: Path,
    server: RunningServer,
    tracker: TrackerContract,
    owner: Any,
    execution: Execution,
    registered: int | None = None,
    anchored: bool = False,
    sender: Any = None,
) -> Published:
    """Registers the execution under `owner` (sent by `sender`, default the owner) and publishes
    it: direct mode with its first `registered` states (all by default) in the registering
    transaction, or anchored mode with its states under one root."""
    from ape import chain

    sender = sender or owner
    (root / "documents").mkdir(parents=True, exist_ok=True)
    for document in [execution.model, execution.instance, *execution.states]:
        (root / "documents" / f"{document.id}.json").write_bytes(document.content)
    client = TrackerContract(tracker.contract, sender)
    x, model, instance = execution.execution_id, execution.model_id, execution.instance_id
    states = execution.states
    execution.states = []
    if anchored:
        call = client.register_anchored_execution_call(address_of(owner), x, model, instance)
    else:
        on_chain = states if registered is None else states[:registered]
        call = client.register_execution_call(address_of(owner), x, model, instance, [s.id for s in on_chain])
    sent = client.send([call])
    protocol = InstanceProtocol(
        model_hash=model,
        instance_hash=instance,
        model_data=server.url(f"documents/{model}.json"),
        instance_data=server.url(f"documents/{instance}.json"),
        chain_id=int(chain.chain_id),
        contract_address=tracker.address.lower()[2:],
        execution_id=x,
        owner=address_of(owner),
        mode="anchored" if anchored else "direct",
        final=False,
    )
    published = Published(root, server, TrackerContract(tracker.contract, owner), execution, protocol, owner, anchored)
    execution.states = states
    if anchored and states:
        published.anchor_documents(0, states, sender)
    elif not anchored:
        protocol.instance_protocol = published.entries_for(sent, 0, len(states), sender)
    published.refresh()
    return published
