"""Turning plans into transactions: packed within a gas budget, isolated when one execution fails.

* `DirectSender`: the steps of many executions packed into `multicall` transactions, each under
  `max_gas_per_tx` (as the node estimates it, once one transaction was estimated; a little less
  where that fills blocks better) and at most `max_instances_per_tx` executions; one execution's
  steps stay in order and may span several transactions (a huge trace never needs one block to
  itself).
* `PerStateSender`: the published prototype's way, one transaction per state (benchmarks).
* `AnchorSender`: new instances first, then one Merkle root over every new state of the poll and
  the attempt ends that pin counts and heads, in as few transactions as the budget allows.

A transaction that the chain refuses (reverts while its gas is estimated) is split by execution
and each part sent alone, so one execution that cannot be registered (another's mistake, a bug,
a state the contract refuses) is reported by name and skipped while every other is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracker.chain import merkle
from tracker.chain.contract import (
    GAS_PER_CALL,
    GAS_PER_TRANSACTION,
    MAX_HEADROOM_GAS,
    PreparedCall,
    SentTransaction,
    TrackerContract,
)
from tracker.chain.sending import TransactionPipeline
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
    root: str | None = None  # the Merkle root this transaction anchored, if any


Batch = list[tuple[Plan, Step]]


@dataclass
class SendContext:
    """What a sender needs from the engine: the contract, limits, and the engine's callbacks."""

    contract: TrackerContract
    chain_id: int
    sender_address: str
    max_gas_per_tx: int
    max_instances_per_tx: int
    confirm: Callable[[list[Confirmed]], None]
    skip: Callable[[Plan, str], None]
    journal: Callable[[PendingAnchor], None]
    count: Callable[[SentTransaction], None]
    pipeline: TransactionPipeline


def _funds_error(context: SendContext, error: ChainError) -> InsufficientFundsError | None:
    text = " ".join(one_line(e).lower() for e in (error, error.__cause__) if e is not None)
    if "insufficient funds" in text or "exceeds account balance" in text or "cannot afford" in text:
        return InsufficientFundsError(
            f"account 0x{context.sender_address} has insufficient funds for gas on chain id "
            f"{context.chain_id}: fund it and rerun"
        )
    return None


def _send(context: SendContext, calls: Sequence[PreparedCall]) -> SentTransaction:
    """Sends one transaction and waits for it (after what is already in flight)."""
    for token, sent in _submit(context, calls, None):
        _deliver(context, token, sent)
    result: SentTransaction | None = None
    for token, sent in context.pipeline.drain():
        if token is None:
            result = sent
            context.count(sent)
        else:
            _deliver(context, token, sent)
    assert result is not None
    return result


def _submit(context: SendContext, calls: Sequence[PreparedCall], token: Any) -> Iterator[tuple[Any, SentTransaction]]:
    try:
        yield from context.pipeline.submit(calls, token)
    except ChainError as error:
        funds = _funds_error(context, error)
        if funds is not None:
            raise funds from error
        raise


def _deliver(context: SendContext, token: Any, sent: SentTransaction) -> None:
    """Hands a confirmed transaction of a batch to the engine."""
    if token is None:
        return
    context.count(sent)
    context.confirm(_confirmations(token, sent))


def pack(plans: Sequence[Plan], max_gas_per_tx: int | Callable[[], int], max_instances_per_tx: int) -> Iterator[Batch]:
    """Groups the plans' steps into transactions within the budget, one plan's steps in order.

    `max_gas_per_tx` may be a function, asked again for each transaction when it is started
    (after the one before was sent), in the units of the gas table (`PreparedCall.gas`)."""
    budget = max_gas_per_tx if callable(max_gas_per_tx) else lambda: max_gas_per_tx
    current: Batch = []
    gas = GAS_PER_TRANSACTION
    members: set[str] = set()
    limit = budget()
    for plan in plans:
        for step in plan.steps:
            joins = plan.execution_arn not in members
            too_heavy = gas + step.call.gas > limit
            too_many = joins and len(members) >= max_instances_per_tx
            if current and (too_heavy or too_many):
                yield current
                current, gas, members = [], GAS_PER_TRANSACTION, set()
                limit = budget()
            current.append((plan, step))
            gas += step.call.gas
            members.add(plan.execution_arn)
    if current:
        yield current


def transaction_gas(max_gas_per_tx: int, block_gas_limit: int | None) -> int:
    """The gas one transaction may use: `max_gas_per_tx`, or a little less so that as many
    transactions as the block's gas limit allows at that size fit in one block whole. A block takes
    a transaction while the gas it has left covers the transaction's limit, its estimate plus the
    headroom (`gas_limit_for`): of four transactions of 7.5M, the fourth finds 7.5M left in a
    30M block, short of its headroom, and the block holds three with a quarter of it unused."""
    if not block_gas_limit or block_gas_limit <= max_gas_per_tx:
        return max_gas_per_tx
    count = -(-block_gas_limit // max_gas_per_tx)
    return min(max_gas_per_tx, (block_gas_limit - MAX_HEADROOM_GAS - 10_000) // count)


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


def _executions(batch: Batch) -> set[str]:
    return {plan.execution_arn for plan, _step in batch}


def send_pipelined(context: SendContext, batches: Iterable[Batch], failed: set[str]) -> None:
    """Sends batches with several in flight, taking each from `batches` once the one before was
    sent; a batch that touches an execution of one still in flight waits for it (its gas estimate
    depends on it); a batch the chain refuses is split by execution, and an execution refused
    alone is reported and skipped."""
    pipeline = context.pipeline
    upcoming = iter(batches)
    queue: list[Batch] = []
    while True:
        taken = queue.pop(0) if queue else next(upcoming, None)
        if taken is None:
            break
        batch = [(plan, step) for plan, step in taken if plan.execution_arn not in failed]
        if not batch:
            continue
        touched = _executions(batch)
        while any(token is not None and touched & _executions(token) for token in pipeline.pending_tokens):
            for token, sent in pipeline.wait_one():
                _deliver(context, token, sent)
        try:
            for token, sent in _submit(context, [step.call for _, step in batch], batch):
                _deliver(context, token, sent)
        except InsufficientFundsError:
            raise
        except ChainError as error:
            groups = _by_plan(batch)
            if len(groups) == 1:
                plan = groups[0][0][0]
                failed.add(plan.execution_arn)
                context.skip(plan, one_line(error))
            else:
                queue[:0] = groups
    for token, sent in pipeline.drain():
        _deliver(context, token, sent)


def send_isolated(context: SendContext, batch: Batch, failed: set[str]) -> None:
    """Sends one batch and waits for it, isolating refused executions (see `send_pipelined`)."""
    send_pipelined(context, [batch], failed)


class DirectSender:
    """Direct mode: every step as a call, packed into multicall transactions, several in flight."""

    def __init__(self, context: SendContext):
        self.context = context

    def send(self, plans: Sequence[Plan]) -> None:
        pipeline = self.context.pipeline

        def budget() -> int:
            """`max_gas_per_tx` of the node's estimates, sized to fill blocks (`transaction_gas`),
            in the table's units as the estimates of the transactions so far relate to them (the
            table is rounded up for a call alone: inside a multicall a call costs about half)."""
            gas = transaction_gas(self.context.max_gas_per_tx, pipeline.block_gas_limit)
            return int(gas / pipeline.gas_scale) if pipeline.gas_scale else gas

        batches = pack(plans, budget, self.context.max_instances_per_tx)
        send_pipelined(self.context, batches, set())


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
        closes = [(plan, step) for plan in plans for step in plan.steps if not step.registers_instance]
        leaves = [(plan, seq, state_id) for plan in plans for seq, state_id in plan.leaves]
        whole = [step.call.gas for _, step in registrations + closes]
        if sum(whole) + GAS_PER_CALL["anchorStates"] + GAS_PER_TRANSACTION <= context.max_gas_per_tx:
            # Everything in one transaction: registrations, the root, then the attempt ends.
            try:
                self._anchor(leaves, registrations, closes)
                return
            except InsufficientFundsError:
                raise
            except ChainError:
                pass  # one execution's call was refused: send in stages, each execution on its own
        for batch in _pack_steps(registrations, context.max_gas_per_tx):
            send_isolated(context, batch, failed)
        live_leaves = [leaf for leaf in leaves if leaf[0].execution_arn not in failed]
        if live_leaves:
            self._anchor(live_leaves, [], [])
        live_closes = [(plan, step) for plan, step in closes if plan.execution_arn not in failed]
        for batch in _pack_steps(live_closes, context.max_gas_per_tx):
            send_isolated(context, batch, failed)

    def _anchor(self, leaves: list[tuple[Plan, int, str]], before: Batch, after: Batch) -> None:
        """Sends `before`, the root over `leaves` (when there are any) and `after` in one transaction."""
        context = self.context
        root = ""
        proofs: dict[tuple[str, int], list[str]] = {}
        calls = [step.call for _, step in before]
        if leaves:
            tree = merkle.MerkleTree.build(
                [merkle.state_leaf(plan.documents.execution_id, state_id, seq) for plan, seq, state_id in leaves]
            )
            root = tree.root.hex()
            journal: dict[str, list[RegisteredState]] = {}
            for index, (plan, seq, state_id) in enumerate(leaves):
                proof = [p.hex() for p in tree.proof(index)]
                proofs[(plan.execution_arn, seq)] = proof
                journal.setdefault(plan.execution_arn, []).append(
                    RegisteredState(
                        state_id, seq, 0, "", 0, context.sender_address, root, proof, plan.documents.task_id(seq)
                    )
                )
            # Journalled before sending: a run that dies before its checkpoint asks the chain later.
            context.journal(PendingAnchor(root, context.sender_address, len(leaves), journal))
            calls.append(context.contract.anchor_states_call(tree.root, len(leaves)))
        calls += [step.call for _, step in after]
        if not calls:
            return
        sent = _send(context, calls)
        self._confirm_anchor(leaves, [*before, *after], sent, root, proofs)

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
            entry = confirmed.setdefault(plan.execution_arn, Confirmed(plan, [], sent, root=root))
            entry.merkle[seq] = (root, proofs[(plan.execution_arn, seq)])
        for plan, step in closes:
            confirmed.setdefault(plan.execution_arn, Confirmed(plan, [], sent, root=root or None)).steps.append(step)
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
