"""Idempotent setup steps: each compares what is on chain with what is wanted and sends a
transaction only when they differ (or, in a dry run, estimates its gas and sends nothing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tracker.chain.contract import PreparedCall, SentTransaction
from tracker.errors import ChainError, one_line

GAS_HEADROOM = 1.2

Status = Literal["done", "skipped", "would change"]
DONE: Status = "done"
SKIPPED: Status = "skipped"
WOULD_CHANGE: Status = "would change"


@dataclass(frozen=True)
class StepResult:
    """What one step did: `done` (sent), `skipped` (already matches) or `would change` (dry run)."""

    step: str
    status: Status
    detail: str
    gas: int | None = None
    transaction_hash: str | None = None


def skipped(step: str, detail: str) -> StepResult:
    return StepResult(step, SKIPPED, detail)


def send_or_estimate(
    step: str,
    detail: str,
    method: Any,
    arguments: tuple,
    sender: Any,
    dry_run: bool,
    describe_error: Callable[[Exception], str] = one_line,
    **transaction: Any,
) -> StepResult:
    """Sends `method(*arguments)` from `sender` (with any `transaction` fields such as `gas`),
    or only estimates its gas when `dry_run`.

    Raises `ChainError` naming the step when the estimate or the transaction fails.
    """
    try:
        gas = int(method.estimate_gas_cost(*arguments, sender=sender))
        if dry_run:
            return StepResult(step, WOULD_CHANGE, detail, gas=gas)
        if not transaction:
            data = bytes(method.encode_input(*arguments))
            sent = send_at_block_times(step, str(method.contract.address), data, sender)
            return StepResult(step, DONE, detail, gas=sent.gas_used, transaction_hash="0x" + sent.transaction_hash)
        if "gas" not in transaction:
            # headroom: an estimate of what a transaction finally uses leaves out storage refunds
            transaction["gas"] = int(gas * GAS_HEADROOM) + 10_000
        receipt = method(*arguments, sender=sender, **transaction)  # fields the caller chose: as given
    except ChainError:
        raise
    except Exception as error:  # ape raises provider-, account- and contract-specific errors
        raise ChainError(f"{step} failed: {describe_error(error)}") from error
    return StepResult(step, DONE, detail, gas=int(receipt.gas_used), transaction_hash=str(receipt.txn_hash))


def send_at_block_times(label: str, to: str, data: bytes, sender: Any) -> SentTransaction:
    """Sends one transaction of a setup through the tracker's send path and waits for it: a block
    at a time (ape's own wait asks for the receipt ten times a second, through a hosted provider
    most of a setup's requests), replaced when a base-fee rise prices it out, sent again when the
    node drops it. Raises `ChainError` naming `label` when the node refuses it."""
    from tracker.chain.sending import TransactionPipeline

    pipeline = TransactionPipeline(None, max_in_flight=1, poll_s=1.0, watch_s=4.0, sender=sender)
    list(pipeline.submit([PreparedCall(label, data)], label, to=to))
    return next(sent for _token, sent in pipeline.drain())
