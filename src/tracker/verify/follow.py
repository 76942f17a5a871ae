"""Following an instance: a verdict for each state as it is registered."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence

from tracker.chain.contract import TrackerContract
from tracker.documents.ids import normalize_id
from tracker.documents.protocol import ProtocolEntry
from tracker.verify.chain import StateEvent, read_chain, state_events
from tracker.verify.checks import fetch_protocol, judge_state
from tracker.verify.download import Downloader
from tracker.verify.report import StateResult, VerifyOptions


def follow_instance(
    url: str,
    tracker: TrackerContract,
    instance_id: str,
    options: VerifyOptions | None = None,
    poll_seconds: float = 2.0,
    publish_grace_seconds: float = 30.0,
    max_states: int | None = None,
    until: Callable[[], bool] | None = None,
    known_seqs: Sequence[int] = (),
) -> Iterator[StateResult]:
    """Yields a verdict for each state registered for the instance from now on, as it appears.

    Each poll reads the instance's new StateRegistered events and, when there are new ones, the
    protocol again (the publisher may lag the chain a little): a state is judged as soon as the
    protocol lists it, or failed when it is still missing after `publish_grace_seconds`. Stops
    after `max_states` verdicts or when `until()` is true; runs until interrupted otherwise.
    """
    options = options or VerifyOptions()
    instance_id = normalize_id(instance_id, "instance id")
    seen = set(known_seqs)
    pending: dict[int, tuple[StateEvent, float]] = {}
    next_block = 0
    produced = 0
    from ape import chain

    with Downloader(options.timeout, options.concurrency) as downloader:
        while True:
            head_block = int(chain.blocks.height)
            if head_block >= next_block:
                for event in state_events(tracker, instance_id, from_block=next_block):
                    if event.seq not in seen and event.seq not in pending:
                        pending[event.seq] = (event, time.monotonic())
                next_block = head_block + 1
            if pending:
                for result in _judge_pending(
                    url, tracker, instance_id, pending, downloader, options, publish_grace_seconds
                ):
                    seen.add(result.seq)
                    pending.pop(result.seq, None)
                    produced += 1
                    yield result
                    if max_states is not None and produced >= max_states:
                        return
            if until is not None and until():
                return
            time.sleep(poll_seconds)


def _judge_pending(
    url: str,
    tracker: TrackerContract,
    instance_id: str,
    pending: dict[int, tuple[StateEvent, float]],
    downloader: Downloader,
    options: VerifyOptions,
    grace: float,
) -> list[StateResult]:
    _tls, protocol, _download = fetch_protocol(url, downloader, options)
    listed: dict[int, tuple[int, ProtocolEntry]] = {}
    if protocol is not None and protocol.instance_hash == instance_id:
        for position, entry in enumerate(protocol.instance_protocol):
            listed.setdefault(entry.seq if entry.seq is not None else position, (position, entry))
    results: list[StateResult] = []
    ready = [seq for seq in sorted(pending) if seq in listed]
    if ready and protocol is not None:
        view = read_chain(tracker, protocol, batched=True)
        futures = {
            seq: downloader.submit(urllib.parse.urljoin(url, listed[seq][1].state_data), options.max_document_bytes)
            for seq in ready
        }
        for seq in ready:
            position, entry = listed[seq]
            results.append(judge_state(position, entry, futures[seq].result(), view, instance_id))
    now = time.monotonic()
    for seq in sorted(pending):
        event, first_seen = pending[seq]
        if seq not in listed and now - first_seen > grace:
            results.append(
                StateResult(
                    seq, seq, event.state_id, False, f"registered on chain but not in the protocol after {grace:g} s"
                )
            )
    return sorted(results, key=lambda result: result.seq)
