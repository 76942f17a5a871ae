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

Waiting costs few round trips, so that a hosted provider's latency and budget go to sending: one
`eth_blockNumber` per poll; on a new block one batch of `eth_getTransactionReceipt` for every
version of every transaction not yet mined and one batch of the blocks that confirm some. Between
blocks, every `watch_s`, the pending block (the one the node is building) shows what the next
block will hold and its base fee: a transaction of ours priced out by a base-fee rise is replaced
at once rather than after `stuck_after_s`, and one missing although the block has room for it is
looked up (one batch of `eth_getTransactionByHash`) and re-sent when the node lost it, before the
block is mined without it and without every later nonce. Fees for new transactions come from the
same reads (the tip once per block), so a transaction costs its gas estimate and its send.

Every transaction's gas is estimated before it is sent, so a call the contract refuses is named
(`ChainError`) before anything is spent; callers make sure a transaction does not depend on one
still pending (the estimate is made against the latest block). Its gas limit has bounded headroom
(`gas_limit_for`), so that a block holds as many of our transactions as their gas allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak

from tracker.chain.contract import (
    GAS_PER_TRANSACTION,
    PreparedCall,
    SentTransaction,
    TrackerContract,
    _receipt_quantity,
    gas_limit_for,
)
from tracker.chain.revert import describe_revert
from tracker.chain.rpc import Rpc, RpcError, rpc_for
from tracker.errors import ChainError, one_line

FEE_BUMP = 1.25  # nodes replace a pending transaction only for at least +10% on both fees
DEFAULT_TIP = 10**9  # nodes without eth_maxPriorityFeePerGas: one gwei, the usual floor
UNDERPRICED_PHRASES = ("less than block base fee", "underpriced", "fee too low", "feecap below")


@dataclass
class InFlight:
    """One transaction of the pipeline: every version sent under its nonce, and who is waiting."""

    to: str
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
        contract: TrackerContract | None,
        max_in_flight: int = 4,
        stuck_after_s: float = 60.0,
        confirmations: int = 0,
        poll_s: float = 0.5,
        timeout_s: float = 900.0,
        watch_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        sender: Any = None,
    ):
        """Transactions go to `contract` from its sender, or (`submit(..., to=...)`) to any
        address from `sender`."""
        account = sender if sender is not None else getattr(contract, "sender", None)
        if account is None:
            raise ChainError("no account to send transactions from (use --account)")
        self.sender: Any = account
        self.to = contract.address if contract is not None else None
        self.max_in_flight = max(1, max_in_flight)
        self.stuck_after_s = stuck_after_s
        self.confirmations = max(0, confirmations)
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.watch_s = watch_s
        self.clock = clock
        self.sleep = sleep
        self.stats = PipelineStats()
        self._pending: list[InFlight] = []
        self._next_nonce: int | None = None
        self._last_head: int | None = None
        self._reader: tuple[Any, Rpc] | None = None
        self._next_base_fee: int | None = None  # of the block being built, as last read
        self._base_fee_read_at = float("-inf")
        self._watched_at = float("-inf")
        self._tip: int | None = None  # read once per block
        self.block_gas_limit: int | None = None  # as the last block read said
        self.gas_scale: float | None = None  # the most the node's estimate was of the calls' own gas

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

    def submit(
        self, calls: Sequence[PreparedCall], token: Any = None, to: str | None = None
    ) -> Iterator[tuple[Any, SentTransaction]]:
        """Sends `calls` as one transaction (to `to`, by default the contract), first waiting until
        fewer than `max_in_flight` are pending; yields what got confirmed meanwhile, as (token,
        transaction), in nonce order.

        Raises `ChainError` naming the calls when the chain refuses them (nothing is sent then).
        """
        while len(self._pending) >= self.max_in_flight:
            yield from self._poll_once(wait=True)
        if self._pending and self.clock() - self._watched_at >= self.watch_s:
            # sending for a while: a transaction dropped meanwhile would hold every later nonce
            yield from self._poll_once(wait=False)
        entry = self._prepare(list(calls), token, to or self.to)
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

    def _rpc(self) -> Rpc:
        """The chain-access layer for the connected provider (batches, rate limits retried), kept
        while the provider stays the same."""
        provider = self._provider()
        if self._reader is None or self._reader[0] is not provider:
            self._reader = (provider, rpc_for(provider))
        return self._reader[1]

    def _fees(self) -> tuple[int, int]:
        """(max fee, priority fee) per gas: twice the next base fee plus the tip, as wallets do.

        The next base fee is the pending block's (the one the transaction competes for: after a
        rise the latest block's is already too low for the node to accept a replacement), read at
        most once per `watch_s`; the tip once per block."""
        if self._next_base_fee is None or self.clock() - self._base_fee_read_at > self.watch_s:
            self._pending_block()
        if self._tip is None:
            try:
                self._tip = _quantity(self._rpc().call("eth_maxPriorityFeePerGas", []))
            except ChainError:
                self._tip = DEFAULT_TIP
        assert self._next_base_fee is not None
        return 2 * self._next_base_fee + self._tip, self._tip

    def _prepare(self, calls: list[PreparedCall], token: Any, to: str | None) -> InFlight:
        provider = self._provider()
        labels = ", ".join(sorted({c.label for c in calls}))
        if to is None:
            raise ChainError(f"{labels}: no address to send the transaction to")
        if self._next_nonce is None:
            self._next_nonce = int(provider.web3.eth.get_transaction_count(str(self.sender.address), "pending"))
        try:
            # One estimate (the node's), on the calldata as it is: no decoding and encoding again,
            # and none of ape's own estimates and fee reads for a transaction it would not send.
            estimate = int(provider.estimate_gas_cost(self._transaction(to, _calldata(calls), self._next_nonce)))
        except Exception as error:  # ape and the node raise many error types; each becomes one line
            raise ChainError(f"{labels} failed: {describe_revert(error)}") from error
        planned = GAS_PER_TRANSACTION + sum(call.gas for call in calls)
        self.gas_scale = max(self.gas_scale or 0.0, estimate / planned)
        max_fee, tip = self._fees()
        entry = InFlight(
            to=to,
            nonce=self._next_nonce,
            calls=calls,
            token=token,
            gas_limit=gas_limit_for(estimate, provider.max_gas),
            max_fee=max_fee,
            priority_fee=tip,
        )
        self._next_nonce += 1
        return entry

    def _transaction(self, to: str, data: bytes, nonce: int, **fields: int) -> Any:
        """An EIP-1559 transaction with this calldata, built by ape's ecosystem."""
        provider = self._provider()
        return provider.network.ecosystem.create_transaction(
            chain_id=provider.chain_id,
            to=to,
            sender=str(self.sender.address),
            data=data,
            nonce=nonce,
            type=2,
            **fields,
        )

    def _sign(self, entry: InFlight) -> bytes:
        transaction = self._transaction(
            entry.to,
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
        head = _quantity(self._rpc().call("eth_blockNumber", []))
        # Receipts only come with a new block; between blocks the pending block is watched.
        new_block = head != self._last_head
        self._last_head = head
        if new_block:
            self._tip = None
            self._look_for_receipts()
        if new_block or self.clock() - self._watched_at >= self.watch_s:
            self._watched_at = self.clock()
            unmined = [entry for entry in self._pending if entry.mined is None]
            if unmined:
                self._watch(unmined, new_block)
        confirmed = [(entry.token, entry.mined) for entry in self._confirmable(head) if entry.mined is not None]
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

    def _look_for_receipts(self) -> None:
        """One batch: a receipt for any version of every transaction not yet mined."""
        asked = [(entry, tx_hash) for entry in self._pending if entry.mined is None for tx_hash in entry.hashes]
        if not asked:
            return
        receipts = _lookups(self._rpc(), [("eth_getTransactionReceipt", ["0x" + tx_hash]) for _, tx_hash in asked])
        for (entry, tx_hash), receipt in zip(asked, receipts):
            if not receipt or entry.mined is not None:
                continue
            if _receipt_quantity(receipt, "status") != 1:
                raise ChainError(f"{entry.labels} reverted in transaction 0x{tx_hash}")
            entry.mined = SentTransaction(
                tx_hash, _receipt_quantity(receipt, "blockNumber"), _receipt_quantity(receipt, "gasUsed")
            )
            entry.mined_block_hash = _block_hash(receipt)

    def _pending_block(self) -> tuple[set[str], int] | None:
        """Reads the block the node is building: sets the next base fee; returns the hashes it
        holds and the gas it has left, or None for a node that builds none (its latest block then
        gives the base fee)."""
        rpc = self._rpc()
        try:
            block = rpc.call("eth_getBlockByNumber", ["pending", False])
        except ChainError:
            block = None
        building = bool(block) and _quantity(block.get("number") or 0) > (self._last_head or 0)
        if not block:
            block = rpc.call("eth_getBlockByNumber", ["latest", False])
        self._next_base_fee = _quantity(block.get("baseFeePerGas") or 0)
        self._base_fee_read_at = self.clock()
        if block.get("gasLimit"):
            self.block_gas_limit = _quantity(block["gasLimit"])
        if not building:
            return None
        held = {_hex(tx) for tx in block.get("transactions") or []}
        room = _quantity(block.get("gasLimit") or 0) - _quantity(block.get("gasUsed") or 0)
        return held, room

    def _watch(self, unmined: list[InFlight], new_block: bool) -> None:
        """Replaces what the next block cannot take at its fees or after `stuck_after_s`;
        re-sends what the node lost (see the module docstring)."""
        building = self._pending_block()
        assert self._next_base_fee is not None
        missing: list[InFlight] = []
        for entry in unmined:
            if entry.max_fee < self._next_base_fee or self.clock() - entry.sent_at > self.stuck_after_s:
                self._replace(entry)
            elif building is None:
                if new_block:  # no pending block to look at: every one is looked up once a block
                    missing.append(entry)
            elif not building[0] & set(entry.hashes) and entry.gas_limit <= building[1]:
                missing.append(entry)  # the block has room for it and does not hold it
        if missing:
            self._send_again_if_lost(missing)

    def _send_again_if_lost(self, entries: list[InFlight]) -> None:
        """Re-sends those of `entries` the node no longer knows while their nonce is still unused."""
        rpc = self._rpc()
        asked = [(entry, tx_hash) for entry in entries for tx_hash in entry.hashes]
        found = _lookups(rpc, [("eth_getTransactionByHash", ["0x" + tx_hash]) for _, tx_hash in asked])
        known = {id(entry) for (entry, _), transaction in zip(asked, found) if transaction}
        lost = [entry for entry in entries if id(entry) not in known]
        if not lost:
            return
        used = _quantity(rpc.call("eth_getTransactionCount", [str(self.sender.address), "latest"]))
        for entry in lost:
            if entry.nonce >= used:  # dropped from the pool, its nonce unused: the same transaction again
                self._resend(entry)

    def _confirmable(self, head: int) -> list[InFlight]:
        """Takes the leading transactions that are `confirmations` deep off the pipeline, once one
        batch of their blocks shows those blocks still on the chain; one whose block a
        reorganisation removed is pending again (and holds back every later one)."""
        ready: list[InFlight] = []
        for entry in self._pending:
            if entry.mined is None or head - entry.mined.block_number + 1 < max(1, self.confirmations):
                break
            ready.append(entry)
        if not ready:
            return []
        numbers = sorted({entry.mined.block_number for entry in ready if entry.mined is not None})
        blocks = self._rpc().batch([("eth_getBlockByNumber", [hex(number), False]) for number in numbers])
        on_chain = {number: _hex(block["hash"]) for number, block in zip(numbers, blocks) if block}
        confirmed: list[InFlight] = []
        for entry in ready:
            assert entry.mined is not None
            if entry.mined_block_hash is not None and on_chain.get(entry.mined.block_number) != entry.mined_block_hash:
                entry.mined = None
                entry.mined_block_hash = None
                entry.sent_at = self.clock()
                self.stats.reorged += 1
                break
            confirmed.append(entry)
        del self._pending[: len(confirmed)]
        return confirmed

    def _replace(self, entry: InFlight) -> None:
        max_fee, tip = self._fees()
        before = entry.max_fee, entry.priority_fee
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
                # it away): the version on the node keeps its fees, and the next look tries again
                # at the fees of then (after half the bound at the latest)
                entry.max_fee, entry.priority_fee = before
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
                entry.last_error = one_line(error)  # tried again at the next look
                return
            if "already known" not in text and "nonce too low" not in text:
                raise ChainError(
                    f"{entry.labels}: re-sending a dropped transaction failed: {one_line(error)}"
                ) from error
        entry.sent_at = self.clock()


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
    return _hex(value)


def _lookups(rpc: Rpc, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    """The answers of a batch of lookups (receipts, transactions), where a node that answers "not
    found" with an error instead of null (ape's in-process chain) counts as having none."""
    try:
        return rpc.batch(calls)
    except RpcError:
        answers = []
        for method, params in calls:
            try:
                answers.append(rpc.call(method, params))
            except RpcError:
                answers.append(None)
        return answers


def _quantity(value: Any) -> int:
    """A JSON-RPC quantity (0x-hex), or an integer as ape's in-process chain may give it."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _hex(value: Any) -> str:
    """A hash as 64 lowercase hex characters without 0x."""
    return bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value).lower().removeprefix("0x")
