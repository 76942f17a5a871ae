"""The tracking engine: Step Functions executions in, contract transactions and published files out.

Public API (used by `ape run track_execution`, the demo and execution control)::

    summary = track(TrackConfig(...), source, contract, publisher, on_progress=None, stop=None)

* `source`: a `tracker.aws.executions.ExecutionSource` (`HistorySource`, `LogsSource`, or any
  object with `list_executions()` and `load(ref)`).
* `contract`: a `tracker.chain.contract.TrackerContract` with a sender.
* `publisher`: a `tracker.publish.targets.Publisher` (directory or S3).
* `on_progress(summary)` is called after every confirmed transaction and every poll;
  `stop` (a `threading.Event`) ends follow mode after the current poll.

Each poll: list executions, skip those whose checkpoint says terminated, load the rest, build their
documents (`tracker.documents.facts`), read every instance's on-chain record in one batched call, and
register what the chain does not have yet. The chain, not local memory, decides what is new: an
instance's on-chain state count is where its next batch starts (`fromSeq`), so a resend reverts
instead of duplicating, and states registered by a run that died before writing its checkpoint
are recovered from the contract's `StateRegistered` logs. Modes:

* `direct` (default): per instance and poll one call (`registerExecution`, `registerStates` or
  `registerStatesAndTerminate`), the calls of many instances packed into one `multicall`
  transaction;
* `anchor`: new instances and terminations as calls, and every new state of the poll under one
  Merkle root (`anchorStates`), all in one transaction; each protocol entry carries its proof;
* `per-state`: the published prototype's way, one transaction per state, each awaited (benchmarks).

After a transaction is confirmed the protocols it touched are rewritten and the checkpoints are
committed (`tracker.tracking.checkpoints`). A poll is retried as a whole on transient faults
(`tracker.retry`), which is safe because it starts by re-reading the chain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tracker.aws.executions import ExecutionRef, ExecutionSource
from tracker.chain import merkle
from tracker.chain.contract import PreparedCall, SentTransaction, TrackerContract
from tracker.documents.facts import Document, chain_head
from tracker.documents.ids import normalize_address, normalize_id
from tracker.documents.protocol import InstanceProtocol, ProtocolEntry
from tracker.errors import ChainError, TrackerError, one_line
from tracker.publish.targets import Publisher, document_path, protocol_path, publish_documents, url_for, write_files
from tracker.retry import with_retry
from tracker.tracking.build import ExecutionDocuments, build_documents
from tracker.tracking.checkpoints import Checkpoint, CheckpointStore, PendingAnchor, RegisteredState, store_path
from tracker.tracking.config import TrackConfig, TrackSummary

STATE_REGISTERED_SIGNATURE = "StateRegistered(bytes32,bytes32,uint256)"


class InsufficientFundsError(TrackerError):
    """The tracker account cannot pay for its transactions."""


class TraceDivergedError(TrackerError):
    """The chain holds states for an instance that differ from the ones built from its history."""


class InstanceNotOwnedError(TrackerError):
    """The instance is registered by another account that did not make the tracker its operator."""


@dataclass
class _Work:
    """What one execution needs in this poll: calls (one group, never split), new states, leaves."""

    documents: ExecutionDocuments
    checkpoint: Checkpoint
    calls: list[PreparedCall]
    new_states: list[tuple[int, str]]  # (seq, state id)
    registers_instance: bool
    terminates: bool


class Tracker:
    """One tracking run against one contract; `track()` is the convenient entry point."""

    def __init__(
        self,
        config: TrackConfig,
        source: ExecutionSource,
        contract: TrackerContract,
        publisher: Publisher,
        on_progress: Callable[[TrackSummary], None] | None = None,
    ):
        from ape import chain

        if contract.sender is None:
            raise ChainError("no account to send transactions from (use --account)")
        self.config = config
        self.source = source
        self.contract = contract
        self.publisher = publisher
        self.on_progress = on_progress or (lambda _summary: None)
        self.chain_id = int(chain.chain_id)
        self.sender = normalize_address(str(contract.sender.address))
        self.store = CheckpointStore(store_path(config.state_dir, self.chain_id, contract.address))
        self.checkpoints = self.store.load_all()
        self.summary = TrackSummary(mode=config.mode)
        self._seen: set[str] = set()
        self._documents_published: Future = Future()
        self._documents_published.set_result(None)
        self._block_times: dict[int, int] = {}

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event | None = None) -> TrackSummary:
        stop = stop or threading.Event()
        started = time.monotonic()
        try:
            while True:
                with_retry(self.poll_once, self.config.retry, on_retry=self._count_retry)
                self.summary.polls += 1
                self.summary.elapsed_s = time.monotonic() - started
                self.on_progress(self.summary)
                if not self.config.follow or stop.is_set():
                    break
                if self.config.max_polls is not None and self.summary.polls >= self.config.max_polls:
                    break
                if stop.wait(self.config.poll_interval):
                    break
        finally:
            self.summary.elapsed_s = time.monotonic() - started
        return self.summary

    def _count_retry(self, _attempt: int, _error: BaseException, _pause: float) -> None:
        self.summary.retries += 1

    def poll_once(self) -> None:
        """One poll: settle journalled anchors, read sources and chain, send, publish, checkpoint."""
        self._settle_pending_anchors()
        refs = self.source.list_executions()
        self._seen.update(ref.execution_arn for ref in refs)
        self.summary.executions = len(self._seen)
        open_refs = [ref for ref in refs if not self._is_done(ref)]
        loaded = [self.source.load(ref) for ref in open_refs]
        self.summary.held_events = sum(execution.held_events for execution in loaded)
        plans = [build_documents(execution, self.config.include_data) for execution in loaded]
        plans = [plan for plan in plans if plan.execution.events]
        works = self._reconcile_and_plan(plans)
        self.summary.pending_executions = sum(1 for plan in plans if plan.end is None)
        documents = [document for work in works for document in self._documents_to_publish(work)]
        # Documents are written while the transaction is prepared and mined; every protocol that
        # points at them is written only after they are all in place (`_finish`).
        with ThreadPoolExecutor(max_workers=1) as background:
            self._documents_published = background.submit(publish_documents, self.publisher, documents)
            try:
                if self.config.mode == "anchor":
                    self._send_anchor(works)
                elif self.config.mode == "per-state":
                    self._send_per_state(works)
                else:
                    self._send_direct(works)
            finally:
                self._documents_published.result()

    def _is_done(self, ref: ExecutionRef) -> bool:
        checkpoint = self.checkpoints.get(ref.execution_arn)
        return checkpoint is not None and checkpoint.terminated

    # ------------------------------------------------------------------ chain state

    def _reconcile_and_plan(self, plans: Sequence[ExecutionDocuments]) -> list[_Work]:
        if not plans:
            return []
        records = self.contract.instances([plan.instance_id for plan in plans])
        works: list[_Work] = []
        recovered: list[Checkpoint] = []
        for plan in plans:
            record = records[plan.instance_id]
            checkpoint = self.checkpoints.get(plan.execution.execution_arn) or Checkpoint(
                plan.execution.execution_arn, plan.model_id, plan.instance_id
            )
            if checkpoint.instance_id != plan.instance_id:
                raise TraceDivergedError(
                    f"execution {plan.execution.execution_arn} now yields instance {plan.instance_id}, "
                    f"but it was tracked as {checkpoint.instance_id} (state directory {self.config.state_dir})"
                )
            before = (len(checkpoint.states), checkpoint.terminated, checkpoint.instance_registered)
            chain_count = self._reconcile(plan, checkpoint, record)
            if (len(checkpoint.states), checkpoint.terminated, checkpoint.instance_registered) != before:
                recovered.append(checkpoint)
            work = self._plan_calls(plan, checkpoint, record, chain_count)
            if work is not None:
                works.append(work)
        if recovered:
            self._publish_protocols(recovered)
            self._commit(recovered)
        return works

    def _reconcile(self, plan: ExecutionDocuments, checkpoint: Checkpoint, record: Any) -> int:
        """Aligns the checkpoint with the chain (the chain wins) and returns the on-chain state count."""
        if record is None:
            if checkpoint.instance_registered or (self.config.mode != "anchor" and checkpoint.states):
                # The chain does not know the instance (a reset local chain): start over.
                checkpoint.states.clear()
                checkpoint.instance_registered = checkpoint.terminated = False
            return 0
        if record.owner != self.sender and not self.contract.is_operator(record.owner, self.sender):
            raise InstanceNotOwnedError(
                f"instance {plan.instance_id} ({plan.execution.execution_arn}) is registered by 0x{record.owner}, "
                f"which has not made 0x{self.sender} its operator"
            )
        checkpoint.instance_registered = True
        chain_count = record.state_count
        state_ids = plan.state_ids
        if chain_count > len(state_ids) or record.head != chain_head(
            plan.model_id, plan.instance_id, state_ids[:chain_count]
        ):
            raise TraceDivergedError(
                f"instance {plan.instance_id} has {chain_count} states on chain that differ from the "
                f"{len(state_ids)} built from {plan.execution.execution_arn} (tracked with another --include-data?)"
            )
        if self.config.mode != "anchor":
            del checkpoint.states[chain_count:]
            if len(checkpoint.states) < chain_count:
                # registered by a run that died before its checkpoint: taken from the chain's logs
                recovered = self._registrations_from_chain(plan.instance_id, len(checkpoint.states), chain_count)
                checkpoint.states.extend(recovered)
                self.summary.states_recovered += len(recovered)
            if checkpoint.states:
                checkpoint.last_event_id = plan.state_event_ids[len(checkpoint.states) - 1]
        if record.terminated and not checkpoint.terminated:
            checkpoint.terminated = True
            checkpoint.end_id = plan.end.id if plan.end else checkpoint.end_id
        return chain_count

    def _registrations_from_chain(self, instance_id: str, from_seq: int, to_seq: int) -> list[RegisteredState]:
        """Protocol entries of states a previous run registered, read from `StateRegistered` logs."""
        from ape import chain
        from eth_utils import keccak

        web3 = chain.provider.web3
        logs = web3.eth.get_logs(
            {
                "address": self.contract.address,
                "topics": ["0x" + keccak(text=STATE_REGISTERED_SIGNATURE).hex(), "0x" + instance_id],
                "fromBlock": self.contract.deployment_block(),
                "toBlock": "latest",
            }
        )
        by_seq: dict[int, RegisteredState] = {}
        senders: dict[str, str] = {}
        for log in logs:
            seq = int.from_bytes(bytes(log["data"])[-32:], "big")
            if not from_seq <= seq < to_seq:
                continue
            tx_hash = bytes(log["transactionHash"]).hex()
            if tx_hash not in senders:
                senders[tx_hash] = normalize_address(web3.eth.get_transaction("0x" + tx_hash)["from"])
            block = int(log["blockNumber"])
            by_seq[seq] = RegisteredState(
                state_id=bytes(log["topics"][2]).hex(),
                seq=seq,
                block_nr=block,
                transaction_hash=tx_hash,
                timestamp=self._block_time(block),
                client_address=senders[tx_hash],
            )
        missing = [seq for seq in range(from_seq, to_seq) if seq not in by_seq]
        if missing:
            raise ChainError(
                f"the chain counts {to_seq} states for {instance_id} but logs show none for seq {missing[0]}"
            )
        return [by_seq[seq] for seq in range(from_seq, to_seq)]

    def _block_time(self, block_number: int) -> int:
        if block_number not in self._block_times:
            from ape import chain

            self._block_times[block_number] = int(chain.provider.get_block(block_number).timestamp)
        return self._block_times[block_number]

    def _plan_calls(
        self, plan: ExecutionDocuments, checkpoint: Checkpoint, record: Any, chain_count: int
    ) -> _Work | None:
        if checkpoint.terminated:
            return None
        state_ids = plan.state_ids
        end_id = plan.end.id if plan.end else None
        calls: list[PreparedCall] = []
        contract = self.contract
        if self.config.mode == "anchor":
            done = len(checkpoint.states)
            new = list(enumerate(state_ids))[done:]
            registers = record is None
            if registers:
                calls.append(contract.register_execution_call(plan.model_id, plan.instance_id, []))
            if end_id:
                calls.append(contract.register_states_and_terminate_call(plan.instance_id, chain_count, [], end_id))
        else:
            new = list(enumerate(state_ids))[chain_count:]
            new_ids = [state_id for _, state_id in new]
            registers = record is None
            if registers:
                calls.append(contract.register_execution_call(plan.model_id, plan.instance_id, new_ids))
                if end_id:
                    calls.append(
                        contract.register_states_and_terminate_call(plan.instance_id, len(state_ids), [], end_id)
                    )
            elif end_id:
                calls.append(
                    contract.register_states_and_terminate_call(plan.instance_id, chain_count, new_ids, end_id)
                )
            elif new_ids:
                calls.append(contract.register_states_call(plan.instance_id, chain_count, new_ids))
        if not calls and not new:
            return None
        return _Work(plan, checkpoint, calls, new, registers, end_id is not None)

    # ------------------------------------------------------------------ sending

    def _send(self, calls: Sequence[PreparedCall]) -> tuple[SentTransaction, int, int]:
        """Sends calls in one transaction; returns it once mined, with its block number and time."""
        try:
            sent = self.contract.send_batch_light(calls)
        except ChainError as error:
            text = " ".join(one_line(e).lower() for e in (error, error.__cause__) if e is not None)
            if "insufficient funds" in text or "exceeds account balance" in text or "cannot afford" in text:
                raise InsufficientFundsError(
                    f"account 0x{self.sender} has insufficient funds for gas on chain id {self.chain_id}: fund it and rerun"
                ) from error
            raise
        self.summary.transactions += 1
        self.summary.gas_used += sent.gas_used
        return sent, sent.block_number, self._block_time(sent.block_number)

    def _confirmed(
        self, work: _Work, sent: SentTransaction, block: int, when: int, states: list[RegisteredState]
    ) -> Checkpoint:
        checkpoint = work.checkpoint
        checkpoint.states.extend(states)
        checkpoint.instance_registered = True
        if states:
            checkpoint.last_event_id = work.documents.state_event_ids[states[-1].seq]
        if work.terminates:
            checkpoint.terminated = True
            checkpoint.end_id = work.documents.end.id if work.documents.end else None
            end_event = work.documents.execution.end_event
            checkpoint.last_event_id = end_event.id if end_event else checkpoint.last_event_id
            self.summary.instances_terminated += 1
        if work.registers_instance:
            self.summary.instances_registered += 1
        self.summary.states_registered += len(states)
        return checkpoint

    def _entry(self, seq: int, state_id: str, sent: SentTransaction, block: int, when: int) -> RegisteredState:
        return RegisteredState(state_id, seq, block, _tx_hex(sent), when, self.sender)

    def _send_direct(self, works: Sequence[_Work]) -> None:
        for group in self._pack(works):
            sent, block, when = self._send([call for work in group for call in work.calls])
            touched = [
                self._confirmed(
                    work, sent, block, when, [self._entry(s, i, sent, block, when) for s, i in work.new_states]
                )
                for work in group
            ]
            self._finish(touched)

    def _send_per_state(self, works: Sequence[_Work]) -> None:
        """The prototype's way: each state in its own transaction, each awaited before the next."""
        contract = self.contract
        for work in works:
            plan = work.documents
            steps: list[tuple[PreparedCall, list[tuple[int, str]], bool, bool]] = []
            pending = list(work.new_states)
            if work.registers_instance:
                first, pending = pending[:1], pending[1:]
                call = contract.register_execution_call(plan.model_id, plan.instance_id, [i for _, i in first])
                steps.append((call, first, True, False))
            for seq, state_id in pending:
                steps.append(
                    (contract.register_states_call(plan.instance_id, seq, [state_id]), [(seq, state_id)], False, False)
                )
            if work.terminates and plan.end is not None:
                count = len(work.checkpoint.states) + len(work.new_states)
                steps.append(
                    (
                        contract.register_states_and_terminate_call(plan.instance_id, count, [], plan.end.id),
                        [],
                        False,
                        True,
                    )
                )
            for call, states, registers, terminates in steps:
                sent, block, when = self._send([call])
                step = _Work(plan, work.checkpoint, [call], states, registers, terminates)
                entries = [self._entry(seq, state_id, sent, block, when) for seq, state_id in states]
                self._finish([self._confirmed(step, sent, block, when, entries)])

    def _send_anchor(self, works: Sequence[_Work]) -> None:
        calls = [call for work in works for call in work.calls]
        leaves = [
            (work, seq, state_id, merkle.state_leaf(work.documents.instance_id, state_id, seq))
            for work in works
            for seq, state_id in work.new_states
        ]
        pending: PendingAnchor | None = None
        proofs: dict[tuple[str, int], tuple[str, list[str]]] = {}
        if leaves:
            tree = merkle.MerkleTree.build([leaf for *_, leaf in leaves])
            root = tree.root.hex()
            for index, (work, seq, _state_id, _leaf) in enumerate(leaves):
                proofs[(work.documents.instance_id, seq)] = (root, [p.hex() for p in tree.proof(index)])
            calls.append(self.contract.anchor_states_call(tree.root, len(leaves)))
            states: dict[str, list[RegisteredState]] = {}
            for work, seq, state_id, _leaf in leaves:
                proof_root, proof = proofs[(work.documents.instance_id, seq)]
                states.setdefault(work.checkpoint.execution_arn, []).append(
                    RegisteredState(state_id, seq, 0, "", 0, self.sender, proof_root, proof)
                )
            pending = PendingAnchor(root, len(leaves), states)
            # Journalled before sending: a run that dies before its checkpoint asks the chain later.
            self.store.add_pending(pending)
        if not calls:
            return
        sent, block, when = self._send(calls)
        touched = []
        for work in works:
            entries = []
            for seq, state_id in work.new_states:
                root, proof = proofs[(work.documents.instance_id, seq)]
                entry = self._entry(seq, state_id, sent, block, when)
                entry.merkle_root, entry.merkle_proof = root, proof
                entries.append(entry)
            touched.append(self._confirmed(work, sent, block, when, entries))
        if pending is not None:
            self.summary.anchors.append(pending.root)
        self._finish(touched, settled_roots=[pending.root] if pending else [])

    def _settle_pending_anchors(self) -> None:
        """Commits journalled anchors the chain has, drops those it does not."""
        for pending in self.store.pending():
            record = self.contract.anchor(pending.root)
            if record is None:
                self.store.drop_pending(pending.root)
                continue
            receipt = self._anchor_receipt(pending.root)
            touched = []
            for arn, states in pending.states.items():
                checkpoint = self.checkpoints.get(arn)
                if checkpoint is None:
                    continue
                have = {state.seq for state in checkpoint.states}
                for state in states:
                    if state.seq in have:
                        continue
                    state.block_nr, state.transaction_hash, state.timestamp = receipt
                    checkpoint.states.append(state)
                checkpoint.states.sort(key=lambda s: s.seq)
                touched.append(checkpoint)
            self._publish_protocols(touched)
            self._commit(touched, settled_roots=[pending.root])

    def _anchor_receipt(self, root: str) -> tuple[int, str, int]:
        from ape import chain
        from eth_utils import keccak

        logs = chain.provider.web3.eth.get_logs(
            {
                "address": self.contract.address,
                "topics": ["0x" + keccak(text="StatesAnchored(bytes32,address,uint256)").hex(), "0x" + root],
                "fromBlock": self.contract.deployment_block(),
                "toBlock": "latest",
            }
        )
        if not logs:
            raise ChainError(f"anchor {root} is on chain but its StatesAnchored log was not found")
        block = int(logs[0]["blockNumber"])
        return block, bytes(logs[0]["transactionHash"]).hex(), self._block_time(block)

    def _pack(self, works: Sequence[_Work]) -> list[list[_Work]]:
        """Groups works into transactions, never splitting one instance's calls."""
        groups: list[list[_Work]] = []
        states = 0
        for work in works:
            if not work.calls:
                continue
            size = len(work.new_states)
            if (
                groups
                and len(groups[-1]) < self.config.max_instances_per_tx
                and states + size <= self.config.max_states_per_tx
            ):
                groups[-1].append(work)
                states += size
            else:
                groups.append([work])
                states = size
        return groups

    # ------------------------------------------------------------------ publishing and checkpoints

    def _documents_to_publish(self, work: _Work) -> list[Document]:
        """Published before the transaction is sent, so every registered id already resolves."""
        plan = work.documents
        return [plan.model, plan.instance, *plan.states, *([plan.end] if plan.end is not None else [])]

    def _finish(self, checkpoints: Sequence[Checkpoint], settled_roots: Sequence[str] = ()) -> None:
        self._documents_published.result()
        self._publish_protocols(checkpoints)
        self._commit(checkpoints, settled_roots)
        self.on_progress(self.summary)

    def _commit(self, checkpoints: Sequence[Checkpoint], settled_roots: Sequence[str] = ()) -> None:
        self.store.commit(checkpoints, settled_roots)
        for checkpoint in checkpoints:
            self.checkpoints[checkpoint.execution_arn] = checkpoint

    def _publish_protocols(self, checkpoints: Sequence[Checkpoint]) -> None:
        files = {protocol_path(cp.instance_id): self.protocol(cp).to_bytes() for cp in checkpoints}
        write_files(self.publisher, files)
        self.summary.protocols_written.extend(files)

    def protocol(self, checkpoint: Checkpoint) -> InstanceProtocol:
        """The instance protocol of a checkpoint, in the published prototype's format plus additions."""
        publisher = self.publisher
        state_ids = [state.state_id for state in checkpoint.states]
        return InstanceProtocol(
            model_hash=checkpoint.model_id,
            instance_hash=checkpoint.instance_id,
            model_data=url_for(publisher, document_path(checkpoint.model_id)),
            instance_data=url_for(publisher, document_path(checkpoint.instance_id)),
            instance_protocol=[
                ProtocolEntry(
                    state_hash=state.state_id,
                    timestamp=state.timestamp,
                    block_nr=state.block_nr,
                    client_address=state.client_address,
                    transaction_hash=state.transaction_hash,
                    state_data=url_for(publisher, document_path(state.state_id)),
                    seq=state.seq,
                    merkle_root=state.merkle_root,
                    merkle_proof=state.merkle_proof,
                )
                for state in checkpoint.states
            ],
            chain_id=self.chain_id,
            contract_address=normalize_address(self.contract.address),
            state_count=len(state_ids),
            accumulator_head=None
            if self.config.mode == "anchor"
            else chain_head(checkpoint.model_id, checkpoint.instance_id, state_ids),
            end_hash=checkpoint.end_id if checkpoint.terminated else None,
            end_data=url_for(publisher, document_path(checkpoint.end_id))
            if checkpoint.terminated and checkpoint.end_id
            else None,
        )


def _tx_hex(sent: SentTransaction) -> str:
    return normalize_id(sent.transaction_hash, "transaction hash")


def track(
    config: TrackConfig,
    source: ExecutionSource,
    contract: TrackerContract,
    publisher: Publisher,
    on_progress: Callable[[TrackSummary], None] | None = None,
    stop: threading.Event | None = None,
) -> TrackSummary:
    """Tracks the source's executions into the contract and the publisher (see the module docstring)."""
    tracker = Tracker(config, source, contract, publisher, on_progress)
    try:
        return tracker.run(stop)
    finally:
        tracker.close()
