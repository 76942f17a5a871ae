"""What each execution needs on chain now, as an ordered list of contract calls. No I/O: the chain
record and the checkpoint come in, calls come out.

The chain decides what is new. A direct-mode instance's next state is at its on-chain count
(`fromSeq`), its next attempt end at its on-chain attempt count, so a resend reverts instead of
duplicating. Big traces are split into calls of at most `max_states_per_call` states. Every
attempt end is registered with the states entered before it: `endAttempt` while Step Functions
can still redrive the execution, `terminate` once it cannot (or right away for a success); an
instance whose last end became final later (no longer redrivable) gets a `terminate` for that
same end. An anchored instance gets its states as Merkle leaves of the poll's root and each
attempt end as `closeAnchored` with the count and head of the trace so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracker.chain.contract import InstanceRecord, Mode, PreparedCall, TrackerContract
from tracker.errors import TrackerError
from tracker.tracking.build import AttemptDocuments, ExecutionDocuments
from tracker.tracking.checkpoints import Checkpoint


class TraceDivergedError(TrackerError):
    """The chain holds states for an instance that differ from the ones built from its history."""


@dataclass
class Step:
    """One contract call of one execution and what it registers once mined."""

    call: PreparedCall
    states: list[tuple[int, str]] = field(default_factory=list)  # (seq, state id), direct mode
    registers_instance: bool = False
    end: AttemptDocuments | None = None
    final: bool = False


@dataclass
class Plan:
    """Everything one execution needs now: its steps in order, and (anchored) the leaves to anchor."""

    documents: ExecutionDocuments
    checkpoint: Checkpoint
    steps: list[Step] = field(default_factory=list)
    leaves: list[tuple[int, str]] = field(default_factory=list)

    @property
    def execution_arn(self) -> str:
        return self.documents.execution.execution_arn


def check_record(documents: ExecutionDocuments, record: InstanceRecord | None, anchored: bool) -> None:
    """Raises `TraceDivergedError` when the chain's record cannot be a prefix of this history."""
    if record is None:
        return
    arn = documents.execution.execution_arn
    wanted_mode = Mode.ANCHORED if anchored else Mode.DIRECT
    if record.mode != wanted_mode:
        raise TraceDivergedError(
            f"execution {arn} is registered in {record.mode.name.lower()} mode on chain; "
            f"track it in that mode (--anchor {'on' if record.mode == Mode.ANCHORED else 'off'})"
        )
    count = record.state_count
    if count > len(documents.states):
        raise TraceDivergedError(
            f"instance of {arn} has {count} states on chain but its history yields {len(documents.states)}"
        )
    if record.mode == Mode.DIRECT and record.head != documents.head(count):
        raise TraceDivergedError(
            f"instance of {arn} has {count} states on chain that differ from the ones built from its history "
            "(tracked with another --include-data, or another model or instance document)"
        )
    if record.attempts > len(documents.attempts):
        raise TraceDivergedError(
            f"instance of {arn} has {record.attempts} attempt ends on chain, its history {len(documents.attempts)}"
        )


def _chunks(states: list[tuple[int, str]], size: int) -> list[list[tuple[int, str]]]:
    return [states[start : start + size] for start in range(0, len(states), size)]


def plan_direct(
    documents: ExecutionDocuments,
    checkpoint: Checkpoint,
    record: InstanceRecord | None,
    contract: TrackerContract,
    owner: str,
    max_states_per_call: int,
    ends_carry_states: bool = True,
) -> Plan:
    """The calls that bring a direct-mode instance from its chain record to its history.

    With `ends_carry_states` False every end gets a call of its own (the prototype's one
    transaction per state, then the termination)."""
    check_record(documents, record, anchored=False)
    plan = Plan(documents, checkpoint)
    if record is not None and record.final:
        return plan
    x = documents.execution_id
    ids = documents.state_ids
    cursor = record.state_count if record is not None else 0
    registered = record is not None
    chain_attempts = record.attempts if record is not None else 0

    def add_states(until: int) -> list[tuple[int, str]]:
        """Calls for the states before `until` except the last chunk, which is returned."""
        nonlocal cursor, registered
        pending = [(seq, ids[seq]) for seq in range(cursor, until)]
        chunks = _chunks(pending, max_states_per_call) or [[]]
        for chunk in chunks[:-1]:
            plan.steps.append(_states_step(contract, owner, documents, chunk, cursor, registered))
            registered = True
            cursor += len(chunk)
        return chunks[-1]

    new_ends = list(documents.attempts[chain_attempts:])
    for index, end in enumerate(new_ends):
        last_chunk = add_states(end.state_count)
        final = documents.final and index == len(new_ends) - 1
        if last_chunk and not ends_carry_states:
            plan.steps.append(_states_step(contract, owner, documents, last_chunk, cursor, registered))
            registered = True
            cursor += len(last_chunk)
            last_chunk = []
        if not registered:
            plan.steps.append(_states_step(contract, owner, documents, last_chunk, cursor, False))
            registered = True
            cursor += len(last_chunk)
            last_chunk = []
        make = contract.terminate_call if final else contract.end_attempt_call
        call = make(owner, x, cursor, [i for _, i in last_chunk], end.attempt, end.end.id)
        plan.steps.append(Step(call, last_chunk, end=end, final=final))
        cursor += len(last_chunk)
    if not new_ends and documents.final and documents.attempts and record is not None:
        # The last end was registered while a redrive was still possible; now it is final.
        end = documents.attempts[-1]
        call = contract.terminate_call(owner, x, cursor, [], end.attempt, end.end.id)
        plan.steps.append(Step(call, [], end=end, final=True))
        return plan
    last_chunk = add_states(len(ids))
    if last_chunk or not registered:
        plan.steps.append(_states_step(contract, owner, documents, last_chunk, cursor, registered))
    return plan


def _states_step(
    contract: TrackerContract,
    owner: str,
    documents: ExecutionDocuments,
    chunk: list[tuple[int, str]],
    from_seq: int,
    registered: bool,
) -> Step:
    state_ids = [i for _, i in chunk]
    if registered:
        call = contract.register_states_call(owner, documents.execution_id, from_seq, state_ids)
        return Step(call, chunk)
    call = contract.register_execution_call(
        owner, documents.execution_id, documents.model_id, documents.instance_id, state_ids
    )
    return Step(call, chunk, registers_instance=True)


def plan_anchored(
    documents: ExecutionDocuments,
    checkpoint: Checkpoint,
    record: InstanceRecord | None,
    contract: TrackerContract,
    owner: str,
) -> Plan:
    """The calls (and leaves) that bring an anchored instance from its record to its history.

    The leaves are the states not yet anchored by us (the checkpoint knows which); the steps are
    the registration (if new) and the attempt ends, each stating the count and head so far.
    """
    check_record(documents, record, anchored=True)
    plan = Plan(documents, checkpoint)
    if record is not None and record.final:
        return plan
    ids = documents.state_ids
    anchored = {state.seq for state in checkpoint.states}
    plan.leaves = [(seq, ids[seq]) for seq in range(len(ids)) if seq not in anchored]
    x = documents.execution_id
    if record is None:
        call = contract.register_anchored_execution_call(owner, x, documents.model_id, documents.instance_id)
        plan.steps.append(Step(call, registers_instance=True))
    chain_attempts = record.attempts if record is not None else 0
    new_ends = list(documents.attempts[chain_attempts:])
    for index, end in enumerate(new_ends):
        final = documents.final and index == len(new_ends) - 1
        plan.steps.append(_close_step(contract, owner, documents, end, final))
    if not new_ends and documents.final and documents.attempts and record is not None:
        plan.steps.append(_close_step(contract, owner, documents, documents.attempts[-1], True))
    return plan


def _close_step(
    contract: TrackerContract, owner: str, documents: ExecutionDocuments, end: AttemptDocuments, final: bool
) -> Step:
    call = contract.close_anchored_call(
        owner,
        documents.execution_id,
        end.attempt,
        end.state_count,
        documents.head(end.state_count),
        end.end.id,
        final,
    )
    return Step(call, end=end, final=final)
