"""Independent verification of a published instance protocol: `verify_protocol` runs the checks.

1. the protocol was fetched over TLS from its URL, within its limits (the certificate is kept);
2. each listed state: its document hashes to its id and says what its position says (instance,
   seq, previous state, attempt); it is registered for the owner's instance of the execution at
   that position (a StateRegistered event, or a Merkle proof to a root the owner or its operator
   anchored), by the owner or an operator approved at that block; and the listed trace matches
   the chain's count and head and every (count, head) an attempt end pinned;
3. the model and instance documents hash to their ids and agree (model id, execution id); the
   instance was registered with them; each attempt end on chain is listed with its end document,
   which agrees with it (attempt, status, count, last state); a final instance has its end;
4. the owner and its ENS name resolve to each other and the name's `url` record is the origin;
5. the presented certificate's fingerprint is the one the owner registered and signed.

Everything on chain is read under the owner the protocol names, the one checks 4 and 5
authenticate, at the execution id recomputed from the instance document. The contract is the one
given (`tracker`: the canonical address, or `--contract`), never one the protocol names.

Each result is passed, failed or not checked (with the reason); only a report without failures
and without unchecked items has passed. Documents download concurrently while the chain is read
in batched calls; `VerifyOptions(batched=False)` makes the same checks one call per state, the
baseline the benchmark compares against.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from tracker.chain.contract import Mode, TrackerContract
from tracker.documents.protocol import InstanceProtocol
from tracker.verify.chain import ChainView, read_chain
from tracker.verify.checks import certificate_check, ens_check, fetch_protocol, not_checked_after_fetch
from tracker.verify.content import (
    ChildrenContent,
    Content,
    InstanceContent,
    ModelContent,
    StateContent,
    read_children,
    read_end,
    read_instance,
    read_model,
    read_state,
    read_task,
)
from tracker.verify.download import Deadline, DownloadBatch, Downloader, Fetched, HostPolicy, Job, origin_of
from tracker.verify.ends import model_check
from tracker.verify.report import CHECK_CHILDREN, CHECK_ENS, CheckResult, VerificationReport, VerifyOptions
from tracker.verify.states import StateJudge, Trace, judge_states, states_check

NO_CHAIN = "no chain reachable"
_background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify-ens")


@dataclass
class _Downloads:
    """The documents of one protocol, fetched once per distinct URL."""

    model: Fetched[Content]
    instance: Fetched[Content]
    states: list[Fetched[Content]]
    ends: dict[str, Fetched[Content]]
    tasks: dict[str, Fetched[Content]]


def _owner_of(protocol: InstanceProtocol) -> str | None:
    """The owner the protocol names; for the published prototype's format (no `owner`), the one
    address its entries name, when they all name the same."""
    if protocol.owner is not None:
        return protocol.owner
    clients = {entry.client_address for entry in protocol.instance_protocol}
    return clients.pop() if len(clients) == 1 else None


class _Fetcher:
    """Collects each distinct (URL, use) once, then downloads them all in one batch (or one after
    another, for the one-call-per-state baseline)."""

    def __init__(self, base_url: str, downloader: Downloader, options: VerifyOptions):
        self.base_url = base_url
        self.downloader = downloader
        self.options = options
        self.index: dict[tuple[str, str], int] = {}
        self.jobs: list[Job] = []
        self.results: list[Fetched[Any]] = []
        self.done: dict[int, Fetched[Any]] = {}

    def add(self, link: str, kind: str) -> None:
        key = (urllib.parse.urljoin(self.base_url, link), kind)
        if key in self.index:
            return
        options = self.options
        readers = {
            "state": read_state,
            "end": read_end,
            "instance": read_instance,
            "task": read_task,
            "model": read_model,
            "children": read_children,
        }
        parse = partial(readers[kind], max_depth=options.max_depth) if kind in readers else None
        # the model is read only for its Task states: within the size of any document, never refused for its size
        keep = (options.max_document_bytes if kind == "model" else options.content_limit) if parse is not None else 0
        self.index[key] = len(self.jobs)
        self.jobs.append(Job(key[0], options.max_document_bytes, parse, keep))

    def fetch_now(self, link: str, kind: str) -> Fetched[Any]:
        """One document right away (the instance document, when the protocol names no execution id)."""
        self.add(link, kind)
        index = self.index[(urllib.parse.urljoin(self.base_url, link), kind)]
        job = self.jobs[index]
        self.done[index] = self.downloader.fetch(job.url, job.max_bytes, job.parse, job.keep_bytes)
        return self.done[index]

    def start(self) -> DownloadBatch | None:
        if self.options.batched:
            return self.downloader.start(self.jobs, self.done)
        self.results = [
            self.done.get(i) or self.downloader.fetch(j.url, j.max_bytes, j.parse, j.keep_bytes)
            for i, j in enumerate(self.jobs)
        ]
        return None

    def finish(self, batch: DownloadBatch | None) -> None:
        if batch is not None:
            self.results = batch.wait()

    def result(self, link: str, kind: str) -> Fetched[Any]:
        return self.results[self.index[(urllib.parse.urljoin(self.base_url, link), kind)]]


def verify_protocol(
    url: str,
    tracker: TrackerContract | None,
    options: VerifyOptions | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    connected: bool = True,
    url_given_by_user: bool = True,
    no_contract: str | None = None,
    aws_session: Any = None,
    ens_result: CheckResult | None = None,
) -> VerificationReport:
    """Runs the five checks on the protocol at `url` against `tracker`; with `aws_session`, also
    compares each state's recorded code with what Lambda and ECS say today (`tracker.verify.drift`).

    `tracker` None: no contract is known (`no_contract` says why) and, unless `connected` is
    False, the chain is still reached for ENS. `url_given_by_user`: the URL's own origin may be a
    private address (the user chose it); False for a URL found through ENS."""
    options = options or VerifyOptions()
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    policy = HostPolicy(options.allow_private_hosts)
    origin = origin_of(url)
    if url_given_by_user and origin is not None:
        policy.trust(origin)
    not_read = NO_CHAIN if not connected else (no_contract or "no InstanceTracker contract on this chain")
    chain_id = _chain_id() if connected else None
    concurrency = options.concurrency if options.batched else 1
    with Downloader(options.timeout, concurrency, Deadline(options.total_timeout), policy) as downloader:
        say(f"fetching {url}")
        fetched = fetch_protocol(url, downloader, options)
        protocol = fetched.protocol
        if protocol is None:
            report = VerificationReport(
                url, [fetched.check, *not_checked_after_fetch("the protocol could not be read")]
            )
            report.seconds = time.perf_counter() - started
            return report
        entries = protocol.instance_protocol
        owner = _owner_of(protocol)
        say(f"downloading {len(entries) + 2 + len(protocol.attempts)} documents, reading the chain")
        fetcher = _Fetcher(url, downloader, options)
        execution_id = protocol.execution_id
        if execution_id is None:  # the published prototype's format: the instance document gives it
            content = fetcher.fetch_now(protocol.instance_data, "instance").content
            execution_id = content.execution_id if isinstance(content, InstanceContent) else None
        fetcher.add(protocol.instance_data, "instance")
        fetcher.add(protocol.model_data, "model")
        for entry in entries:
            fetcher.add(entry.state_data, "state")
            if entry.task_data:
                fetcher.add(entry.task_data, "task")
        for attempt in protocol.attempts:
            fetcher.add(attempt.end_data, "end")
        batch = fetcher.start()
        # Check 4 reads ENS only (names, not documents): it runs while the documents download and
        # the contract is read, so its round trips to a distant provider add no time.
        # A child's protocol is checked with its parent's ENS result (the same publisher and origin).
        ens_future = (
            None if ens_result is not None else _background.submit(_ens_check, connected, owner, url, options, policy)
        )
        view: ChainView | None = None
        if tracker is not None and owner is not None and execution_id is not None:
            roots = [entry.merkle_root for entry in entries if entry.merkle_root]
            view = read_chain(
                tracker,
                owner,
                execution_id,
                protocol.model_hash,
                roots,
                [entry.state_hash for entry in entries],
                batched=options.batched,
                chain_id=chain_id,
            )
        elif tracker is not None:
            not_read = (
                "the owner is unknown (the protocol names none)"
                if owner is None
                else "the execution id is unknown (the protocol names none and the instance document is not ours)"
            )
        fetcher.finish(batch)
        downloads = _Downloads(
            fetcher.result(protocol.model_data, "model"),
            fetcher.result(protocol.instance_data, "instance"),
            [fetcher.result(entry.state_data, "state") for entry in entries],
            {attempt.end_data: fetcher.result(attempt.end_data, "end") for attempt in protocol.attempts},
            {entry.task_data: fetcher.result(entry.task_data, "task") for entry in entries if entry.task_data},
        )
    model_content = downloads.model.content if downloads.model.sha256 == protocol.model_hash else None
    task_states = model_content.task_states if isinstance(model_content, ModelContent) else None
    trace = Trace(protocol, downloads.states, execution_id, downloads.tasks, task_states)
    say("checking the states, ENS and the certificate")
    rows = judge_states(trace, view)
    contract = tracker.address.lower().removeprefix("0x") if tracker is not None else None
    states = states_check(trace, rows, view, chain_id, contract, not_read)
    ends = model_check(trace, downloads.model, downloads.instance, downloads.ends, view, not_read, states.in_progress)
    if ens_result is None:
        assert ens_future is not None
        ens_result = ens_future.result()
    checks = [
        fetched.check,
        states.check,
        ends.check,
        ens_result,
        certificate_check(
            tracker,
            owner,
            fetched.certificate,
            not_read,
            **({"registered": view.certificate} if view is not None else {}),
        ),
    ]
    linked = [
        (entry.state_data, fetched_state.content)
        for entry, fetched_state in zip(entries, downloads.states, strict=True)
        if isinstance(fetched_state.content, StateContent) and fetched_state.content.links is not None
    ]
    if linked:
        checks.append(
            _children_check(
                url, linked, tracker, options, checks[3], protocol.instance_hash, connected, no_contract, say
            )
        )
    report = VerificationReport(
        url,
        checks,
        rows,
        protocol.instance_hash,
        owner,
        attempts=ends.attempts,
        execution_id=execution_id,
        status=ends.status,
        status_text=ends.status_text,
        mode=_mode(view),
        chain_id=chain_id,
        contract=contract,
        contract_is_canonical=tracker.is_canonical if tracker is not None else None,
    )
    instance = downloads.instance
    if instance.sha256 == protocol.instance_hash and isinstance(instance.content, InstanceContent):
        report.parent = instance.content.parent
    if aws_session is not None:
        report.code_today = _code_today(trace, view, aws_session)
    report.seconds = time.perf_counter() - started
    return report


def _code_today(trace: Trace, view: ChainView | None, session: Any) -> list[Any]:
    from tracker.verify.drift import CodeToday

    judge = StateJudge(trace, view)
    today = CodeToday(session)
    results = []
    for position in range(len(trace.ids)):
        task = judge.task_content(position)
        if task is not None:
            results.append(today.compare(position, task))
    return results


def _ens_check(connected: bool, owner: str | None, url: str, options: VerifyOptions, policy: HostPolicy) -> CheckResult:
    if not connected:
        return CheckResult(CHECK_ENS, None, f"not checked: {NO_CHAIN}")
    return ens_check(owner, url, options.timeout, policy)


def _children_check(
    url: str,
    linked: list[tuple[str, StateContent]],
    tracker: TrackerContract | None,
    options: VerifyOptions,
    ens: CheckResult,
    instance_id: str,
    connected: bool,
    no_contract: str | None,
    say: Callable[[str], None],
) -> CheckResult:
    """Walks to every execution a listed state started: its children document (which must name
    this instance and the state's visit), then each child's protocol beside this one, verified
    with all five checks (its ENS check is this protocol's: the same publisher and origin), and
    each child's instance document, which must name this instance, the visit and the Map Run."""
    problems: list[str] = []
    verified = 0
    policy = HostPolicy(options.allow_private_hosts)
    origin = origin_of(url)
    if origin is not None:
        policy.trust(origin)
    with Downloader(options.timeout, options.concurrency, Deadline(options.total_timeout), policy) as downloader:
        for state_data, state in linked:
            links = state.links
            assert links is not None and links.children is not None
            link = urllib.parse.urljoin(urllib.parse.urljoin(url, state_data), f"{links.children}.json")
            listing = downloader.fetch(link, options.max_document_bytes, read_children, options.content_limit)
            content = listing.content
            where = f"state {links.state_name!r} (event {links.event_id})"
            if not listing.ok or listing.sha256 != links.children:
                problems.append(
                    f"{where}: children document {links.children[:12]}… is missing or does not hash to its id"
                )
                continue
            if not isinstance(content, ChildrenContent):
                problems.append(f"{where}: {getattr(content, 'reason', 'children document unreadable')}")
                continue
            if (content.instance_id, content.event_id, content.state_name) != (
                instance_id,
                links.event_id,
                links.state_name,
            ):
                problems.append(f"{where}: the children document names another instance or visit")
                continue
            say(f"verifying {len(content.instances)} executions started by {links.state_name}")
            for child in content.instances:
                child_url = urllib.parse.urljoin(url, f"{child}.json")
                report = verify_protocol(
                    child_url, tracker, options, connected=connected, no_contract=no_contract, ens_result=ens
                )
                instance_link = urllib.parse.urljoin(child_url, f"documents/{child}.json")
                instance = downloader.fetch(
                    instance_link, options.max_document_bytes, read_instance, options.content_limit
                )
                facts = instance.content
                parent = facts.parent if isinstance(facts, InstanceContent) else None
                # the child's ENS check is this protocol's, reported there: anything else must pass
                every: list[Any] = [*report.checks, *report.states, *report.attempts]
                unchecked = [item for item in every if item.ok is None and item is not ens]
                if report.instance_id != child or report.verdict == "failed" or unchecked:
                    what = ", ".join(report.failed_checks) or f"{len(unchecked)} items not checked"
                    problems.append(f"child {child[:12]}…: {report.verdict} ({what})")
                elif instance.sha256 != child or parent is None:
                    problems.append(f"child {child[:12]}…: its instance document names no parent")
                elif (parent.instance_id, parent.event_id, parent.state_name, parent.map_run_arn) != (
                    instance_id,
                    links.event_id,
                    links.state_name,
                    content.map_run_arn,
                ):
                    problems.append(
                        f"child {child[:12]}…: its instance document names another parent, visit or Map Run"
                    )
                else:
                    verified += 1
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        return CheckResult(CHECK_CHILDREN, False, shown)
    return CheckResult(
        CHECK_CHILDREN,
        True,
        f"{verified} child executions of {len(linked)} states verified; each names this instance and its visit",
    )


def _mode(view: ChainView | None) -> str | None:
    if view is None or view.instance is None:
        return None
    return "direct" if view.instance.mode == Mode.DIRECT else "anchored"


def _chain_id() -> int | None:
    from ape import chain

    try:
        return int(chain.provider.web3.eth.chain_id)  # the node's own answer (eth_chainId)
    except Exception:  # not connected to any network: nothing on chain can be compared
        return None
