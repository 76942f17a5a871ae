"""The tracking engine: Step Functions executions in, contract transactions and published files out.

Public API (used by `ape run track_execution`, the demo and execution control)::

    summary = track(TrackConfig(...), source, contract, publisher, on_progress=None, stop=None)

* `source`: a `tracker.aws.executions.ExecutionSource` (`HistorySource`, `LogsSource`, or any
  object with `list_executions()` and `load(ref)`).
* `contract`: a `tracker.chain.contract.TrackerContract` with a sender.
* `publisher`: a `tracker.publish.targets.Publisher` (directory or S3).

Each poll: list executions, skip those whose checkpoint says final, load the rest, build their
documents (`tracker.tracking.build`), read every instance's record under the owner in one batched
call, plan what the chain lacks (`tracker.tracking.planner`: no I/O) and send it
(`tracker.tracking.senders`). The chain, not local memory, decides what is new; states and
attempt ends a run registered before it died are recovered from the contract's events. After a
transaction is mined the protocols it touched are rewritten and the checkpoints committed
(`tracker.tracking.checkpoints`). A poll is retried as a whole on transient chain faults
(`tracker.retry`), which is safe because it starts by re-reading the chain.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tracker.aws.arns import state_machine_of
from tracker.aws.children import StartedChildren, started_by_parent, started_children
from tracker.aws.errors import InconsistentHistoryError
from tracker.aws.events import state_visits
from tracker.aws.executions import Execution, ExecutionRef, ExecutionSource
from tracker.aws.tasks import TaskCall, TaskReader
from tracker.chain import logs
from tracker.chain.contract import InstanceRecord, Mode, SentTransaction, TrackerContract, instance_key
from tracker.chain.sending import TransactionPipeline
from tracker.documents.facts import ChildrenFacts, Document, chain_head
from tracker.documents.ids import normalize_address
from tracker.documents.protocol import AttemptEntry, InstanceProtocol, ProtocolEntry
from tracker.errors import ChainError, ConfigurationError
from tracker.publish.targets import Publisher, document_path, protocol_path, publish_documents, url_for, write_files
from tracker.retry import with_retry
from tracker.tracking.build import ExecutionDocuments, ParentOf, build_documents, instance_facts
from tracker.tracking.checkpoints import (
    Checkpoint,
    CheckpointStore,
    RegisteredEnd,
    RegisteredState,
    store_path,
)
from tracker.tracking.config import SkippedExecution, TrackConfig, TrackSummary
from tracker.tracking.planner import Plan, TraceDivergedError, plan_anchored, plan_direct
from tracker.tracking.senders import (
    AnchorSender,
    Confirmed,
    DirectSender,
    PerStateSender,
    SendContext,
)

# An execution whose last attempt ended unsuccessfully is looked at again this often (a redrive
# shows in ListExecutions; a change to NOT_REDRIVABLE only in DescribeExecution).
FINALITY_CHECK_SECONDS = 600.0

__all__ = ["TraceDivergedError", "TrackingRun", "track"]


class TrackingRun:
    """One tracking run against one contract; `track()` is the convenient entry point."""

    def __init__(
        self,
        config: TrackConfig,
        source: ExecutionSource,
        contract: TrackerContract,
        publisher: Publisher,
        on_progress: Callable[[TrackSummary], None] | None = None,
        clock: Callable[[], float] = time.time,
        tasks: TaskReader | None = None,
    ):
        from ape import chain

        if contract.sender is None:
            raise ChainError("no account to send transactions from (use --account)")
        self.config = config
        self.source = source
        self.contract = contract
        self.publisher = publisher
        self.on_progress = on_progress or (lambda _summary: None)
        self.clock = clock
        # What each Task state ran and read; from the source's AWS session unless given.
        session = getattr(source, "session", None)
        self.tasks = tasks or (TaskReader(session) if session is not None else None)
        self.chain_id = int(chain.chain_id)
        self.sender = normalize_address(str(contract.sender.address))
        self.owner = normalize_address(config.owner) if config.owner else self.sender
        if self.owner != self.sender and not contract.is_operator(self.owner, self.sender):
            raise ConfigurationError(
                f"0x{self.sender} is not an operator of 0x{self.owner} on {contract.address}: "
                "the owner approves it with setOperator (or track without --owner)"
            )
        self.anchored = config.mode == "anchor"
        path = store_path(config.state_dir, self.chain_id, contract.address)
        self.store = CheckpointStore(path, chain_identity(contract))
        self.checkpoints = self.store.load_all()
        self.summary = TrackSummary(mode=config.mode)
        if self.store.discarded:
            self.summary.warnings.append(
                f"{path} described another chain or contract (a restarted local chain?): its "
                f"{self.store.discarded} checkpoints were dropped and the chain decides what is registered"
            )
        self._seen: set[str] = set()
        # executions started by another one (Map Run children, nested starts), counted apart
        self._children_seen: set[str] = set()
        self._last_checked: dict[str, float] = {}
        self._documents_published: Future = Future()
        self._documents_published.set_result(None)
        self._block_times: dict[int, int] = {}
        self._poll_documents: dict[str, ExecutionDocuments] = {}
        context = SendContext(
            contract,
            self.chain_id,
            self.sender,
            config.max_gas_per_tx,
            config.max_instances_per_tx,
            self._confirm,
            self._skip,
            self.store.add_pending,
            self._count,
            TransactionPipeline(
                contract,
                max_in_flight=1 if config.mode == "per-state" else config.max_in_flight,
                stuck_after_s=config.replace_after_s,
                confirmations=config.confirmations,
            ),
        )
        if self.anchored:
            self.sending: Any = AnchorSender(context)
        elif config.mode == "per-state":
            self.sending = PerStateSender(context)
        else:
            self.sending = DirectSender(context)

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

    def _count(self, sent: SentTransaction) -> None:
        self.summary.transactions += 1
        self.summary.gas_used += sent.gas_used

    def poll_once(self) -> None:
        """One poll: settle journalled anchors, read sources and chain, send, publish, checkpoint."""
        self._settle_pending_anchors()
        refs = self.source.list_executions()
        self._seen.update(ref.execution_arn for ref in refs)
        self.summary.executions = len(self._seen - self._children_seen)
        loaded = [self.source.load(ref) for ref in refs if not self._is_done(ref)]
        self.summary.held_events = sum(execution.held_events for execution in loaded)
        now_ms = int(self.clock() * 1000)
        documents: list[ExecutionDocuments] = []
        for execution in loaded:
            if not execution.events or started_by_parent(execution.input):
                continue  # an execution another one started is tracked through its parent
            try:
                documents.extend(self._tree(execution, None, now_ms))
            except InconsistentHistoryError as error:
                self.summary.skipped.append(SkippedExecution(execution.execution_arn, str(error)))
        unique: dict[str, ExecutionDocuments] = {}
        for docs in documents:  # a child also listed on its own is tracked as the child
            if docs.execution.execution_arn not in unique or docs.children or _has_parent(docs):
                unique[docs.execution.execution_arn] = docs
        documents = list(unique.values())
        self.summary.executions = len((self._seen | set(unique)) - self._children_seen)
        self.summary.child_executions = len(self._children_seen)
        self._poll_documents = {d.execution.execution_arn: d for d in documents}
        plans = self._reconcile_and_plan(documents)
        self.summary.pending_executions = sum(1 for d in documents if not d.final)
        to_publish = [doc for plan in plans for doc in _documents_of(plan.documents)]
        # Documents are written while transactions are prepared and mined; every protocol that
        # points at them is written only after they are all in place (`_confirm`).
        with ThreadPoolExecutor(max_workers=1) as background:
            self._documents_published = background.submit(publish_documents, self.publisher, to_publish)
            try:
                self.sending.send([plan for plan in plans if plan.steps or plan.leaves])
            finally:
                self._documents_published.result()

    def _task_documents(self, execution_arn: str) -> Callable[[TaskCall, str], Document] | None:
        """The task document of each call of an execution: pinned once written (see
        `CheckpointStore.pin_task`), else read now and pinned."""
        reader = self.tasks
        if reader is None:
            return None

        def task_document(call: TaskCall, instance_id: str) -> Document:
            event_id = call.visit.entered.id
            pinned = self.store.pinned_task(execution_arn, event_id)
            if pinned is not None:
                return Document(pinned)
            content = reader.facts(call, instance_id).document().content
            return Document(self.store.pin_task(execution_arn, event_id, content))

        return task_document

    def _tree(self, execution: Execution, parent: ParentOf | None, now_ms: int) -> list[ExecutionDocuments]:
        """An execution's documents and those of every execution it started, children first.

        Children are looked for only at visits that are ready (left, or their attempt ended); a
        child already final on chain is named by its checkpoint and not loaded again. A Map Run
        redriven with its parent is listed once; each of its children belongs to the visit whose
        run started it (`StartedChildren.started`), and the listing is complete only as a whole."""
        instance_id = instance_facts(execution, parent).document().id
        ready = {visit.entered.id for visit in state_visits(execution.events)}
        children: dict[int, ChildrenFacts | None] = {}
        trees: list[ExecutionDocuments] = []
        listings: dict[str, tuple[list[ExecutionRef], int]] = {}
        for started in started_children(execution.events):
            if started.event_id not in ready:
                continue
            link = ParentOf(
                instance_id, execution.execution_arn, started.event_id, started.state_name, started.map_run_arn
            )
            key = started.map_run_arn or str(started.execution_arn)
            if key not in listings:
                listings[key] = self._children_refs(started)
            listed, expected = listings[key]
            refs = [ref for ref in listed if started.started(ref.start_date_ms)]
            redriven_run = started.from_ms is not None
            if redriven_run and not refs and len(listed) >= expected:
                continue  # a redriven Map Run that started no child here (Standard children are redriven in place)
            ids: list[str] = []
            for ref in refs:
                self._children_seen.add(ref.execution_arn)
                checkpoint = self.checkpoints.get(ref.execution_arn)
                if checkpoint is not None and checkpoint.final:
                    ids.append(checkpoint.instance_id)
                    continue
                child = self._load_child(ref)
                if not child.events:
                    continue
                if execution.is_final(now_ms):
                    child = dataclasses.replace(child, parent_final=True)
                subtree = self._tree(child, link, now_ms)
                trees.extend(subtree)
                ids.append(subtree[-1].instance_id)
            complete = len(ids) == len(refs) and len(listed) >= expected
            previous = children.get(
                started.event_id, ChildrenFacts(instance_id, started.event_id, started.state_name, ())
            )
            if previous is None or not complete:
                children[started.event_id] = None
                continue
            children[started.event_id] = ChildrenFacts(
                instance_id,
                started.event_id,
                started.state_name,
                (*previous.instances, *ids),
                started.map_run_arn or previous.map_run_arn,
            )
        trees.append(
            build_documents(
                execution,
                self.config.include_data,
                now_ms,
                parent,
                children,
                self._task_documents(execution.execution_arn),
            )
        )
        return trees

    def _children_refs(self, started: StartedChildren) -> tuple[list[ExecutionRef], int]:
        if started.map_run_arn is not None:
            lister = getattr(self.source, "map_run_children", None)
            return lister(started.map_run_arn) if lister else ([], 1)
        assert started.execution_arn is not None
        return [ExecutionRef(started.execution_arn, state_machine_of(started.execution_arn))], 1

    def _load_child(self, ref: ExecutionRef) -> Execution:
        loader = getattr(self.source, "load_child", self.source.load)
        return loader(ref)

    def _is_done(self, ref: ExecutionRef) -> bool:
        """Whether an execution needs no look this poll: final on chain, or ended, unchanged since
        (the same redrive count) and looked at less than FINALITY_CHECK_SECONDS ago."""
        checkpoint = self.checkpoints.get(ref.execution_arn)
        if checkpoint is None:
            return False
        if checkpoint.final:
            return True
        if not checkpoint.ends or ref.status in (None, "RUNNING", "PENDING_REDRIVE"):
            return False
        if ref.redrive_count is not None and ref.redrive_count != checkpoint.redrive_count:
            return False
        last = self._last_checked.get(ref.execution_arn)
        now = self.clock()
        if last is None or now - last >= FINALITY_CHECK_SECONDS:
            self._last_checked[ref.execution_arn] = now
            return False
        return True

    # ------------------------------------------------------------------ chain state

    def _reconcile_and_plan(self, documents: Sequence[ExecutionDocuments]) -> list[Plan]:
        if not documents:
            return []
        records = self.contract.instances(self.owner, [d.execution_id for d in documents])
        plans: list[Plan] = []
        recovered: list[Checkpoint] = []
        for docs in documents:
            arn = docs.execution.execution_arn
            record = records[docs.execution_id]
            checkpoint = self.checkpoints.get(arn)
            if checkpoint is None or checkpoint.instance_id != docs.instance_id:
                # New, or checkpointed from documents the chain does not hold: the chain decides.
                checkpoint = Checkpoint(
                    arn, docs.execution_id, docs.model_id, docs.instance_id, "anchored" if self.anchored else "direct"
                )
            before = (len(checkpoint.states), len(checkpoint.ends), checkpoint.final, checkpoint.instance_registered)
            try:
                self._reconcile(docs, checkpoint, record)
                if self.anchored:
                    plan = plan_anchored(docs, checkpoint, record, self.contract, self.owner)
                else:
                    per_state = self.config.mode == "per-state"
                    per_call = 1 if per_state else self.config.max_states_per_call
                    plan = plan_direct(docs, checkpoint, record, self.contract, self.owner, per_call, not per_state)
            except TraceDivergedError as error:
                self._skip_documents(docs, str(error))
                continue
            checkpoint.redrive_count = docs.execution.redrive_count
            after = (len(checkpoint.states), len(checkpoint.ends), checkpoint.final, checkpoint.instance_registered)
            if after != before:
                recovered.append(checkpoint)
            plans.append(plan)
        if recovered:
            self._publish_protocols(recovered)
            self._commit(recovered)
        return plans

    def _reconcile(self, docs: ExecutionDocuments, checkpoint: Checkpoint, record: InstanceRecord | None) -> None:
        """Aligns the checkpoint with the chain, which wins."""
        if record is None:
            if checkpoint.instance_registered or checkpoint.ends or (not self.anchored and checkpoint.states):
                # The chain does not know the instance (a reset local chain): start over.
                checkpoint.states.clear()
                checkpoint.ends.clear()
                checkpoint.instance_registered = checkpoint.final = False
            return
        checkpoint.instance_registered = True
        if record.mode == Mode.DIRECT:
            del checkpoint.states[record.state_count :]
            if len(checkpoint.states) < record.state_count:
                # registered by a run that died before its checkpoint: taken from the chain's events
                found = self._states_from_chain(record, len(checkpoint.states), docs)
                checkpoint.states.extend(found)
                self.summary.states_recovered += len(found)
            if checkpoint.states:
                checkpoint.last_event_id = docs.state_event_ids[len(checkpoint.states) - 1]
        if len(checkpoint.ends) < record.attempts or (record.final and not checkpoint.final):
            checkpoint.ends = self._ends_from_chain(record)
            checkpoint.final = record.final

    def _states_from_chain(
        self, record: InstanceRecord, from_seq: int, docs: ExecutionDocuments
    ) -> list[RegisteredState]:
        """Protocol entries of states a previous run registered, from `StateRegistered` events."""
        found = logs.events(
            self.contract.address, "StateRegistered", [record.key], from_block=self.contract.deployment_block()
        )
        wanted = [event for event in found if from_seq <= int(event.args["seq"]) < record.state_count]
        senders = logs.transaction_senders([event.transaction_hash for event in wanted])
        times = self._block_times_of([event.block_number for event in wanted])
        by_seq = {
            int(event.args["seq"]): RegisteredState(
                state_id=_hex(event.args["state"]),
                seq=int(event.args["seq"]),
                block_nr=event.block_number,
                transaction_hash=event.transaction_hash,
                timestamp=times[event.block_number],
                client_address=senders[event.transaction_hash],
                task_id=docs.task_id(int(event.args["seq"])),
            )
            for event in wanted
        }
        missing = [seq for seq in range(from_seq, record.state_count) if seq not in by_seq]
        if missing:
            raise ChainError(
                f"the chain counts {record.state_count} states for {record.key} but has no event for seq {missing[0]}"
            )
        return [by_seq[seq] for seq in range(from_seq, record.state_count)]

    def _ends_from_chain(self, record: InstanceRecord) -> list[RegisteredEnd]:
        """Every attempt end registered for the instance, from its AttemptEnded/InstanceTerminated events."""
        since = self.contract.deployment_block()
        found = [
            *logs.events(self.contract.address, "AttemptEnded", [record.key], from_block=since),
            *logs.events(self.contract.address, "InstanceTerminated", [record.key], from_block=since),
        ]
        found.sort(key=lambda event: (event.block_number, event.log_index))
        times = self._block_times_of([event.block_number for event in found])
        # an attempt's end may be on chain twice: ended while redrivable, then terminated with the
        # same end once the execution could no longer be redriven (14 days on); both are listed
        ends: dict[tuple[int, bool], RegisteredEnd] = {}
        for event in found:
            attempt = int(event.args["attempt"])
            ends[attempt, event.name == "InstanceTerminated"] = RegisteredEnd(
                attempt=attempt,
                end_id=_hex(event.args["endDocument"]),
                state_count=int(event.args["stateCount"]),
                block_nr=event.block_number,
                transaction_hash=event.transaction_hash,
                timestamp=times[event.block_number],
                final=event.name == "InstanceTerminated",
            )
        return [ends[key] for key in sorted(ends)]

    def _block_times_of(self, numbers: Sequence[int]) -> dict[int, int]:
        missing = [number for number in set(numbers) if number not in self._block_times]
        self._block_times.update(logs.block_timestamps(missing))
        return {number: self._block_times[number] for number in numbers}

    # ------------------------------------------------------------------ confirmations

    def _confirm(self, confirmations: list[Confirmed]) -> None:
        """Records what mined transactions registered, publishes the protocols, commits."""
        touched: list[Checkpoint] = []
        for item in confirmations:
            sent = item.sent
            when = self._block_times_of([sent.block_number])[sent.block_number]
            checkpoint = item.plan.checkpoint
            docs = item.plan.documents
            for seq in sorted(item.merkle):
                root, proof = item.merkle[seq]
                checkpoint.states.append(
                    RegisteredState(
                        docs.state_ids[seq],
                        seq,
                        sent.block_number,
                        sent.transaction_hash,
                        when,
                        self.sender,
                        root,
                        proof,
                        docs.task_id(seq),
                    )
                )
            for step in item.steps:
                for seq, state_id in step.states:
                    checkpoint.states.append(
                        RegisteredState(
                            state_id,
                            seq,
                            sent.block_number,
                            sent.transaction_hash,
                            when,
                            self.sender,
                            task_id=docs.task_id(seq),
                        )
                    )
                if step.registers_instance:
                    checkpoint.instance_registered = True
                    self.summary.instances_registered += 1
                if step.end is not None:
                    checkpoint.ends = [
                        end for end in checkpoint.ends if (end.attempt, end.final) != (step.end.attempt, step.final)
                    ]
                    checkpoint.ends.append(
                        RegisteredEnd(
                            step.end.attempt,
                            step.end.end.id,
                            step.end.state_count,
                            sent.block_number,
                            sent.transaction_hash,
                            when,
                            step.final,
                        )
                    )
                    checkpoint.ends.sort(key=lambda end: (end.attempt, end.final))
                    if step.final:
                        checkpoint.final = True
                        self.summary.instances_terminated += 1
                    else:
                        self.summary.attempts_ended += 1
                self.summary.states_registered += len(step.states)
            self.summary.states_registered += len(item.merkle)
            checkpoint.states.sort(key=lambda state: state.seq)
            if checkpoint.states and not self.anchored:
                checkpoint.last_event_id = docs.state_event_ids[checkpoint.states[-1].seq]
            touched.append(checkpoint)
        roots = sorted({c.root for c in confirmations if c.root})
        self.summary.anchors.extend(root for root in roots if root not in self.summary.anchors)
        self._documents_published.result()
        self._publish_protocols(touched)
        self._commit(touched, settled_roots=roots)
        self.on_progress(self.summary)

    def _skip(self, plan: Plan, reason: str) -> None:
        self._skip_documents(plan.documents, reason)

    def _skip_documents(self, docs: ExecutionDocuments, reason: str) -> None:
        self.summary.skipped.append(SkippedExecution(docs.execution.execution_arn, reason))

    def _settle_pending_anchors(self) -> None:
        """Commits journalled anchors of ours that the chain has, drops those it does not."""
        for pending in self.store.pending():
            if normalize_address(pending.submitter) != self.sender:
                continue  # another account's journal in this state directory: never settled as ours
            if self.contract.anchor(self.sender, pending.root) is None:
                self.store.drop_pending(pending.root)
                continue
            found = logs.events(
                self.contract.address,
                "StatesAnchored",
                [self.sender, pending.root],
                from_block=self.contract.deployment_block(),
            )
            if not found:
                raise ChainError(f"anchor {pending.root} of 0x{self.sender} is on chain but its event was not found")
            block, tx_hash = found[0].block_number, found[0].transaction_hash
            when = self._block_times_of([block])[block]
            touched = []
            for arn, states in pending.states.items():
                checkpoint = self.checkpoints.get(arn)
                if checkpoint is None:
                    continue
                have = {state.seq for state in checkpoint.states}
                for state in states:
                    if state.seq not in have:
                        state.block_nr, state.transaction_hash, state.timestamp = block, tx_hash, when
                        checkpoint.states.append(state)
                checkpoint.states.sort(key=lambda s: s.seq)
                touched.append(checkpoint)
            self._publish_protocols(touched)
            self._commit(touched, settled_roots=[pending.root])

    # ------------------------------------------------------------------ publishing and checkpoints

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
        x, model, instance = checkpoint.execution_id, checkpoint.model_id, checkpoint.instance_id
        state_ids = [state.state_id for state in checkpoint.states]
        attempts = [
            AttemptEntry(
                attempt=end.attempt,
                end_hash=end.end_id,
                end_data=url_for(publisher, document_path(end.end_id)),
                state_count=end.state_count,
                accumulator_head=chain_head(x, model, instance, state_ids[: end.state_count]),
                block_nr=end.block_nr,
                transaction_hash=end.transaction_hash,
                timestamp=end.timestamp,
                final=end.final,
            )
            for end in checkpoint.ends
        ]
        last = checkpoint.ends[-1] if checkpoint.ends else None
        return InstanceProtocol(
            model_hash=model,
            instance_hash=instance,
            model_data=url_for(publisher, document_path(model)),
            instance_data=url_for(publisher, document_path(instance)),
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
                    task_data=url_for(publisher, document_path(state.task_id)) if state.task_id else None,
                )
                for state in checkpoint.states
            ],
            chain_id=self.chain_id,
            contract_address=normalize_address(self.contract.address),
            state_count=len(state_ids),
            accumulator_head=chain_head(x, model, instance, state_ids),
            end_hash=last.end_id if last else None,
            end_data=url_for(publisher, document_path(last.end_id)) if last else None,
            execution_id=x,
            owner=self.owner,
            mode=checkpoint.mode,
            final=checkpoint.final,
            attempts=attempts,
        )

    def instance_key(self, execution_id: str) -> str:
        return instance_key(self.owner, execution_id)


def chain_identity(contract: TrackerContract) -> str:
    """What identifies the chain and the contract's code: genesis block hash and code hash."""
    from ape import chain
    from eth_utils import keccak

    genesis = chain.provider.get_block(0).hash
    code = bytes(chain.provider.get_code(contract.address))
    return f"genesis {bytes(genesis).hex()} code {keccak(code).hex()}"


def _documents_of(docs: ExecutionDocuments) -> list[Document]:
    """Published before any transaction is sent, so every registered id already resolves."""
    tasks = [task for task in docs.tasks if task is not None]
    return [
        docs.model,
        docs.instance,
        *tasks,
        *docs.children,
        *docs.states,
        *(attempt.end for attempt in docs.attempts),
    ]


def _has_parent(docs: ExecutionDocuments) -> bool:
    return b'"parent_instance_id"' in docs.instance.content


def _hex(value: Any) -> str:
    return bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value).removeprefix("0x")


def track(
    config: TrackConfig,
    source: ExecutionSource,
    contract: TrackerContract,
    publisher: Publisher,
    on_progress: Callable[[TrackSummary], None] | None = None,
    stop: threading.Event | None = None,
    tasks: TaskReader | None = None,
) -> TrackSummary:
    """Tracks the source's executions into the contract and the publisher (see the module docstring)."""
    run = TrackingRun(config, source, contract, publisher, on_progress, tasks=tasks)
    try:
        return run.run(stop)
    finally:
        run.close()
