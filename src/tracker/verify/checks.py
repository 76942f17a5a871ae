"""The checks themselves, each from what was downloaded and what the chain says."""

from __future__ import annotations

import json
import urllib.parse

from tracker.chain.contract import TrackerContract
from tracker.chain.merkle import state_leaf, verify_proof
from tracker.documents.facts import chain_head
from tracker.documents.ids import DocumentError, normalize_address, normalize_id, sha256_hex
from tracker.documents.protocol import InstanceProtocol, ProtocolEntry
from tracker.errors import TrackerError, one_line
from tracker.identity import ens
from tracker.publish import certificates
from tracker.verify import ens_resolution
from tracker.verify.chain import ChainView
from tracker.verify.download import Download, Downloader
from tracker.verify.report import (
    CHECK_CERTIFICATE,
    CHECK_ENS,
    CHECK_MODEL,
    CHECK_STATES,
    CHECK_TLS,
    CheckResult,
    StateResult,
    VerifyOptions,
)


def _origin(url: str) -> str:
    """scheme://host:port of a URL, lowercased, with the default port made explicit."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "http": 80}.get(scheme, 0)
    except ValueError:
        port = 0
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def origin_matches(record: str, protocol_url: str) -> bool:
    """Whether a `url` record is the protocol's origin (or a base path the protocol lies under)."""
    if _origin(record) != _origin(protocol_url):
        return False
    base = urllib.parse.urlsplit(record.strip()).path.rstrip("/")
    return urllib.parse.urlsplit(protocol_url).path.startswith(base + "/")


def _short(identifier: str | None) -> str:
    return f"{identifier[:10]}…" if identifier else "none"


def fetch_protocol(
    url: str, downloader: Downloader, options: VerifyOptions
) -> tuple[CheckResult, InstanceProtocol | None, Download]:
    """Check 1: the protocol over TLS (https only), within limits, and readable as a protocol."""
    if urllib.parse.urlsplit(url).scheme.lower() != "https":
        return CheckResult(CHECK_TLS, False, f"not an https URL: {url}"), None, Download(url, None, "not https")
    download = downloader.get(url, options.max_protocol_bytes)
    if download.body is None:
        return CheckResult(CHECK_TLS, False, download.error or "no answer"), None, download
    try:
        data = json.loads(download.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return CheckResult(CHECK_TLS, False, f"protocol is not valid JSON: {one_line(error)}"), None, download
    try:
        protocol = InstanceProtocol.from_json(data)
    except DocumentError as error:
        return CheckResult(CHECK_TLS, False, one_line(error)), None, download
    reason = (
        f"fetched over {download.tls_version} from {url} ({len(download.body)} bytes, "
        f"{len(protocol.instance_protocol)} states, certificate sha256 {_short(sha256_hex(download.certificate or b''))})"
    )
    return CheckResult(CHECK_TLS, True, reason), protocol, download


def _document_verdict(download: Download, expected_id: str, what: str) -> str | None:
    """None when the document hashes to its id, else why not."""
    if download.body is None:
        return f"{what} document: {download.error}"
    actual = sha256_hex(download.body)
    if actual != expected_id:
        return f"{what} document hashes to {_short(actual)}, not to its id {_short(expected_id)}"
    return None


def judge_state(
    position: int,
    entry: ProtocolEntry,
    document: Download,
    view: ChainView | None,
    instance_id: str,
) -> StateResult:
    """Check 2 for one listed state: document, registration at its position, block/tx/time/client fields."""
    seq = entry.seq if entry.seq is not None else position
    problems: list[str] = []
    document_problem = _document_verdict(document, entry.state_hash, "state")
    if document_problem:
        problems.append(document_problem)
    if entry.seq is not None and entry.seq != position:
        problems.append(f"listed at position {position} but its seq is {entry.seq}")
    if view is None:
        if problems:
            return StateResult(position, seq, entry.state_hash, False, "; ".join(problems))
        return StateResult(
            position, seq, entry.state_hash, None, "document ok; on-chain registration not checked: no chain"
        )
    owner = view.instance.owner if view.instance else None
    block_number = transaction_hash = None
    if entry.merkle_root:
        fact = view.anchors.get(entry.merkle_root)
        proof = [bytes.fromhex(p) for p in entry.merkle_proof or []]
        if not verify_proof(state_leaf(instance_id, entry.state_hash, seq), proof, bytes.fromhex(entry.merkle_root)):
            problems.append(
                f"Merkle proof does not lead from (instance, state, seq {seq}) to root {_short(entry.merkle_root)}"
            )
        elif fact is None or fact.submitter is None:
            problems.append(f"root {_short(entry.merkle_root)} is not anchored on chain")
        elif owner is not None and not view.acts_for_owner(fact.submitter):
            problems.append(
                f"root {_short(entry.merkle_root)} was anchored by 0x{fact.submitter}, neither the owner 0x{owner} nor its operator"
            )
        if fact is not None:
            block_number, transaction_hash = fact.block_number, fact.transaction_hash
    else:
        event = view.events_by_seq.get(seq)
        if event is not None and event.state_id == entry.state_hash:
            block_number, transaction_hash = event.block_number, event.transaction_hash
        else:
            elsewhere = view.seqs_of(entry.state_hash)
            if elsewhere:
                problems.append(f"registered at seq {elsewhere[0]}, listed at seq {seq}: out of order")
            elif event is not None:
                problems.append(f"not registered for this instance (seq {seq} on chain is {_short(event.state_id)})")
            else:
                problems.append("not registered on chain for this instance")
    if block_number is not None:
        if entry.block_nr != block_number:
            problems.append(f"block_nr {entry.block_nr} but registered in block {block_number}")
        if entry.transaction_hash != transaction_hash:
            problems.append(
                f"transaction_hash {_short(entry.transaction_hash)} but registered by {_short(transaction_hash)}"
            )
        chain_time = view.block_times.get(block_number)
        if chain_time is not None and entry.timestamp != chain_time:
            problems.append(f"timestamp {entry.timestamp} but block {block_number} has {chain_time}")
    if owner is not None and not view.acts_for_owner(entry.client_address):
        problems.append(
            f"client_address 0x{entry.client_address} is neither the instance owner 0x{owner} nor its operator"
        )
    if problems:
        return StateResult(position, seq, entry.state_hash, False, "; ".join(problems))
    where = f"anchored under {_short(entry.merkle_root)}" if entry.merkle_root else f"seq {seq}"
    return StateResult(position, seq, entry.state_hash, True, f"document ok, {where}, block {block_number}")


def states_check(protocol: InstanceProtocol, rows: list[StateResult], view: ChainView | None) -> CheckResult:
    failed = [row.position for row in rows if row.ok is False]
    problems: list[str] = []
    if failed:
        shown = ", ".join(str(p) for p in failed[:10]) + (" …" if len(failed) > 10 else "")
        problems.append(f"{len(failed)} of {len(rows)} states failed (positions {shown})")
    if view is None:
        if problems:
            return CheckResult(CHECK_STATES, False, "; ".join(problems))
        return CheckResult(CHECK_STATES, None, "not checked: no chain reachable (documents hash to their ids)")
    if protocol.chain_id is not None and protocol.chain_id != view.chain_id:
        problems.append(f"protocol names chain id {protocol.chain_id}, verified on chain id {view.chain_id}")
    if protocol.contract_address is not None and protocol.contract_address != view.contract_address:
        problems.append(
            f"protocol names contract 0x{protocol.contract_address}, verified against 0x{view.contract_address}"
        )
    if view.instance is None:
        problems.append("instance is not registered on chain")
    else:
        listed = [entry.state_hash for entry in protocol.instance_protocol if not entry.merkle_root]
        anchored = len(protocol.instance_protocol) - len(listed)
        head = chain_head(view.instance.model_id, view.instance.instance_id, listed)
        if len(listed) != view.instance.state_count:
            problems.append(
                f"chain has {view.instance.state_count} registered states, the protocol lists {len(listed)}"
            )
        elif head != view.instance.head:
            problems.append("the listed states do not hash to the contract's head (order or content differs)")
        if not problems:
            detail = f", {anchored} anchored" if anchored else ""
            return CheckResult(
                CHECK_STATES,
                True,
                f"{len(rows)} states in order{detail}; count {len(listed)} and head {_short(head)} match the chain",
            )
    return CheckResult(CHECK_STATES, False, "; ".join(problems))


def model_check(
    protocol: InstanceProtocol,
    model_document: Download,
    instance_document: Download,
    end_document: Download | None,
    view: ChainView | None,
) -> CheckResult:
    """Check 3, and the end document when the protocol says the instance ended."""
    problems = [
        problem
        for problem in (
            _document_verdict(model_document, protocol.model_hash, "model"),
            _document_verdict(instance_document, protocol.instance_hash, "instance"),
            _document_verdict(end_document, protocol.end_hash, "end") if end_document and protocol.end_hash else None,
        )
        if problem
    ]
    claimed = _claimed_model(instance_document)
    if claimed is not None and claimed != protocol.model_hash:
        problems.append(f"instance document names model {_short(claimed)}, the protocol {_short(protocol.model_hash)}")
    if view is None:
        if problems:
            return CheckResult(CHECK_MODEL, False, "; ".join(problems))
        return CheckResult(CHECK_MODEL, None, "not checked on chain: no chain reachable (documents hash to their ids)")
    if view.model is None:
        problems.append(f"model {_short(protocol.model_hash)} is not registered on chain")
    if view.instance is None:
        problems.append(f"instance {_short(protocol.instance_hash)} is not registered on chain")
    else:
        if view.instance.model_id != protocol.model_hash:
            problems.append(
                f"instance belongs to model {_short(view.instance.model_id)} on chain, not to {_short(protocol.model_hash)}"
            )
        if protocol.end_hash is not None and not view.instance.terminated:
            problems.append("the protocol has an end document but the instance is not terminated on chain")
        elif protocol.end_hash is not None and view.end_document != protocol.end_hash:
            problems.append(
                f"the instance was terminated with end document {_short(view.end_document)}, not {_short(protocol.end_hash)}"
            )
    if problems:
        return CheckResult(CHECK_MODEL, False, "; ".join(problems))
    ended = ", ended with that end document" if protocol.end_hash else ""
    return CheckResult(
        CHECK_MODEL, True, f"model and instance registered, documents hash to their ids, instance of that model{ended}"
    )


def _claimed_model(download: Download) -> str | None:
    """The model id an instance document names, when it is one of ours (canonical JSON with model_id)."""
    if download.body is None:
        return None
    try:
        data = json.loads(download.body)
        return normalize_id(data["model_id"]) if isinstance(data, dict) and "model_id" in data else None
    except (ValueError, DocumentError, TypeError):
        return None


def ens_check(owner: str | None, protocol_url: str, timeout: float = 10.0) -> CheckResult:
    """Check 4: the owner's reverse ENS name resolves back to it, and its `url` record is the origin.

    Both directions resolve as wallets do (UniversalResolver, wildcards, CCIP-Read); the reason
    says how each resolved (onchain, wildcard, offchain gateway).
    """
    if owner is None:
        return CheckResult(CHECK_ENS, None, "not checked: the registering address is unknown")
    address = "0x" + owner
    try:
        missing = ens_resolution.available()
        if missing is not None:
            return CheckResult(CHECK_ENS, None, f"not checked: {missing}")
        resolution = ens_resolution.EnsResolution(timeout)
        reverse = resolution.reverse_name(address)
        if reverse is None:
            return CheckResult(CHECK_ENS, False, f"{address} has no ENS reverse record")
        name = str(reverse.value)
        if ens.normalize_name(name) != name:
            return CheckResult(CHECK_ENS, False, f"the reverse record of {address} is {name!r}, not a normalised name")
        forward = resolution.address(name)
        if forward is None or normalize_address(str(forward.value)) != owner:
            resolved = f"resolves to {forward.value}" if forward is not None else "resolves to no address"
            return CheckResult(
                CHECK_ENS,
                False,
                f"forward and reverse disagree: the reverse record of {address} names {name}, but {name} {resolved}",
            )
        record = resolution.text(name, "url")
        if record is None:
            return CheckResult(CHECK_ENS, False, f"{name} has no url text record")
        if not origin_matches(str(record.value), protocol_url):
            return CheckResult(
                CHECK_ENS,
                False,
                f"{name} url record is {record.value}, not the protocol's origin {_origin(protocol_url)}",
            )
    except TrackerError as error:
        return CheckResult(CHECK_ENS, False, one_line(error))
    how = forward.how if forward.how == record.how else f"{forward.how}, url {record.how}"
    return CheckResult(CHECK_ENS, True, f"{address} <-> {name} (name {how}; reverse {reverse.how}), url {record.value}")


def certificate_check(tracker: TrackerContract | None, owner: str | None, presented: bytes | None) -> CheckResult:
    """Check 5: presented certificate fingerprint = the owner's registered one, signed by the owner."""
    if presented is None:
        return CheckResult(CHECK_CERTIFICATE, False, "the server presented no certificate")
    try:
        fingerprint = certificates.fingerprint(certificates.parse_certificate(presented, "the presented certificate"))
    except TrackerError as error:
        return CheckResult(CHECK_CERTIFICATE, False, one_line(error))
    if tracker is None:
        return CheckResult(CHECK_CERTIFICATE, None, f"not checked: no chain reachable (presented sha256 {fingerprint})")
    if owner is None:
        return CheckResult(CHECK_CERTIFICATE, None, "not checked: the registering address is unknown")
    record = tracker.certificate(owner)
    if record is None:
        return CheckResult(CHECK_CERTIFICATE, False, f"0x{owner} has registered no certificate fingerprint")
    if record.fingerprint != fingerprint:
        return CheckResult(
            CHECK_CERTIFICATE,
            False,
            f"server presented certificate sha256 {_short(fingerprint)}, 0x{owner} registered {_short(record.fingerprint)}",
        )
    try:
        signer = certificates.recover_fingerprint_signer(record.fingerprint, record.signature)
    except TrackerError as error:
        return CheckResult(CHECK_CERTIFICATE, False, f"registered signature: {one_line(error)}")
    if normalize_address(signer) != owner:
        return CheckResult(CHECK_CERTIFICATE, False, f"registered signature recovers to {signer}, not to 0x{owner}")
    return CheckResult(CHECK_CERTIFICATE, True, f"sha256 {_short(fingerprint)} registered and signed by 0x{owner}")


def not_checked_after_fetch(reason: str) -> list[CheckResult]:
    return [
        CheckResult(name, None, f"not checked: {reason}")
        for name in (CHECK_STATES, CHECK_MODEL, CHECK_ENS, CHECK_CERTIFICATE)
    ]
