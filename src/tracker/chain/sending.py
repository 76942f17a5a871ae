"""Transactions at real block times: several in flight, stuck ones replaced, dropped ones re-sent.

With 12-second blocks a sender that waits for each receipt before its next transaction is held to
one transaction per block, whatever the block's gas allows. `TransactionPipeline` keeps up to
`max_in_flight` transactions of one account pending at once, with consecutive nonces it assigns
itself, so throughput is bounded by block gas, not by confirmation latency. While it waits it:

* replaces a transaction pending longer than `stuck_after_s` (underpriced after a base-fee rise)
  with the same nonce and the same calls at higher fees (at least the 10% bump nodes require),
  so the calls are carried out once whichever of the versions is mined;
* re-sends a transaction the node no longer knows (dropped from its pool) while its nonce is
  still unused;
* counts a transaction as done only `confirmations` blocks deep, and takes one back as pending
  when a reorganisation removes the block it was in (its calls are then sent again by the chain's
  own rule: same nonce, so at most once).

Every transaction's gas is estimated before it is sent, so a call the contract refuses is named
(`ChainError`) before anything is spent; callers make sure a transaction does not depend on one
still pending (the estimate is made against the latest block).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak

from tracker.chain.contract import GAS_HEADROOM, PreparedCall, SentTransaction, TrackerContract, _receipt_quantity
from tracker.chain.revert import describe_revert
from tracker.errors import ChainError, one_line

FEE_BUMP = 1.25  # nodes replace a pending transaction only for at least +10% on both fees
UNDERPRICED_PHRASES = ("less than block base fee", "underpriced", "fee too low", "feecap below")


@dataclass
class InFlight:
    """One transaction of the pipeline: every version sent under its nonce, and who is waiting."""

    nonce: int
    calls: list[PreparedCall]
    token: Any
    gas_limit: int
    max_fee: int
    priority_fee: int
    hashes: list[str] = field(default_factory=list)
    raw: bytes = b""
    sent_at: float = 0.0
    mined: SentTransaction | None = None
    mined_block_hash: str | None = None
    replacements: int = 0
    resends: int = 0
    last_error: str | None = None  # why the node last refused to take it

    @property
    def labels(self) -> str:
        return ", ".join(sorted({call.label for call in self.calls}))


@dataclass
class PipelineStats:
    sent: int = 0
    replaced: int = 0
    resent: int = 0
    reorged: int = 0


class TransactionPipeline:
    """Up to `max_in_flight` transactions of one account pending at once (see the module docstring)."""

    def __init__(
        self,
        contract: TrackerContract,
        max_in_flight: int = 4,
        stuck_after_s: float = 60.0,
        confirmations: int = 0,
        poll_s: float = 0.5,
        timeout_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if contract.sender is None:
            raise ChainError("no account to send transactions from (use --account)")
        self.contract = contract
        self.sender = contract.sender
        self.max_in_flight = max(1, max_in_flight)
        self.stuck_after_s = stuck_after_s
        self.confirmations = max(0, confirmations)
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.sleep = sleep
        self.stats = PipelineStats()
        self._pending: list[InFlight] = []
        self._next_nonce: int | None = None
        self._last_head: int | None = None

    # ------------------------------------------------------------------ sending

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def pending_tokens(self) -> list[Any]:
        """The tokens of the transactions not yet confirmed, oldest first."""
        return [entry.token for entry in self._pending]

    def wait_one(self) -> Iterator[tuple[Any, SentTransaction]]:
        """One round of waiting: yields what got confirmed by it."""
        yield from self._poll_once(wait=True)

    def submit(self, calls: Sequence[PreparedCall], token: Any = None) -> Iterator[tuple[Any, SentTransaction]]:
        """Sends `calls` as one transaction, first waiting until fewer than `max_in_flight` are
        pending; yields what got confirmed meanwhile, as (token, transaction), in nonce order.

        Raises `ChainError` naming the calls when the chain refuses them (nothing is sent then).
        """
        while len(self._pending) >= self.max_in_flight:
            yield from self._poll_once(wait=True)
        entry = self._prepare(list(calls), token)
        try:
            self._send(entry)
        except ChainError as error:
            if not _worth_sending_again(error):
                self._next_nonce = entry.nonce  # nothing went out under it: the next one takes it
                raise
            # Refused for now (a rate limit, a base fee that rose meanwhile, a lost answer): the
            # nonce is taken, so it stays pending and goes out again from the polls, as a dropped
            # transaction does. Giving the nonce up would leave a gap that holds every later one.
            entry.sent_at = self.clock()
            entry.last_error = one_line(error)
        self._pending.append(entry)
        self.stats.sent += 1

    def drain(self) -> Iterator[tuple[Any, SentTransaction]]:
        """Waits for every pending transaction; yields each as it is confirmed, in nonce order."""
        while self._pending:
            yield from self._poll_once(wait=True)

    def _provider(self) -> Any:
        from ape import chain

        return chain.provider

    def _fees(self) -> tuple[int, int]:
        """(max fee, priority fee) per gas: twice the next base fee plus the tip, as wallets do.

        The next base fee is the pending block's (the one the transaction competes for): after a
        rise the latest block's is already too low for the node to accept a replacement."""
        provider = self._provider()
        try:
            block = provider.web3.eth.get_block("pending")
        except Exception:  # nodes without a pending block: the latest one
            block = provider.web3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas") or 0)
        try:
            tip = int(provider.web3.eth.max_priority_fee)
        except Exception:  # nodes without eth_maxPriorityFeePerGas: one gwei, the usual floor
            tip = 10**9
        return 2 * base + tip, tip

    def _prepare(self, calls: list[PreparedCall], token: Any) -> InFlight:
        provider = self._provider()
        labels = ", ".join(sorted({c.label for c in calls}))
        if self._next_nonce is None:
            self._next_nonce = int(provider.web3.eth.get_transaction_count(str(self.sender.address), "pending"))
        try:
            # One estimate (the node's), on the calldata as it is: no decoding and encoding again,
            # and none of ape's own estimates and fee reads for a transaction it would not send.
            estimate = int(provider.estimate_gas_cost(self._transaction(_calldata(calls), self._next_nonce)))
        except Exception as error:  # ape and the node raise many error types; each becomes one line
            raise ChainError(f"{labels} failed: {describe_revert(error)}") from error
        max_fee, tip = self._fees()
        entry = InFlight(
            nonce=self._next_nonce,
            calls=calls,
            token=token,
            gas_limit=min(int(estimate * GAS_HEADROOM) + 10_000, provider.max_gas),
            max_fee=max_fee,
            priority_fee=tip,
        )
        self._next_nonce += 1
        return entry

    def _transaction(self, data: bytes, nonce: int, **fields: int) -> Any:
        """An EIP-1559 transaction to the contract with this calldata, built by ape's ecosystem."""
        provider = self._provider()
        return provider.network.ecosystem.create_transaction(
            chain_id=provider.chain_id,
            to=self.contract.address,
            sender=str(self.sender.address),
            data=data,
            nonce=nonce,
            type=2,
            **fields,
        )

    def _sign(self, entry: InFlight) -> bytes:
        transaction = self._transaction(
            _calldata(entry.calls),
            entry.nonce,
            gas_limit=entry.gas_limit,
            max_fee=entry.max_fee,
            max_priority_fee=entry.priority_fee,
        )
        signed = self.sender.sign_transaction(transaction)
        if signed is None:
            raise ChainError(f"{entry.labels}: the account did not sign the transaction")
        return bytes(signed.serialize_transaction())

    def _send(self, entry: InFlight) -> None:
        entry.raw = self._sign(entry)
        try:
            sent = self._provider().web3.eth.send_raw_transaction(entry.raw)
        except Exception as error:  # the node refuses: funds, nonce, fee too low
            raise ChainError(f"{entry.labels} failed: {describe_revert(error)}") from error
        entry.hashes.append(bytes(sent).hex())
        entry.sent_at = self.clock()

    # ------------------------------------------------------------------ waiting

    def _poll_once(self, wait: bool) -> Iterator[tuple[Any, SentTransaction]]:
        provider = self._provider()
        head = int(provider.web3.eth.block_number)
        # Receipts only come with a new block: between blocks, only a transaction due for
        # replacement is looked at. (At 12 s blocks and a poll every half second, looking at
        # every transaction on every poll would spend a free-tier budget on polling alone.)
        new_block = head != self._last_head
        self._last_head = head
        for entry in self._pending:
            if new_block or (entry.mined is None and self.clock() - entry.sent_at > self.stuck_after_s):
                self._check(entry)
        confirmed = []
        while self._pending and self._pending[0].mined is not None:
            entry = self._pending[0]
            assert entry.mined is not None
            if head - entry.mined.block_number + 1 < max(1, self.confirmations):
                break
            if not self._still_in_chain(entry):
                continue
            self._pending.pop(0)
            confirmed.append((entry.token, entry.mined))
        yield from confirmed
        if wait and not confirmed and self._pending:
            oldest = min(entry.sent_at for entry in self._pending)
            if self.clock() - oldest > self.timeout_s:
                oldest_entry = self._pending[0]
                refused = f" (last refused: {oldest_entry.last_error})" if oldest_entry.last_error else ""
                raise ChainError(
                    f"{oldest_entry.labels}: transaction nonce {oldest_entry.nonce} not mined within "
                    f"{self.timeout_s:.0f}s{refused}"
                )
            self.sleep(self.poll_s)

    def _check(self, entry: InFlight) -> None:
        """Looks for a receipt of any version; replaces a stuck one; re-sends a dropped one."""
        provider = self._provider()
        if entry.mined is not None:
            return
        for tx_hash in reversed(entry.hashes):
            receipt = provider.make_request("eth_getTransactionReceipt", ["0x" + tx_hash])
            if receipt:
                if _receipt_quantity(receipt, "status") != 1:
                    raise ChainError(f"{entry.labels} reverted in transaction 0x{tx_hash}")
                entry.mined = SentTransaction(
                    tx_hash, _receipt_quantity(receipt, "blockNumber"), _receipt_quantity(receipt, "gasUsed")
                )
                entry.mined_block_hash = _block_hash(receipt)
                return
        if self.clock() - entry.sent_at > self.stuck_after_s:
            self._replace(entry)
            return
        known = any(_known(provider, tx_hash) for tx_hash in entry.hashes)
        if (
            not known
            and int(provider.web3.eth.get_transaction_count(str(self.sender.address), "latest")) <= entry.nonce
        ):
            # dropped from the pool, and its nonce still unused: the same transaction once more
            self._resend(entry)

    def _replace(self, entry: InFlight) -> None:
        max_fee, tip = self._fees()
        entry.max_fee = max(int(entry.max_fee * FEE_BUMP) + 1, max_fee)
        entry.priority_fee = max(int(entry.priority_fee * FEE_BUMP) + 1, tip)
        entry.replacements += 1
        self.stats.replaced += 1
        try:
            self._send(entry)
        except ChainError as error:
            text = one_line(error).lower()
            if "nonce too low" in text:
                entry.sent_at = self.clock()  # a version got mined meanwhile: its receipt comes next
                return
            if any(phrase in text for phrase in UNDERPRICED_PHRASES) or _rate_limited(text) or _lost_answer(text):
                # the base fee rose again before the replacement arrived (or the provider turned
                # it away): try again, at the fees of then, after half the bound (a version
                # already sent stays valid meanwhile)
                entry.sent_at = self.clock() - self.stuck_after_s / 2
                entry.last_error = text
                return
            raise

    def _resend(self, entry: InFlight) -> None:
        entry.resends += 1
        self.stats.resent += 1
        try:
            sent = self._provider().web3.eth.send_raw_transaction(entry.raw)
            if bytes(sent).hex() not in entry.hashes:
                entry.hashes.append(bytes(sent).hex())
        except Exception as error:  # "already known" or "nonce too low": it is (being) mined
            text = one_line(error).lower()
            if any(phrase in text for phrase in UNDERPRICED_PHRASES):
                # dropped because the base fee rose past it: the same nonce at today's fees
                self._replace(entry)
                return
            if _rate_limited(text) or _lost_answer(text):
                entry.last_error = one_line(error)  # tried again at the next block
                return
            if "already known" not in text and "nonce too low" not in text:
                raise ChainError(
                    f"{entry.labels}: re-sending a dropped transaction failed: {one_line(error)}"
                ) from error
        entry.sent_at = self.clock()

    def _still_in_chain(self, entry: InFlight) -> bool:
        """Whether the block a transaction was mined in is still on the chain; if not (a reorg),
        the transaction is pending again."""
        if entry.mined is None or entry.mined_block_hash is None:
            return True
        block = self._provider().web3.eth.get_block(entry.mined.block_number)
        if bytes(block["hash"]).hex() == entry.mined_block_hash:
            return True
        entry.mined = None
        entry.mined_block_hash = None
        entry.sent_at = self.clock()
        self.stats.reorged += 1
        return False


MULTICALL_SELECTOR = keccak(text="multicall(bytes[])")[:4]


def _calldata(calls: Sequence[PreparedCall]) -> bytes:
    """The calldata of one transaction: the call itself, or several through the contract's multicall."""
    if len(calls) == 1:
        return calls[0].data
    return MULTICALL_SELECTOR + abi_encode(["bytes[]"], [[call.data for call in calls]])


def _rate_limited(text: str) -> bool:
    return "429" in text or "too many requests" in text or "rate limit" in text or "exceeded its compute units" in text


def _lost_answer(text: str) -> bool:
    """A request whose answer never came: it may have been taken (a re-send then says so)."""
    return any(phrase in text for phrase in ("timed out", "timeout", "connection aborted", "connection reset"))


def _worth_sending_again(error: ChainError) -> bool:
    """Whether a refused send may be taken later as it is (versus a refusal of the transaction itself)."""
    text = one_line(error).lower()
    return any(phrase in text for phrase in UNDERPRICED_PHRASES) or _rate_limited(text) or _lost_answer(text)


def _block_hash(receipt: Any) -> str | None:
    value = receipt.get("blockHash") if isinstance(receipt, dict) else None
    if value is None:
        value = receipt.get("block_hash") if isinstance(receipt, dict) else None
    if value is None:
        return None
    return bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value).removeprefix("0x")


def _known(provider: Any, tx_hash: str) -> bool:
    """Whether the node knows a transaction (pending or mined)."""
    try:
        return provider.web3.eth.get_transaction("0x" + tx_hash) is not None
    except Exception:  # web3 raises TransactionNotFound for an unknown hash
        return False
