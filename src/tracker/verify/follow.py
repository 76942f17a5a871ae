"""Following an instance: a verdict for each state as it is registered."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from tracker.chain import logs
from tracker.chain.contract import TrackerContract, instance_key
from tracker.verify.report import StateResult, VerifyOptions
from tracker.verify.verifier import verify_protocol


def follow_instance(
    url: str,
    tracker: TrackerContract,
    owner: str,
    execution_id: str,
    options: VerifyOptions | None = None,
    poll_seconds: float = 2.0,
    publish_grace_seconds: float = 30.0,
    max_states: int | None = None,
    until: Callable[[], bool] | None = None,
    known_seqs: Sequence[int] = (),
    url_given_by_user: bool = True,
) -> Iterator[StateResult]:
    """Yields a verdict for each state registered for `owner`'s instance of the execution from now on.

    Each poll reads the instance's new StateRegistered events and, when there are new ones,
    verifies the protocol again (the publisher may lag the chain a little): a state is judged as
    soon as the protocol lists it, with everything before it, or failed when it is still missing
    after `publish_grace_seconds`. Stops after `max_states` verdicts or when `until()` is true;
    runs until interrupted otherwise. Anchored states emit no StateRegistered event: following
    applies to directly registered states.
    """
    from ape import chain

    options = options or VerifyOptions()
    key = instance_key(owner, execution_id)
    seen = set(known_seqs)
    pending: dict[int, tuple[str, float]] = {}
    next_block = tracker.deployment_block()
    produced = 0
    while True:
        head_block = int(chain.blocks.height)
        if head_block >= next_block:
            for event in logs.events(tracker.address, "StateRegistered", [key], next_block, head_block):
                seq = int(event.args["seq"])
                if seq not in seen and seq not in pending:
                    pending[seq] = (bytes(event.args["state"]).hex(), time.monotonic())
            next_block = head_block + 1
        if pending:
            report = verify_protocol(url, tracker, options, url_given_by_user=url_given_by_user)
            listed = {row.position: row for row in report.states}
            now = time.monotonic()
            for seq in sorted(pending):
                state_id, first_seen = pending[seq]
                if seq in listed:
                    result = listed[seq]
                elif now - first_seen > publish_grace_seconds:
                    reason = f"registered on chain but not in the protocol after {publish_grace_seconds:g} s"
                    result = StateResult(seq, seq, state_id, False, reason)
                else:
                    continue
                seen.add(seq)
                pending.pop(seq)
                produced += 1
                yield result
                if max_states is not None and produced >= max_states:
                    return
        if until is not None and until():
            return
        time.sleep(poll_seconds)
