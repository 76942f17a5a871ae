"""Independent verification of a published instance protocol: `verify_protocol` runs the checks.

1. the protocol was fetched over TLS from its URL (the certificate the server presented is kept);
2. each listed state: its document hashes to its id and is registered on chain for the instance at
   its position, with block, transaction, time and client as listed, and the listed states hash
   to the contract's head;
3. model and instance documents hash to their ids and the instance belongs to the model;
4. the registering address and its ENS name resolve to each other and the name's `url` record is
   the protocol's origin;
5. the presented certificate's fingerprint is the one the address registered, signed by it.

Each result is passed, failed or not checked (with the reason); only a report without failures
and without unchecked items has passed. Documents are downloaded concurrently while the chain is
read in batched calls; `VerifyOptions(batched=False)` makes the same checks one call per state,
the baseline the benchmark compares against."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable

from tracker.chain.contract import TrackerContract
from tracker.documents.protocol import InstanceProtocol
from tracker.verify.chain import ChainView, read_chain
from tracker.verify.checks import (
    certificate_check,
    ens_check,
    fetch_protocol,
    judge_state,
    model_check,
    not_checked_after_fetch,
    states_check,
)
from tracker.verify.download import Downloader
from tracker.verify.report import CHECK_ENS, CheckResult, VerificationReport, VerifyOptions


def verify_protocol(
    url: str,
    tracker: TrackerContract | None,
    options: VerifyOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> VerificationReport:
    """Runs the five checks on the protocol at `url` against `tracker` (None: no chain reachable)."""
    options = options or VerifyOptions()
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    concurrency = options.concurrency if options.batched else 1
    with Downloader(options.timeout, concurrency) as downloader:
        say(f"fetching {url}")
        tls, protocol, protocol_download = fetch_protocol(url, downloader, options)
        if protocol is None:
            report = VerificationReport(url, [tls, *not_checked_after_fetch("the protocol could not be read")])
            report.seconds = time.perf_counter() - started
            return report
        entries = protocol.instance_protocol
        say(f"downloading {len(entries) + 2} documents, reading the chain")
        urls = [urllib.parse.urljoin(url, protocol.model_data), urllib.parse.urljoin(url, protocol.instance_data)]
        urls += [urllib.parse.urljoin(url, entry.state_data) for entry in entries]
        if protocol.end_hash and protocol.end_data:
            urls.append(urllib.parse.urljoin(url, protocol.end_data))
        if options.batched:
            futures = [downloader.submit(u, options.max_document_bytes) for u in urls]
            view = read_chain(tracker, protocol, batched=True) if tracker is not None else None
            documents = [future.result() for future in futures]
        else:
            view = read_chain(tracker, protocol, batched=False) if tracker is not None else None
            documents = [downloader.get(u, options.max_document_bytes) for u in urls]
    model_document, instance_document = documents[0], documents[1]
    state_documents = documents[2 : 2 + len(entries)]
    end_document = documents[2 + len(entries)] if len(documents) > 2 + len(entries) else None
    rows = [
        judge_state(position, entry, document, view, protocol.instance_hash)
        for position, (entry, document) in enumerate(zip(entries, state_documents))
    ]
    owner = _registering_address(protocol, view)
    say("checking ENS and the certificate")
    checks = [
        tls,
        states_check(protocol, rows, view),
        model_check(protocol, model_document, instance_document, end_document, view),
        ens_check(owner, url, options.timeout)
        if view is not None
        else CheckResult(CHECK_ENS, None, "not checked: no chain reachable"),
        certificate_check(tracker, owner, protocol_download.certificate),
    ]
    report = VerificationReport(url, checks, rows, protocol.instance_hash, owner)
    report.seconds = time.perf_counter() - started
    return report


def _registering_address(protocol: InstanceProtocol, view: ChainView | None) -> str | None:
    """The instance owner on chain; without the instance, the one client address the protocol names."""
    if view is not None and view.instance is not None:
        return view.instance.owner
    clients = {entry.client_address for entry in protocol.instance_protocol}
    return clients.pop() if len(clients) == 1 else None
