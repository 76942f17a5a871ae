"""What the chain says about one owner's instance of one execution, read once for all checks.

Everything is read under the owner the protocol names (whom checks 4 and 5 then authenticate),
never under whoever registered the execution first: the instance key is
`instanceKey(owner, execution)`. When the instance came to the owner by transfers, the keys of
its earlier owners are followed back (`InstanceTransferred` events of the execution), because the
states registered before a transfer were emitted under the earlier key, by the earlier owner.

Batched (the default), three JSON-RPC round trips, however many states: the execution's
registrations and transfers (`eth_getLogs`); then, in one batch, the keys' states and attempt
ends, the owners' operator changes and the listed roots' anchors (three `eth_getLogs`) with one
`multicall` `eth_call` for the instance, the model under each owner and the owner's certificate;
then one batch of the transactions' senders and the blocks' times. (Anchored states add one
`multicall` of the anchors' records, whose submitters only their events name.) Through a hosted
provider 60 ms away each round trip costs that much again, so their number, not the states',
sets the time.
`batched=False` makes one request per state instead, the baseline of bench/verify.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode

from tracker.chain import logs
from tracker.chain.contract import (
    AnchorRecord,
    CertificateRecord,
    InstanceRecord,
    Mode,
    Status,
    TrackerContract,
    instance_key,
)
from tracker.documents.ids import checksum_address, id_to_bytes32, normalize_address

Position = tuple[int, int]  # (block number, log index): the order of everything on chain
MAX_TRANSFERS = 64


def _hex(value: Any) -> str:
    return bytes(value).hex()


@dataclass(frozen=True, slots=True)
class Registration:
    """An InstanceRegistered event."""

    key: str
    owner: str
    model: str
    instance_document: str
    mode: Mode
    block: int
    log_index: int
    transaction: str


class _AtLog:
    """A record of one log: `position` is where the log is on the chain (block, log index)."""

    __slots__ = ()
    block: int
    log_index: int

    @property
    def position(self) -> Position:
        return (self.block, self.log_index)


@dataclass(frozen=True, slots=True)
class StateEvent(_AtLog):
    """A StateRegistered event."""

    key: str
    state_id: str
    seq: int
    block: int
    log_index: int
    transaction: str


@dataclass(frozen=True, slots=True)
class EndEvent(_AtLog):
    """An AttemptEnded (final False) or InstanceTerminated (final True) event: the pinned (count, head)."""

    key: str
    end_id: str
    attempt: int
    state_count: int
    head: str
    final: bool
    block: int
    log_index: int
    transaction: str


@dataclass(frozen=True, slots=True)
class Anchoring(_AtLog):
    """A StatesAnchored event: who anchored the root, where."""

    submitter: str
    root: str
    leaf_count: int
    block: int
    log_index: int
    transaction: str


@dataclass(frozen=True, slots=True)
class Transfer(_AtLog):
    """An InstanceTransferred event."""

    from_key: str
    to_key: str
    from_owner: str
    to_owner: str
    block: int
    log_index: int
    transaction: str


@dataclass(frozen=True, slots=True)
class Holder:
    """One owner of the instance, oldest first: `until` is where it was transferred away (None: the current owner)."""

    owner: str
    key: str
    until: Transfer | None = None


class OperatorHistory:
    """Who was an approved operator of whom, at any point of the chain (from OperatorSet events)."""

    def __init__(self, events: Sequence[logs.TrackerEvent] = ()):
        self._changes: dict[tuple[str, str], list[tuple[Position, bool]]] = {}
        for event in events:
            pair = (_hex(event.args["owner"]), _hex(event.args["operator"]))
            self._changes.setdefault(pair, []).append(
                ((event.block_number, event.log_index), bool(event.args["approved"]))
            )
        for changes in self._changes.values():
            changes.sort()

    def approved(self, owner: str, operator: str, position: Position) -> bool:
        """Whether `operator` was approved by `owner` just before `position`."""
        state = False
        for changed, approved in self._changes.get((owner, operator), ()):
            if changed >= position:
                break
            state = approved
        return state

    def ever_approved(self, owner: str, operator: str) -> bool:
        return any(approved for _, approved in self._changes.get((owner, operator), ()))


@dataclass
class ChainView:
    """What the chain says about `owner`'s instance of `execution_id` (see the module docstring)."""

    chain_id: int
    contract_address: str
    canonical: bool
    owner: str
    execution_id: str
    key: str
    instance: InstanceRecord | None
    holders: list[Holder]
    moved_to: Transfer | None
    registration: Registration | None
    other_owners: list[str]
    model_registered_at: dict[str, int | None]
    states_by_seq: dict[int, StateEvent]
    seqs_by_state: dict[str, int]  # a state id -> the first seq it is registered at
    ends: list[EndEvent]
    anchorings: dict[str, list[Anchoring]]
    anchor_records: dict[tuple[str, str], AnchorRecord | None]
    operators: OperatorHistory
    senders: dict[str, str]
    block_times: dict[int, int]
    duplicate_seqs: list[int] = field(default_factory=list)
    certificate: CertificateRecord | None = None  # the owner's registered certificate fingerprint

    @property
    def keys(self) -> list[str]:
        return [holder.key for holder in self.holders]

    def holder_of_key(self, key: str) -> Holder | None:
        return next((holder for holder in self.holders if holder.key == key), None)

    def holder_at(self, position: Position) -> Holder:
        """The owner of the instance at a point of the chain."""
        for holder in self.holders:
            if holder.until is None or position < holder.until.position:
                return holder
        return self.holders[-1]

    def acts_for(self, holder: Holder, sender: str, position: Position) -> bool:
        """Whether `sender` is `holder`'s owner or an operator it had approved at `position`."""
        return sender == holder.owner or self.operators.approved(holder.owner, sender, position)

    @property
    def transfers(self) -> list[Transfer]:
        return [holder.until for holder in self.holders if holder.until is not None]


def _state_event(event: logs.TrackerEvent) -> StateEvent:
    """Interned: the key and a transaction are shared by many states, a state id by its entry."""
    args = event.args
    return StateEvent(
        sys.intern(_hex(args["key"])),
        sys.intern(_hex(args["state"])),
        int(args["seq"]),
        event.block_number,
        event.log_index,
        sys.intern(event.transaction_hash),
    )


def _end_event(event: logs.TrackerEvent) -> EndEvent:
    args = event.args
    return EndEvent(
        _hex(args["key"]),
        _hex(args["endDocument"]),
        int(args["attempt"]),
        int(args["stateCount"]),
        _hex(args["head"]),
        event.name == "InstanceTerminated",
        event.block_number,
        event.log_index,
        event.transaction_hash,
    )


def _lineage(owner: str, execution_id: str, transfers: list[Transfer]) -> tuple[list[Holder], Transfer | None]:
    """The owners the instance passed through to `owner` (oldest first), and where `owner` gave it away."""
    key = instance_key(owner, execution_id)
    by_target = {transfer.to_key: transfer for transfer in transfers}
    moved_to = next((transfer for transfer in transfers if transfer.from_key == key), None)
    holders = [Holder(owner, key)]
    current = key
    while current in by_target and len(holders) <= MAX_TRANSFERS:
        transfer = by_target[current]
        if any(holder.key == transfer.from_key for holder in holders):
            break  # a cycle is impossible on chain (a Moved key is closed for good); never loop
        holders.insert(0, Holder(transfer.from_owner, transfer.from_key, transfer))
        current = transfer.from_key
    return holders, moved_to


def _decode_instance(owner: str, execution_id: str, data: bytes) -> InstanceRecord | None:
    count, attempts, status, mode, head = decode(["uint64", "uint32", "uint8", "uint8", "bytes32"], data)
    if status == Status.NONE:
        return None
    return InstanceRecord(
        owner,
        execution_id,
        int(count),
        int(attempts),
        Status(status),
        Mode(mode),
        bytes(head).hex() if mode == Mode.DIRECT else None,
    )


def _decode_certificate(owner: str, data: bytes) -> CertificateRecord | None:
    fingerprint, signature, registered_at = decode(["bytes32", "bytes", "uint64"], data)
    if bytes(fingerprint) == bytes(32):
        return None
    return CertificateRecord(owner, bytes(fingerprint).hex(), bytes(signature), int(registered_at))


def read_chain(
    tracker: TrackerContract,
    owner: str,
    execution_id: str,
    model_id: str,
    roots: Sequence[str] = (),
    listed_states: Sequence[str] = (),
    batched: bool = True,
    chain_id: int | None = None,
) -> ChainView:
    """Reads every chain fact the checks need about `owner`'s instance of `execution_id`."""
    from ape import chain

    owner = normalize_address(owner)
    address = tracker.address
    since = tracker.deployment_block()
    by_execution = logs.events_of_kinds(
        address, ["InstanceRegistered", "InstanceTransferred"], [None, None, execution_id], since
    )
    transfers = [
        Transfer(
            _hex(e.args["fromKey"]),
            _hex(e.args["toKey"]),
            _hex(e.args["from"]),
            _hex(e.args["to"]),
            e.block_number,
            e.log_index,
            e.transaction_hash,
        )
        for e in by_execution
        if e.name == "InstanceTransferred"
    ]
    holders, moved_to = _lineage(owner, execution_id, transfers)
    keys = [holder.key for holder in holders]
    registrations = [
        Registration(
            _hex(e.args["key"]),
            _hex(e.args["owner"]),
            _hex(e.args["model"]),
            _hex(e.args["instanceDocument"]),
            Mode(int(e.args["mode"])),
            e.block_number,
            e.log_index,
            e.transaction_hash,
        )
        for e in by_execution
        if e.name == "InstanceRegistered"
    ]
    registration = next((r for r in registrations if r.key == keys[0]), None)
    owners = {holder.owner for holder in holders}
    other_owners = sorted({r.owner for r in registrations} - owners)

    states_by_seq: dict[int, StateEvent] = {}
    duplicate_seqs: list[int] = []
    ends: list[EndEvent] = []
    # Nothing is recorded under a key before the instance is registered there.
    registered_from = registration.block if registration is not None else since
    wanted_roots = sorted(set(roots))
    encode = tracker.encode_call
    # The instance, the model under each owner and the owner's certificate, in one multicall.
    calls = [encode("instanceOf", checksum_address(owner), id_to_bytes32(execution_id))]
    calls += [encode("modelOf", checksum_address(h.owner), id_to_bytes32(model_id)) for h in holders]
    calls.append(encode("certificateOf", checksum_address(owner)))
    if batched:
        # One round trip for everything that depends only on the lineage: the keys' states and
        # ends, the owners' operator changes, the listed roots' anchors, and the multicall.
        queries = [
            logs.LogQuery(["StateRegistered", "AttemptEnded", "InstanceTerminated"], [keys], registered_from),
            logs.LogQuery(["OperatorSet"], [sorted(owners)], since),
            logs.LogQuery(["StatesAnchored"] if wanted_roots else [], [None, wanted_roots], since),
        ]
        (state_events, operator_events, anchor_events), (multicall_data,) = logs.read_together(
            address, queries, [encode("multicall", calls)]
        )
        results = [bytes(r) for r in decode(["bytes[]"], multicall_data)[0]]
        for event in state_events:
            if event.name == "StateRegistered":
                state = _state_event(event)
                if state.seq in states_by_seq:
                    duplicate_seqs.append(state.seq)  # impossible on chain; never trusted silently
                states_by_seq.setdefault(state.seq, state)
            else:
                ends.append(_end_event(event))
        operators = OperatorHistory(list(operator_events))
        anchored = list(anchor_events)
    else:
        for state_id in dict.fromkeys(listed_states):  # what a per-state verifier asks: that state's log
            for event in logs.events(address, "StateRegistered", [keys, state_id], registered_from):
                state = _state_event(event)
                states_by_seq.setdefault(state.seq, state)
        ends = [
            _end_event(e) for e in logs.events_of_kinds(address, ["AttemptEnded", "InstanceTerminated"], [keys], since)
        ]
        operators = OperatorHistory(logs.events(address, "OperatorSet", [sorted(owners)], since))
        anchored = logs.events(address, "StatesAnchored", [None, wanted_roots], since) if wanted_roots else []
        results = tracker.read_many(calls)
    ends.sort(key=lambda end: end.position)
    seqs_by_state: dict[str, int] = {}
    for seq in sorted(states_by_seq):
        seqs_by_state.setdefault(states_by_seq[seq].state_id, seq)

    anchorings: dict[str, list[Anchoring]] = {}
    for e in anchored:
        anchoring = Anchoring(
            _hex(e.args["submitter"]),
            _hex(e.args["root"]),
            int(e.args["leafCount"]),
            e.block_number,
            e.log_index,
            e.transaction_hash,
        )
        anchorings.setdefault(anchoring.root, []).append(anchoring)

    instance = _decode_instance(owner, execution_id, results[0])
    model_registered_at = {
        h.owner: int(decode(["uint64"], data)[0]) or None for h, data in zip(holders, results[1 : 1 + len(holders)])
    }
    certificate = _decode_certificate(owner, results[1 + len(holders)])
    # Each anchor under its submitter: known only once the anchors' events are read.
    pairs = sorted({(a.submitter, a.root) for found in anchorings.values() for a in found})
    anchor_results = (
        tracker.read_many(encode("anchorOf", checksum_address(s), id_to_bytes32(r)) for s, r in pairs) if pairs else []
    )
    anchor_records: dict[tuple[str, str], AnchorRecord | None] = {}
    for (submitter, root), data in zip(pairs, anchor_results):
        anchored_at, leaf_count = decode(["uint64", "uint32"], data)
        anchor_records[(submitter, root)] = (
            AnchorRecord(submitter, root, int(anchored_at), int(leaf_count)) if anchored_at else None
        )

    transactions = [s.transaction for s in states_by_seq.values()]
    transactions += [a.transaction for found in anchorings.values() for a in found]
    blocks = [s.block for s in states_by_seq.values()] + [e.block for e in ends]
    blocks += [a.block for found in anchorings.values() for a in found]
    if batched:
        senders, block_times = logs.senders_and_times(transactions, blocks)
    else:  # one request per state, as a verifier without batching makes them
        web3 = chain.provider.web3
        senders, block_times = {}, {}
        for transaction in transactions:
            senders[transaction] = normalize_address(str(web3.eth.get_transaction("0x" + transaction)["from"]))
        for number in blocks:
            block_times[number] = int(web3.eth.get_block(number)["timestamp"])
    return ChainView(
        chain_id=chain_id if chain_id is not None else int(chain.provider.web3.eth.chain_id),
        contract_address=normalize_address(address),
        canonical=tracker.is_canonical,
        owner=owner,
        execution_id=execution_id,
        key=keys[-1],
        instance=instance,
        holders=holders,
        moved_to=moved_to,
        registration=registration,
        other_owners=other_owners,
        model_registered_at=model_registered_at,
        states_by_seq=states_by_seq,
        seqs_by_state=seqs_by_state,
        ends=ends,
        anchorings=anchorings,
        anchor_records=anchor_records,
        operators=operators,
        senders=senders,
        block_times=block_times,
        duplicate_seqs=duplicate_seqs,
        certificate=certificate,
    )
