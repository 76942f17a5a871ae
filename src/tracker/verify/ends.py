"""Check 3: the model and instance documents, the instance's registration, and every attempt end
(the chain's AttemptEnded / InstanceTerminated events against the protocol's `attempts` and the
end documents); and the instance's status for the report."""

from __future__ import annotations

from dataclasses import dataclass

from tracker.chain.contract import Mode, Status
from tracker.documents.protocol import AttemptEntry
from tracker.verify.chain import ChainView, EndEvent
from tracker.verify.content import REDRIVABLE_STATUSES, Content, EndContent, Foreign, InstanceContent, Malformed
from tracker.verify.download import Fetched
from tracker.verify.report import (
    CHECK_MODEL,
    STATUS_ENDED,
    STATUS_FINAL,
    STATUS_MOVED,
    STATUS_RUNNING,
    STATUS_UNREGISTERED,
    AttemptResult,
    CheckResult,
    short,
)
from tracker.verify.states import Trace, describe_end


def document_problem(fetched: Fetched[Content] | Fetched[None], expected_id: str, what: str) -> str | None:
    """None when the document was fetched and hashes to its id, else why not."""
    if not fetched.ok:
        return f"{what} document: {fetched.error}"
    if fetched.sha256 != expected_id:
        return f"{what} document hashes to {short(fetched.sha256)}, not to its id {short(expected_id)}"
    return None


@dataclass
class EndsVerdict:
    check: CheckResult
    attempts: list[AttemptResult]
    status: str | None
    status_text: str | None


def _end_content_problems(
    content: Content | None, trace: Trace, end: EndEvent | None, listed: AttemptEntry
) -> list[str]:
    """What an end document says against the chain's record of the end and the listed trace."""
    if isinstance(content, Foreign):
        return []
    if isinstance(content, Malformed):
        return [f"end document {content.reason}"]
    if not isinstance(content, EndContent):
        return ["end document could not be read"]
    problems = []
    if content.instance_id != trace.protocol.instance_hash:
        problems.append(
            f"end document names instance {short(content.instance_id)}, not the protocol's {short(trace.protocol.instance_hash)}"
        )
    attempt = end.attempt if end is not None else listed.attempt
    count = end.state_count if end is not None else listed.state_count
    if content.attempt != attempt:
        problems.append(f"end document says attempt {content.attempt}, the end is of attempt {attempt}")
    if content.state_count != count:
        problems.append(f"end document says {content.state_count} states, the end pinned {count}")
    elif count <= len(trace.ids):
        last = trace.ids[count - 1] if count else ""
        if content.last_state_id != last:
            problems.append(
                f"end document names last state {short(content.last_state_id or None)}, "
                f"the {count}th listed state is {short(last or None)}"
            )
    final = end.final if end is not None else listed.final
    if not final and content.status not in REDRIVABLE_STATUSES:
        problems.append(
            f"end document says {content.status}, but the chain records this end as not final (only a failed, "
            "timed out or aborted execution can be redriven)"
        )
    return problems


def _attempt_row(
    end: EndEvent | None,
    listed: AttemptEntry | None,
    document: Fetched[Content] | None,
    trace: Trace,
    view: ChainView | None,
) -> AttemptResult:
    if listed is None:
        assert end is not None
        what = "termination" if end.final else f"end of attempt {end.attempt}"
        return AttemptResult(
            end.attempt,
            end.end_id,
            end.final,
            False,
            f"the chain recorded the {what} in block {end.block} with end document {short(end.end_id)}; "
            "the protocol does not list it",
        )
    problems: list[str] = []
    notes: list[str] = []
    if document is not None:
        problem = document_problem(document, listed.end_hash, "end")
        if problem:
            problems.append(problem)
        else:
            problems += _end_content_problems(document.content, trace, end, listed)
            if isinstance(document.content, Foreign):
                notes.append(f"content not checked: {document.content.reason}")
    if view is not None and end is None:
        problems.append(f"the protocol lists the end of attempt {listed.attempt}, which the chain never recorded")
    elif end is not None:
        assert view is not None
        expected: dict[str, tuple[object, object]] = {
            "attempt": (listed.attempt, end.attempt),
            "end_hash": (listed.end_hash, end.end_id),
            "state_count": (listed.state_count, end.state_count),
            "accumulator_head": (listed.accumulator_head, end.head),
            "block_nr": (listed.block_nr, end.block),
            "transaction_hash": (listed.transaction_hash, end.transaction),
            "final": (listed.final, end.final),
        }
        chain_time = view.block_times.get(end.block)
        if chain_time is not None:
            expected["timestamp"] = (listed.timestamp, chain_time)
        for name, (said, recorded) in expected.items():
            if said != recorded:
                if isinstance(said, str) and isinstance(recorded, str):
                    shown = (short(said), short(recorded))
                else:
                    shown = (str(said).lower(), str(recorded).lower())
                problems.append(f"{name} {shown[0]}, but the chain recorded {shown[1]}")
    attempt = end.attempt if end is not None else listed.attempt
    final = end.final if end is not None else listed.final
    if problems:
        return AttemptResult(attempt, listed.end_hash, final, False, "; ".join(problems))
    status = document.content.status if document is not None and isinstance(document.content, EndContent) else None
    ended = f"{status} " if status else ""
    if end is None:
        reason = f"attempt {attempt} ended {ended}after {listed.state_count} states; on-chain record not checked"
        return AttemptResult(attempt, listed.end_hash, final, None, reason)
    reason = (
        f"{'final' if final else 'not final'}: attempt {attempt} ended {ended}after {end.state_count} states, "
        f"{describe_end(end).split(' (')[0].removeprefix('the ')} in block {end.block}"
    )
    if notes:
        return AttemptResult(attempt, listed.end_hash, final, None, f"{reason}; " + "; ".join(notes))
    return AttemptResult(attempt, listed.end_hash, final, True, reason)


def attempt_rows(
    trace: Trace, view: ChainView | None, end_documents: dict[str, Fetched[Content]]
) -> list[AttemptResult]:
    """One row per attempt end: each end the chain recorded with the protocol's entry of the same
    attempt and finality, then the protocol's entries the chain has no end for."""
    listed = trace.protocol.attempts
    ends = view.ends if view is not None and view.instance is not None else []
    unmatched = list(range(len(listed)))
    rows = []
    for end in ends:
        index = next((i for i in unmatched if (listed[i].attempt, listed[i].final) == (end.attempt, end.final)), None)
        entry = listed[index] if index is not None else None
        if index is not None:
            unmatched.remove(index)
        document = end_documents.get(entry.end_data) if entry is not None else None
        rows.append(_attempt_row(end, entry, document, trace, view))
    for index in unmatched:
        entry = listed[index]
        rows.append(_attempt_row(None, entry, end_documents.get(entry.end_data), trace, view))
    return rows


def status_of(trace: Trace, view: ChainView | None, in_progress: bool) -> tuple[str | None, str | None]:
    """The instance's status on chain: final, ended (still redrivable), running, moved, unregistered."""
    if view is None:
        return None, None
    instance = view.instance
    if view.moved_to is not None or (instance is not None and instance.status == Status.MOVED):
        return STATUS_MOVED, f"transferred away from 0x{view.owner}"
    if instance is None:
        return STATUS_UNREGISTERED, f"not registered under 0x{view.owner}"
    last = view.ends[-1] if view.ends else None
    if instance.status == Status.FINAL and last is not None:
        return STATUS_FINAL, f"final (attempt {last.attempt}, {last.state_count} states)"
    if instance.status == Status.FINAL:
        return STATUS_FINAL, "final"
    listed = len(trace.ids)
    if last is not None and not in_progress and listed == last.state_count:
        if instance.mode == Mode.DIRECT and instance.state_count != last.state_count:
            return STATUS_RUNNING, f"running (attempt {last.attempt + 1})"
        return STATUS_ENDED, f"ended, attempt {last.attempt}, still redrivable"
    attempt = last.attempt + 1 if last is not None else 0
    return STATUS_RUNNING, f"running (attempt {attempt}, {listed} states so far)"


def model_check(
    trace: Trace,
    model_document: Fetched[Content],
    instance_document: Fetched[Content],
    end_documents: dict[str, Fetched[Content]],
    view: ChainView | None,
    not_read: str,
    in_progress: bool,
) -> EndsVerdict:
    """Check 3, the attempt rows and the status (`not_read`: why the chain was not read)."""
    protocol = trace.protocol
    problems = [
        problem
        for problem in (
            document_problem(model_document, protocol.model_hash, "model"),
            document_problem(instance_document, protocol.instance_hash, "instance"),
        )
        if problem
    ]
    notes: list[str] = []
    content = instance_document.content if instance_document.ok else None
    if isinstance(content, Foreign):
        notes.append(f"instance document content not checked: {content.reason}")
    elif isinstance(content, Malformed):
        problems.append(f"instance document {content.reason}")
    elif isinstance(content, InstanceContent) and instance_document.sha256 == protocol.instance_hash:
        if content.model_id != protocol.model_hash:
            problems.append(
                f"instance document names model {short(content.model_id)}, the protocol {short(protocol.model_hash)}"
            )
        if protocol.execution_id is not None and protocol.execution_id != content.execution_id:
            problems.append(
                f"protocol names execution {short(protocol.execution_id)}, the instance document's ARN and start "
                f"date give {short(content.execution_id)}"
            )
    if protocol.end_hash is not None and not protocol.attempts:
        problems.append("the protocol names an end document but lists no attempts")
    elif protocol.end_hash is not None and protocol.end_hash != protocol.attempts[-1].end_hash:
        problems.append(f"end_hash {short(protocol.end_hash)} is not the last attempt's end document")
    rows = attempt_rows(trace, view, end_documents)
    failed = [row for row in rows if row.ok is False]
    if failed:
        problems.append(f"{len(failed)} of {len(rows)} attempt ends failed")
    status, status_text = status_of(trace, view, in_progress)
    if view is None:
        if problems:
            return EndsVerdict(CheckResult(CHECK_MODEL, False, "; ".join(problems)), rows, status, status_text)
        reason = f"not checked on chain: {not_read} (documents hash to their ids)"
        return EndsVerdict(CheckResult(CHECK_MODEL, None, reason), rows, status, status_text)
    instance = view.instance
    registration = view.registration
    if instance is not None and instance.status != Status.MOVED:
        if registration is None:
            problems.append("no InstanceRegistered event of this instance was found")
        else:
            if registration.model != protocol.model_hash:
                problems.append(
                    f"the instance was registered with model {short(registration.model)}, not {short(protocol.model_hash)}"
                )
            if registration.instance_document != protocol.instance_hash:
                problems.append(
                    f"the instance was registered with instance document {short(registration.instance_document)}, "
                    f"not {short(protocol.instance_hash)}"
                )
        if not any(view.model_registered_at.values()):
            problems.append(f"model {short(protocol.model_hash)} is not registered under 0x{view.owner}")
        final_end = next((end for end in reversed(view.ends) if end.final), None)
        if instance.status == Status.FINAL and not any(a.final for a in protocol.attempts):
            where = (
                f" (terminated in block {final_end.block} with end document {short(final_end.end_id)})"
                if final_end
                else ""
            )
            problems.append(f"the instance is final on chain{where}, but the protocol lists no final end document")
        if protocol.final is True and instance.status != Status.FINAL:
            problems.append("the protocol says the instance is final, but it is open on chain")
    elif instance is None or instance.status == Status.MOVED:
        problems.append(f"the instance is not on chain under 0x{view.owner} (see check 2)")
    if problems:
        return EndsVerdict(CheckResult(CHECK_MODEL, False, "; ".join(problems)), rows, status, status_text)
    reason = f"model and instance documents hash to their ids; registered together under 0x{view.owner}; {status_text}"
    if notes:
        return EndsVerdict(CheckResult(CHECK_MODEL, None, f"{reason}; " + "; ".join(notes)), rows, status, status_text)
    return EndsVerdict(CheckResult(CHECK_MODEL, True, reason), rows, status, status_text)
