"""Turning plans into transactions: packed within a gas budget, isolated when one execution fails.

* `DirectSender`: the steps of many executions packed into `multicall` transactions, each under
  `max_gas_per_tx` and at most `max_instances_per_tx` executions; one execution's steps stay in
  order and may span several transactions (a huge trace never needs one block to itself).
* `PerStateSender`: the published prototype's way, one transaction per state (benchmarks).
* `AnchorSender`: new instances first, then one Merkle root over every new state of the poll and
  the attempt ends that pin counts and heads, in as few transactions as the budget allows.

A transaction that the chain refuses (reverts while its gas is estimated) is split by execution
and each part sent alone, so one execution that cannot be registered (another's mistake, a bug,
a state the contract refuses) is reported by name and skipped while every other is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tracker.chain import merkle
from tracker.chain.contract import GAS_PER_TRANSACTION, PreparedCall, SentTransaction, TrackerContract
from tracker.errors import ChainError, TrackerError, one_line
from tracker.tracking.checkpoints import PendingAnchor, RegisteredState
from tracker.tracking.planner import Plan, Step


class InsufficientFundsError(TrackerError):
    """The tracker account cannot pay for its transactions."""


@dataclass
class Confirmed:
    """What one mined transaction registered for one execution."""

    plan: Plan
    steps: list[Step]
    sent: SentTransaction
    merkle: dict[int, tuple[str, list[str]]] = field(default_factory=dict)  # seq -> (root, proof)


Batch = list[tuple[Plan, Step]]


@dataclass
class SendContext:
    """What a sender needs from the engine: the contract, limits, and the engine's callbacks."""

    contract: TrackerContract
    sender_address: str
    max_gas_per_tx: int
    max_instances_per_tx: int
    confirm: Callable[[list[Confirmed]], None]
    skip: Callable[[Plan, str], None]
    journal: Callable[[PendingAnchor], None]
    count: Callable[[SentTransaction], None]


def _send(context: SendContext, calls: Sequence[PreparedCall]) -> SentTransaction:
    try:
        sent = context.contract.send(calls)
    except ChainError as error:
        text = " ".join(one_line(e).lower() for e in (error, error.__cause__) if e is not None)
        if "insufficient funds" in text or "exceeds account balance" in text or "cannot afford" in text:
            raise InsufficientFundsError(
                f"account 0x{context.sender_address} has insufficient funds for gas: fund it and rerun"
            ) from error
        raise
    context.count(sent)
    return sent


def pack(plans: Sequence[Plan], max_gas_per_tx: int, max_instances_per_tx: int) -> list[Batch]:
    """Groups the plans' steps into transactions within the budget, one plan's steps in order."""
    batches: list[Batch] = []
    current: Batch = []
    gas = GAS_PER_TRANSACTION
    members: set[str] = set()
    for plan in plans:
        for step in plan.steps:
            joins = plan.execution_arn not in members
            too_heavy = gas + step.call.gas > max_gas_per_tx
            too_many = joins and len(members) >= max_instances_per_tx
            if current and (too_heavy or too_many):
                batches.append(current)
                current, gas, members = [], GAS_PER_TRANSACTION, set()
            current.append((plan, step))
            gas += step.call.gas
            members.add(plan.execution_arn)
    if current:
        batches.append(current)
    return batches


def _by_plan(batch: Batch) -> list[Batch]:
    groups: dict[str, Batch] = {}
    for plan, step in batch:
        groups.setdefault(plan.execution_arn, []).append((plan, step))
    return list(groups.values())


def _confirmations(batch: Batch, sent: SentTransaction) -> list[Confirmed]:
    confirmed: dict[str, Confirmed] = {}
    for plan, step in batch:
        confirmed.setdefault(plan.execution_arn, Confirmed(plan, [], sent)).steps.append(step)
    return list(confirmed.values())


def send_isolated(context: SendContext, batch: Batch, failed: set[str]) -> None:
    """Sends a batch; when the chain refuses it, each execution's part alone, skipping the ones refused."""
    batch = [(plan, step) for plan, step in batch if plan.execution_arn not in failed]
    if not batch:
        return
    try:
        sent = _send(context, [step.call for _, step in batch])
    except InsufficientFundsError:
        raise
    except ChainError as error:
        groups = _by_plan(batch)
        if len(groups) == 1:
            plan = groups[0][0][0]
            failed.add(plan.execution_arn)
            context.skip(plan, one_line(error))
            return
        for group in groups:
            send_isolated(context, group, failed)
        return
    context.confirm(_confirmations(batch, sent))


class DirectSender:
    """Direct mode: every step as a call, packed into multicall transactions."""

    def __init__(self, context: SendContext):
        self.context = context

    def send(self, plans: Sequence[Plan]) -> None:
        failed: set[str] = set()
        for batch in pack(plans, self.context.max_gas_per_tx, self.context.max_instances_per_tx):
            send_isolated(self.context, batch, failed)


class PerStateSender:
    """The prototype's way: each step in its own transaction, each awaited before the next.

    Plans for this sender are made with one state per call."""

    def __init__(self, context: SendContext):
        self.context = context

    def send(self, plans: Sequence[Plan]) -> None:
        failed: set[str] = set()
        for plan in plans:
            for step in plan.steps:
                send_isolated(self.context, [(plan, step)], failed)


class AnchorSender:
    """Anchor mode: registrations, then one root over the poll's new states with the attempt ends."""

    def __init__(self, context: SendContext):
        self.context = context

    def send(self, plans: Sequence[Plan]) -> None:
        context = self.context
        failed: set[str] = set()
        registrations = [(plan, step) for plan in plans for step in plan.steps if step.registers_instance]
        for batch in _pack_steps(registrations, context.max_gas_per_tx):
            send_isolated(context, batch, failed)
        live = [plan for plan in plans if plan.execution_arn not in failed]
        leaves = [(plan, seq, state_id) for plan in live for seq, state_id in plan.leaves]
        closes = [(plan, step) for plan in live for step in plan.steps if not step.registers_instance]
        if leaves:
            self._anchor(leaves, closes[: self._closes_that_fit(len(closes))], failed)
            closes = closes[self._closes_that_fit(len(closes)) :]
        for batch in _pack_steps(closes, context.max_gas_per_tx):
            send_isolated(context, batch, failed)

    def _closes_that_fit(self, count: int) -> int:
        room = self.context.max_gas_per_tx - GAS_PER_TRANSACTION - 60_000
        return min(count, max(0, room // 45_000))

    def _anchor(self, leaves: list[tuple[Plan, int, str]], closes: Batch, failed: set[str]) -> None:
        context = self.context
        tree = merkle.MerkleTree.build(
            [merkle.state_leaf(plan.documents.execution_id, state_id, seq) for plan, seq, state_id in leaves]
        )
        root = tree.root.hex()
        proofs: dict[tuple[str, int], list[str]] = {}
        journal: dict[str, list[RegisteredState]] = {}
        for index, (plan, seq, state_id) in enumerate(leaves):
            proof = [p.hex() for p in tree.proof(index)]
            proofs[(plan.execution_arn, seq)] = proof
            journal.setdefault(plan.execution_arn, []).append(
                RegisteredState(state_id, seq, 0, "", 0, context.sender_address, root, proof)
            )
        # Journalled before sending: a run that dies before its checkpoint asks the chain later.
        context.journal(PendingAnchor(root, context.sender_address, len(leaves), journal))
        anchor_call = context.contract.anchor_states_call(tree.root, len(leaves))
        try:
            sent = _send(context, [anchor_call, *(step.call for _, step in closes)])
        except InsufficientFundsError:
            raise
        except ChainError:
            if not closes:
                raise
            # An attempt end was refused: anchor alone, then each execution's ends on their own.
            sent = _send(context, [anchor_call])
            self._confirm_anchor(leaves, [], sent, root, proofs)
            for batch in _pack_steps(closes, context.max_gas_per_tx):
                send_isolated(context, batch, failed)
            return
        self._confirm_anchor(leaves, closes, sent, root, proofs)

    def _confirm_anchor(
        self,
        leaves: list[tuple[Plan, int, str]],
        closes: Batch,
        sent: SentTransaction,
        root: str,
        proofs: dict[tuple[str, int], list[str]],
    ) -> None:
        confirmed: dict[str, Confirmed] = {}
        for plan, seq, _state_id in leaves:
            entry = confirmed.setdefault(plan.execution_arn, Confirmed(plan, [], sent))
            entry.merkle[seq] = (root, proofs[(plan.execution_arn, seq)])
        for plan, step in closes:
            confirmed.setdefault(plan.execution_arn, Confirmed(plan, [], sent)).steps.append(step)
        self.context.confirm(list(confirmed.values()))


def _pack_steps(steps: Batch, max_gas_per_tx: int) -> list[Batch]:
    batches: list[Batch] = []
    current: Batch = []
    gas = GAS_PER_TRANSACTION
    for plan, step in steps:
        if current and gas + step.call.gas > max_gas_per_tx:
            batches.append(current)
            current, gas = [], GAS_PER_TRANSACTION
        current.append((plan, step))
        gas += step.call.gas
    if current:
        batches.append(current)
    return batches
