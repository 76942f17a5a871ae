"""Check 2: each listed state (its document, what it says, its registration) and the listed trace
as a whole against the chain's count, head and pins."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_utils import keccak

from tracker.chain.contract import Mode, Status
from tracker.chain.merkle import state_leaf, verify_proof
from tracker.documents.facts import start_head
from tracker.documents.ids import id_to_bytes32
from tracker.documents.protocol import InstanceProtocol, ProtocolEntry
from tracker.verify.chain import Anchoring, ChainView, EndEvent, Transfer
from tracker.verify.content import Content, Foreign, Malformed, StateContent, TaskContent
from tracker.verify.download import Fetched
from tracker.verify.report import CHECK_STATES, CheckResult, StateResult, short

MAX_PROOF_LENGTH = 64


def describe_end(end: EndEvent) -> str:
    if end.final:
        return f"the termination (attempt {end.attempt}, block {end.block})"
    return f"the end of attempt {end.attempt} (block {end.block})"


@dataclass
class Trace:
    """The trace as the protocol lists it, what its documents say, and the chain heads over it."""

    protocol: InstanceProtocol
    documents: list[Fetched[Content]]
    execution_id: str | None
    tasks: dict[str, Fetched[Content]] = field(default_factory=dict)  # task documents by URL
    task_states: frozenset[str] | None = None  # the model's states that run a task, when it was read

    def __post_init__(self) -> None:
        self.ids = [entry.state_hash for entry in self.protocol.instance_protocol]
        self.first_position: dict[str, int] = {}
        for position, state_id in enumerate(self.ids):
            self.first_position.setdefault(state_id, position)
        self.heads: list[str] | None = None
        if self.execution_id is not None:
            head = bytes.fromhex(start_head(self.execution_id, self.protocol.model_hash, self.protocol.instance_hash))
            heads = [head.hex()]
            for state_id in self.ids:
                head = keccak(head + id_to_bytes32(state_id))
                heads.append(head.hex())
            self.heads = heads

    def content(self, position: int) -> StateContent | None:
        """What the document at `position` says, when it is the registered one and ours."""
        if position < 0:
            return None
        fetched = self.documents[position]
        ok = fetched.ok and fetched.sha256 == self.ids[position]
        return fetched.content if ok and isinstance(fetched.content, StateContent) else None


def _attempt_range(ends: list[EndEvent], seq: int) -> tuple[int, int | None]:
    """Which attempts a state at `seq` may belong to, by the chain's attempt ends."""
    low = max((end.attempt + 1 for end in ends if end.state_count <= seq), default=0)
    high = min((end.attempt for end in ends if end.state_count > seq), default=None)
    return low, high


class StateJudge:
    """Judges each listed state: document, content, registration (see `judge`)."""

    def __init__(self, trace: Trace, view: ChainView | None):
        self.trace = trace
        self.view = view
        usable = view is not None and view.instance is not None and view.instance.status != Status.MOVED
        self.chain = view if usable else None

    def judge(self, position: int) -> StateResult:
        entry = self.trace.protocol.instance_protocol[position]
        problems: list[str] = []
        notes: list[str] = []
        self._document(position, entry, problems, notes)
        task = self._task(position, entry, problems, notes)
        if entry.seq is not None and entry.seq != position:
            problems.append(f"listed at position {position} but its seq is {entry.seq}")
        first = self.trace.first_position[entry.state_hash]
        if first != position:
            problems.append(f"listed twice (also at position {first})")
        where = ""
        if self.chain is not None:
            assert self.chain.instance is not None
            if self.chain.instance.mode == Mode.DIRECT:
                where = self._direct(position, entry, problems)
            else:
                where = self._anchored(position, entry, problems)
        ran = f"{task.state_name}: {task.ran}" if task is not None else None
        if problems:
            return StateResult(position, position, entry.state_hash, False, "; ".join(problems), ran)
        reason = "document ok" + (", task document ok" if task is not None else "") + (f", {where}" if where else "")
        if notes:
            return StateResult(position, position, entry.state_hash, None, f"{reason}; " + "; ".join(notes), ran)
        if self.chain is None:
            reason += "; on-chain registration not checked"
            return StateResult(position, position, entry.state_hash, None, reason, ran)
        return StateResult(position, position, entry.state_hash, True, reason, ran)

    def task_content(self, position: int) -> TaskContent | None:
        """The checked task document of the state at `position`, when it has one."""
        state = self.trace.content(position)
        entry = self.trace.protocol.instance_protocol[position]
        if state is None or state.task_id is None or not entry.task_data:
            return None
        fetched = self.trace.tasks.get(entry.task_data)
        if fetched is None or not fetched.ok or fetched.sha256 != state.task_id:
            return None
        return fetched.content if isinstance(fetched.content, TaskContent) else None

    def _task(self, position: int, entry: ProtocolEntry, problems: list[str], notes: list[str]) -> TaskContent | None:
        """The task document the state document names: it hashes to that id and says it belongs
        to this state (instance, state name, entered event)."""
        state = self.trace.content(position)
        if state is None or state.task_id is None:
            if entry.task_data and state is not None:
                problems.append("listed with task_data, but its state document names no task document")
            tasks = self.trace.task_states
            if state is not None and tasks is not None and state.state_name in tasks:
                notes.append(
                    "what ran not checked: the model's state runs a task, but its state document names no task "
                    "document (tracked before task documents, or left out)"
                )
            return None
        if not entry.task_data:
            problems.append(f"its state document names task document {short(state.task_id)}, the protocol lists none")
            return None
        fetched = self.trace.tasks.get(entry.task_data)
        if fetched is None or not fetched.ok:
            problems.append(f"task document: {fetched.error if fetched is not None else 'not fetched'}")
            return None
        if fetched.sha256 != state.task_id:
            problems.append(
                f"task document hashes to {short(fetched.sha256)}, not to the {short(state.task_id)} its state names"
            )
            return None
        task = fetched.content
        if isinstance(task, Malformed | Foreign):
            problems.append(f"task document {task.reason}")
            return None
        if not isinstance(task, TaskContent):
            problems.append("task document could not be read")
            return None
        instance = self.trace.protocol.instance_hash
        if task.instance_id != instance:
            problems.append(f"task document names instance {short(task.instance_id)}, not {short(instance)}")
        if task.state_name != state.state_name or task.event_id != state.event_id:
            problems.append(
                f"task document is of state {task.state_name[:60]!r} (event {task.event_id}), not of "
                f"{str(state.state_name)[:60]!r} (event {state.event_id})"
            )
        return task

    # ------------------------------------------------------------------ the document and what it says

    def _document(self, position: int, entry: ProtocolEntry, problems: list[str], notes: list[str]) -> None:
        fetched = self.trace.documents[position]
        if not fetched.ok:
            problems.append(f"state document: {fetched.error}")
            return
        if fetched.sha256 != entry.state_hash:
            problems.append(
                f"state document hashes to {short(fetched.sha256)}, not to its id {short(entry.state_hash)}"
            )
            return
        content = fetched.content
        if isinstance(content, Foreign):
            notes.append(f"content not checked: {content.reason}")
            return
        if isinstance(content, Malformed):
            problems.append(f"state document {content.reason}")
            return
        if not isinstance(content, StateContent):
            problems.append("state document could not be read")
            return
        instance = self.trace.protocol.instance_hash
        if content.instance_id != instance:
            problems.append(
                f"state document names instance {short(content.instance_id)}, not the protocol's {short(instance)}"
            )
        if content.seq != position:
            problems.append(f"state document says seq {content.seq}, listed at position {position}")
        expected = self.trace.ids[position - 1] if position else ""
        if content.previous_state_id != expected:
            if position == 0:
                problems.append(
                    f"state document names previous state {short(content.previous_state_id)}, but it is listed first"
                )
            else:
                problems.append(
                    f"state document names previous state {short(content.previous_state_id or None)}, "
                    f"the state listed before it is {short(expected)}"
                )
        previous = self.trace.content(position - 1)
        if previous is not None and content.attempt < previous.attempt:
            problems.append(
                f"state document says attempt {content.attempt} after a state of attempt {previous.attempt}"
            )
        if self.chain is not None:
            low, high = _attempt_range(self.chain.ends, position)
            if content.attempt < low or (high is not None and content.attempt > high):
                belongs = (
                    f"attempt {low}"
                    if high == low
                    else f"attempts {low} to {high}"
                    if high is not None
                    else f"attempt {low} or later"
                )
                problems.append(
                    f"state document says attempt {content.attempt}, but by the chain's attempt ends "
                    f"seq {position} belongs to {belongs}"
                )

    # ------------------------------------------------------------------ registration

    def _listed_fields(self, entry: ProtocolEntry, block: int, transaction: str, problems: list[str]) -> None:
        assert self.chain is not None
        if entry.block_nr != block:
            problems.append(f"block_nr {entry.block_nr} but registered in block {block}")
        if entry.transaction_hash != transaction:
            problems.append(f"transaction_hash {short(entry.transaction_hash)} but registered by {short(transaction)}")
        chain_time = self.chain.block_times.get(block)
        if chain_time is not None and entry.timestamp != chain_time:
            problems.append(f"timestamp {entry.timestamp} but block {block} has {chain_time}")
        sender = self.chain.senders.get(transaction)
        if sender is not None and entry.client_address != sender:
            problems.append(
                f"client_address 0x{entry.client_address} is not 0x{sender}, who sent transaction {short(transaction)}"
            )

    def _direct(self, position: int, entry: ProtocolEntry, problems: list[str]) -> str:
        chain = self.chain
        assert chain is not None
        if entry.merkle_root:
            problems.append("listed with a Merkle root, but the instance records its states directly on chain")
        event = chain.states_by_seq.get(position)
        if event is None or event.state_id != entry.state_hash:
            elsewhere = chain.seqs_by_state.get(entry.state_hash)
            if elsewhere is not None:
                problems.append(f"registered at seq {elsewhere}, listed at position {position}: out of order")
            elif event is not None:
                problems.append(
                    f"not registered for this instance at seq {position} (seq {position} on chain is {short(event.state_id)})"
                )
            else:
                problems.append(f"not registered on chain for this instance of owner 0x{chain.owner}")
            return ""
        self._listed_fields(entry, event.block, event.transaction, problems)
        holder = chain.holder_of_key(event.key)
        sender = chain.senders.get(event.transaction)
        if holder is None or sender is None:
            problems.append(f"the sender of transaction {short(event.transaction)} is unknown")
            return ""
        if not chain.acts_for(holder, sender, event.position):
            problems.append(
                f"registered by 0x{sender}, neither the owner 0x{holder.owner} nor an operator it had approved "
                f"at block {event.block}"
            )
        return f"seq {position}, block {event.block}" + self._by(holder.owner, sender, holder.until)

    @staticmethod
    def _by(owner: str, sender: str, transfer: Transfer | None) -> str:
        text = "" if sender == owner else f", by operator 0x{sender} of 0x{owner}"
        if transfer is not None:
            text += f", under the previous owner 0x{owner} (before the transfer in block {transfer.block})"
        return text

    def _anchored(self, position: int, entry: ProtocolEntry, problems: list[str]) -> str:
        chain = self.chain
        assert chain is not None
        root, proof = entry.merkle_root, entry.merkle_proof
        if not root or proof is None:
            problems.append("no merkle_root and merkle_proof, but the instance's states are anchored on chain")
            return ""
        if len(proof) > MAX_PROOF_LENGTH:
            problems.append(f"merkle_proof has {len(proof)} hashes, more than {MAX_PROOF_LENGTH}")
            return ""
        leaf = state_leaf(chain.execution_id, entry.state_hash, position)
        if not verify_proof(leaf, [bytes.fromhex(p) for p in proof], bytes.fromhex(root)):
            problems.append(f"Merkle proof does not lead from (execution, state, seq {position}) to root {short(root)}")
        anchorings = chain.anchorings.get(root, [])
        chosen = next((a for a in anchorings if a.transaction == entry.transaction_hash), None)
        if not anchorings:
            problems.append(f"root {short(root)} is not anchored on chain")
            return ""
        if chosen is None:
            shown = ", ".join(f"{short(a.transaction)} by 0x{a.submitter}" for a in anchorings[:3])
            problems.append(
                f"root {short(root)} was not anchored in transaction {short(entry.transaction_hash)} (anchored in {shown})"
            )
            return ""
        self._listed_fields(entry, chosen.block, chosen.transaction, problems)
        holder = chain.holder_at(chosen.position)
        if not chain.acts_for(holder, chosen.submitter, chosen.position):
            problems.append(
                f"root {short(root)} was anchored by 0x{chosen.submitter}, neither the owner 0x{holder.owner} "
                f"nor an operator it had approved at block {chosen.block}"
            )
        elif chain.anchor_records.get((chosen.submitter, root)) is None:
            problems.append(f"anchorOf(0x{chosen.submitter}, {short(root)}) holds no anchor")
        self._pinned_in_time(position, chosen, problems)
        return f"anchored under {short(root)}, block {chosen.block}" + self._by(
            holder.owner, chosen.submitter, holder.until
        )

    def _pinned_in_time(self, position: int, anchoring: Anchoring, problems: list[str]) -> None:
        """A state an end pinned must have been anchored before that end."""
        assert self.chain is not None
        pin = next((end for end in self.chain.ends if end.state_count > position), None)
        if pin is not None and anchoring.position > pin.position:
            problems.append(
                f"anchored in block {anchoring.block}, after {describe_end(pin)}, which pinned seq {position}"
            )


def judge_states(trace: Trace, view: ChainView | None) -> list[StateResult]:
    judge = StateJudge(trace, view)
    return [judge.judge(position) for position in range(len(trace.ids))]


@dataclass(frozen=True)
class StatesVerdict:
    """Check 2 as a whole, and how far the trace is pinned (for the report's status)."""

    check: CheckResult
    in_progress: bool = False


def _summary_of_rows(rows: list[StateResult]) -> str | None:
    failed = [row.position for row in rows if row.ok is False]
    if not failed:
        return None
    shown = ", ".join(str(p) for p in failed[:10]) + (" …" if len(failed) > 10 else "")
    return f"{len(failed)} of {len(rows)} states failed (positions {shown})"


def states_check(
    trace: Trace,
    rows: list[StateResult],
    view: ChainView | None,
    chain_id: int | None,
    contract: str | None,
    not_read: str,
) -> StatesVerdict:
    """Check 2 for the protocol as a whole (`not_read`: why the chain was not read, when `view` is None)."""
    protocol = trace.protocol
    problems = [problem for problem in (_summary_of_rows(rows),) if problem]
    if chain_id is not None and protocol.chain_id is not None and protocol.chain_id != chain_id:
        problems.append(f"protocol names chain id {protocol.chain_id}, verified on chain id {chain_id}")
    if contract is not None and protocol.contract_address is not None and protocol.contract_address != contract:
        problems.append(f"protocol names contract 0x{protocol.contract_address}, verified against 0x{contract}")
    if view is None:
        if problems:
            return StatesVerdict(CheckResult(CHECK_STATES, False, "; ".join(problems)))
        return StatesVerdict(CheckResult(CHECK_STATES, None, f"not checked: {not_read} (documents hash to their ids)"))
    instance = view.instance
    if view.moved_to is not None or (instance is not None and instance.status == Status.MOVED):
        moved = view.moved_to
        target = f"to 0x{moved.to_owner} in block {moved.block}" if moved else "away"
        problems.append(f"0x{view.owner} transferred the instance {target}: its record now lives under the new owner")
        return StatesVerdict(CheckResult(CHECK_STATES, False, "; ".join(problems)))
    if instance is None:
        others = (
            f" (it is registered under {', '.join('0x' + o for o in view.other_owners[:3])})"
            if view.other_owners
            else ""
        )
        problems.append(
            f"execution {short(view.execution_id)} is not registered under the owner 0x{view.owner}{others}"
        )
        return StatesVerdict(CheckResult(CHECK_STATES, False, "; ".join(problems)))
    mode = "direct" if instance.mode == Mode.DIRECT else "anchored"
    if protocol.mode is not None and protocol.mode != mode:
        problems.append(f"protocol says mode {protocol.mode}, the instance is {mode} on chain")
    if view.duplicate_seqs:
        problems.append(f"the chain holds seq {view.duplicate_seqs[0]} twice for this instance")
    listed = len(trace.ids)
    heads = trace.heads
    assert heads is not None  # the chain is read only with an execution id
    if instance.mode == Mode.DIRECT:
        if listed != instance.state_count:
            problems.append(f"chain has {instance.state_count} registered states, the protocol lists {listed}")
        elif heads[listed] != instance.head:
            problems.append("the listed states do not hash to the contract's head (order or content differs)")
    for end in view.ends:
        count = end.state_count
        if count > listed:
            problems.append(f"{describe_end(end)} pinned {count} states, the protocol lists {listed}")
        elif heads[count] != end.head:
            problems.append(f"the first {count} listed states do not chain to the head {describe_end(end)} pinned")
    final = next((end for end in reversed(view.ends) if end.final), None)
    pinned = max((end.state_count for end in view.ends), default=0)
    if instance.mode == Mode.ANCHORED and final is not None and listed > final.state_count:
        problems.append(f"the protocol lists {listed - final.state_count} states after {describe_end(final)}")
    if instance.status == Status.FINAL and final is None:
        problems.append("the instance is final on chain but no termination event was found")
    if problems:
        return StatesVerdict(CheckResult(CHECK_STATES, False, "; ".join(problems)))
    pins = f"; {len(view.ends)} attempt end(s) pin their prefixes" if view.ends else ""
    if instance.mode == Mode.DIRECT:
        reason = f"{listed} states in order; count {listed} and head {short(heads[listed])} match the chain{pins}"
        return StatesVerdict(CheckResult(CHECK_STATES, True, reason))
    if listed > pinned:
        reason = (
            f"in progress: {listed} anchored states, {pinned} of them pinned by an attempt end; the last "
            f"{listed - pinned} are anchored but no end pins them yet, so the owner could still pin another trace"
        )
        return StatesVerdict(CheckResult(CHECK_STATES, None, reason), in_progress=True)
    reason = f"{listed} anchored states in order, all pinned: count {pinned} and head {short(heads[listed])}{pins}"
    return StatesVerdict(CheckResult(CHECK_STATES, True, reason))
