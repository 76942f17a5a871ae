"""Independent verification of a published instance protocol: the five checks of DESIGN.md.

1. `protocol_tls`: the protocol was fetched over TLS from its URL; the certificate the server
   presented is kept (no CA is trusted: check 5 compares it with the chain).
2. `states`, and one `state` row per listed state: its document hashes to its id; it is registered
   on chain for the instance at its position (StateRegistered events, or an anchored Merkle proof);
   block number, transaction hash, timestamp and client address agree with the chain; the
   accumulator head recomputed over the listed states equals the contract's head, so the list is
   the whole ordered trace.
3. `model_instance`: model and instance exist on chain, their documents hash to their ids, and the
   instance belongs to the model.
4. `ens`: the registering address's reverse ENS name resolves back to it and its `url` text record
   is the protocol's origin.
5. `certificate`: the presented certificate's SHA-256 fingerprint is the one the address registered
   on chain, and the registered signature recovers to the address.

Each result is ok (True), failed (False) or not checked (None, with the reason: no chain, no ENS on
the network); only a report without failures and without unchecked items has passed.

Chain reads are batched: one `multicall` for instance, model and anchors, one `eth_getLogs` for
the instance's states, one for anchors, one JSON-RPC batch for block timestamps. Documents are
downloaded concurrently over kept-alive connections, each with a timeout and a size limit.
`VerifyOptions(batched=False)` makes the same checks with one call per state and sequential
downloads, the baseline the benchmark compares against.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from tracker import certificates, ens
from tracker.contract import InstanceRecord, ModelRecord, TrackerContract
from tracker.documents import (
    DocumentError,
    InstanceProtocol,
    ProtocolEntry,
    chain_head,
    id_to_bytes32,
    normalize_address,
    normalize_id,
    sha256_hex,
)
from tracker.errors import ChainError, TrackerError, one_line
from tracker.merkle import state_leaf, verify_proof

CHECK_TLS = "protocol_tls"
CHECK_STATES = "states"
CHECK_MODEL = "model_instance"
CHECK_ENS = "ens"
CHECK_CERTIFICATE = "certificate"
CHECK_STATE = "state"
CHECK_TITLES = {
    CHECK_TLS: "1. protocol fetched over TLS",
    CHECK_STATES: "2. states registered in order",
    CHECK_MODEL: "3. model and instance",
    CHECK_ENS: "4. ENS name and url",
    CHECK_CERTIFICATE: "5. certificate fingerprint",
}
STATE_REGISTERED_SIGNATURE = "StateRegistered(bytes32,bytes32,uint256)"
STATES_ANCHORED_SIGNATURE = "StatesAnchored(bytes32,address,uint256)"
READ_CHUNK = 64 * 1024


def _topic(signature: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=signature).hex()


STATE_REGISTERED_TOPIC = _topic(STATE_REGISTERED_SIGNATURE)
STATES_ANCHORED_TOPIC = _topic(STATES_ANCHORED_SIGNATURE)
INSTANCE_TERMINATED_TOPIC = _topic("InstanceTerminated(bytes32,bytes32,uint256,bytes32)")


class ProtocolNotFoundError(TrackerError):
    """The protocol of an instance cannot be located through the chain and ENS."""


# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class CheckResult:
    """One of the five checks: ok True (passed), False (failed) or None (not checked), and why."""

    check: str
    ok: bool | None
    reason: str

    @property
    def title(self) -> str:
        return CHECK_TITLES.get(self.check, self.check)

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "reason": self.reason}


@dataclass(frozen=True)
class StateResult:
    """The verdict on one listed state (`position` in the list, `seq` it claims on chain)."""

    position: int
    seq: int
    state_id: str
    ok: bool | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "check": CHECK_STATE,
            "position": self.position,
            "seq": self.seq,
            "state": self.state_id,
            "ok": self.ok,
            "reason": self.reason,
        }


@dataclass
class VerificationReport:
    """Everything `verify` found: the five checks and a row per listed state."""

    url: str
    checks: list[CheckResult]
    states: list[StateResult] = field(default_factory=list)
    instance_id: str | None = None
    owner: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True only when every check and every state passed (nothing failed, nothing unchecked)."""
        return all(item.ok is True for item in [*self.checks, *self.states])

    @property
    def verdict(self) -> str:
        if self.passed:
            return "passed"
        if any(item.ok is False for item in [*self.checks, *self.states]):
            return "failed"
        return "incomplete"

    def check(self, name: str) -> CheckResult:
        for result in self.checks:
            if result.check == name:
                return result
        raise KeyError(name)

    @property
    def failed_checks(self) -> list[str]:
        return [result.check for result in self.checks if result.ok is False]

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "instance": self.instance_id,
            "owner": self.owner,
            "verdict": self.verdict,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "results": [result.to_json() for result in self.checks] + [state.to_json() for state in self.states],
        }


@dataclass(frozen=True)
class VerifyOptions:
    """Limits and strategy: per-document timeout (s) and size limit (bytes), download concurrency."""

    timeout: float = 10.0
    max_document_bytes: int = 4 * 1024 * 1024
    max_protocol_bytes: int = 32 * 1024 * 1024
    concurrency: int = 16
    batched: bool = True


# ------------------------------------------------------------------------------------ downloads


@dataclass(frozen=True)
class Download:
    """The bytes at a URL, or why there are none; over TLS, the certificate the server presented."""

    url: str
    body: bytes | None
    error: str | None = None
    certificate: bytes | None = None
    tls_version: str | None = None


class DownloadFailed(Exception):
    """Internal: one download failed with a reason meant for a report row."""


def _client_context() -> ssl.SSLContext:
    """TLS without trusting any CA: the verifier keeps the certificate and checks it against the chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Downloader:
    """Downloads over kept-alive HTTP(S) connections, one set per thread, with limits per document."""

    def __init__(self, timeout: float, concurrency: int = 1):
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self._context = _client_context()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> "Downloader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()

    def submit(self, url: str, max_bytes: int) -> "Future[Download]":
        """Starts a download in the background (on a pool of `concurrency` threads)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="verify-download")
        return self._pool.submit(self.get, url, max_bytes)

    def get(self, url: str, max_bytes: int) -> Download:
        """Downloads one URL; failures become a `Download` with an error rather than an exception."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            return Download(url, None, f"not an http(s) URL: {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return Download(url, None, f"malformed port in {url!r}")
        key = (parts.scheme, parts.hostname, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        for attempt in (1, 2):
            connection, reused = self._connection(key)
            try:
                return self._fetch(connection, url, target, max_bytes, parts)
            except DownloadFailed as failure:
                self._drop(key)
                return Download(url, None, str(failure))
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                self._drop(key)
                if reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: reconnect once
                return Download(url, None, f"connection closed by {parts.netloc}: {one_line(error) or 'no answer'}")
            except (socket.timeout, TimeoutError):
                self._drop(key)
                return Download(url, None, f"timed out after {self.timeout:g} s fetching {url}")
            except ssl.SSLError as error:
                self._drop(key)
                return Download(url, None, f"TLS failed with {parts.netloc}: {one_line(error)}")
            except (OSError, http.client.HTTPException) as error:
                self._drop(key)
                reason = getattr(error, "strerror", None) or one_line(error) or type(error).__name__
                return Download(url, None, f"cannot fetch {url}: {reason}")
        return Download(url, None, f"cannot fetch {url}")

    def _fetch(self, connection, url: str, target: str, max_bytes: int, parts) -> Download:
        deadline = time.monotonic() + self.timeout
        if connection.sock is None:
            connection.connect()
        certificate = tls_version = None
        if isinstance(connection.sock, ssl.SSLSocket):
            certificate = connection.sock.getpeercert(binary_form=True)
            tls_version = connection.sock.version()
        connection.request("GET", target, headers={"Host": parts.netloc, "Accept": "application/json, */*"})
        response = connection.getresponse()
        if response.status != 200:
            raise DownloadFailed(f"HTTP {response.status} {response.reason} for {url}")
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise DownloadFailed(f"{url} is {int(declared)} bytes, over the limit of {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise socket.timeout()
            chunk = response.read(READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise DownloadFailed(f"{url} is over the limit of {max_bytes} bytes")
            chunks.append(chunk)
        if response.will_close:
            self._drop((parts.scheme, parts.hostname, connection.port))
        return Download(url, b"".join(chunks), None, certificate, tls_version)

    def _connection(self, key: tuple[str, str, int]) -> tuple[http.client.HTTPConnection, bool]:
        connections = self._local.__dict__.setdefault("connections", {})
        if key in connections:
            return connections[key], True
        scheme, host, port = key
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._context)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        connections[key] = connection
        with self._lock:
            self._all.append(connection)
        return connection, False

    def _drop(self, key: tuple[str, str, int]) -> None:
        connections = self._local.__dict__.setdefault("connections", {})
        connection = connections.pop(key, None)
        if connection is not None:
            connection.close()


# ------------------------------------------------------------------------------------ chain facts


@dataclass(frozen=True)
class StateEvent:
    """A StateRegistered log of the instance."""

    state_id: str
    seq: int
    block_number: int
    transaction_hash: str


@dataclass(frozen=True)
class AnchorFact:
    """An anchored Merkle root: who anchored it, and the block and transaction that did."""

    root: str
    submitter: str | None
    block_number: int | None = None
    transaction_hash: str | None = None


@dataclass
class ChainView:
    """What the chain says about one instance, read once for all checks."""

    chain_id: int
    contract_address: str
    instance: InstanceRecord | None
    model: ModelRecord | None
    events_by_seq: dict[int, StateEvent]
    anchors: dict[str, AnchorFact]
    block_times: dict[int, int]
    operators: frozenset[str] = frozenset()
    end_document: str | None = None

    def acts_for_owner(self, address: str | None) -> bool:
        """Whether an address is the instance owner or an operator the owner approved."""
        owner = self.instance.owner if self.instance else None
        return address is not None and (address == owner or address in self.operators)

    def seqs_of(self, state_id: str) -> list[int]:
        return sorted(seq for seq, event in self.events_by_seq.items() if event.state_id == state_id)


def _web3() -> Any:
    from ape import chain

    return chain.provider.web3


def _logs(address: str, topics: list[Any], from_block: int = 0) -> list[dict[str, Any]]:
    """`eth_getLogs` results. Over JSON-RPC the raw response is used: web3's result formatters
    checksum an address per log, which costs more than the request itself for a thousand logs.
    ape's in-process chain speaks no JSON-RPC, so there web3's method is used as it is."""
    from web3.providers import JSONBaseProvider

    web3 = _web3()
    params = {"address": address, "topics": topics, "fromBlock": hex(from_block), "toBlock": "latest"}
    try:
        if not isinstance(web3.provider, JSONBaseProvider):
            return [dict(log) for log in web3.eth.get_logs({**params, "fromBlock": from_block})]
        response = web3.provider.make_request("eth_getLogs", [params])
    except Exception as error:  # web3 raises transport- and node-specific errors
        raise ChainError(f"eth_getLogs failed: {one_line(error)}") from error
    if "error" in response:
        raise ChainError(f"eth_getLogs failed: {one_line(response['error'])}")
    return list(response["result"])


def _quantity(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


def _data(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


def _state_event(log: dict[str, Any]) -> StateEvent:
    return StateEvent(
        state_id=_data(log["topics"][2]).hex(),
        seq=int.from_bytes(_data(log["data"])[:32], "big"),
        block_number=_quantity(log["blockNumber"]),
        transaction_hash=_data(log["transactionHash"]).hex(),
    )


def state_events(tracker: TrackerContract, instance_id: str, from_block: int = 0) -> list[StateEvent]:
    """Every StateRegistered event of the instance, in one `eth_getLogs` filtered by its topic."""
    topic = "0x" + normalize_id(instance_id)
    return [_state_event(log) for log in _logs(tracker.address, [STATE_REGISTERED_TOPIC, topic], from_block)]


def _block_timestamps(numbers: Sequence[int], batched: bool) -> dict[int, int]:
    """Block timestamps, in one JSON-RPC batch when the provider takes batches."""
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    web3 = _web3()
    if batched and len(wanted) > 1:
        try:
            with web3.batch_requests() as batch:
                for number in wanted:
                    batch.add(web3.eth.get_block(number))
                blocks = batch.execute()
            return {number: int(block["timestamp"]) for number, block in zip(wanted, blocks)}
        except Exception:  # a provider without batch support (ape's in-process chain): one by one
            pass
    return {number: int(web3.eth.get_block(number)["timestamp"]) for number in wanted}


def _anchor_records(tracker: TrackerContract, roots: Sequence[str]) -> dict[str, str | None]:
    """Root => submitter (None when not anchored), in one multicall."""
    from eth_abi import decode

    results = tracker.read_many(tracker.contract.anchors.encode_input(id_to_bytes32(root)) for root in roots)
    submitters: dict[str, str | None] = {}
    for root, data in zip(roots, results):
        submitter, _anchored_at, _leaf_count = decode(["address", "uint64", "uint32"], data)
        submitters[root] = None if int(submitter, 16) == 0 else normalize_address(submitter)
    return submitters


def read_chain(tracker: TrackerContract, protocol: InstanceProtocol, batched: bool = True) -> ChainView:
    """Reads every chain fact the checks need: batched, or one call per state (the baseline)."""
    from ape import chain

    instance_id, model_id = protocol.instance_hash, protocol.model_hash
    instance = tracker.instances([instance_id])[instance_id]
    model = tracker.models_of([model_id])[model_id]
    roots = sorted({entry.merkle_root for entry in protocol.instance_protocol if entry.merkle_root})
    since = tracker.deployment_block()
    if batched:
        events = {event.seq: event for event in state_events(tracker, instance_id, since)}
    else:
        events = {}
        topic = "0x" + instance_id
        for entry in protocol.instance_protocol:
            tracker.instances([instance_id])  # what a per-state check reads: the instance, then its log
            for log in _logs(tracker.address, [STATE_REGISTERED_TOPIC, topic, "0x" + entry.state_hash], since):
                event = _state_event(log)
                events[event.seq] = event
    anchors: dict[str, AnchorFact] = {}
    if roots:
        submitters = _anchor_records(tracker, roots)
        logs = _logs(tracker.address, [STATES_ANCHORED_TOPIC, ["0x" + root for root in roots]], since)
        placed = {_data(log["topics"][1]).hex(): log for log in logs}
        for root in roots:
            log = placed.get(root)
            anchors[root] = AnchorFact(
                root,
                submitters[root],
                _quantity(log["blockNumber"]) if log else None,
                _data(log["transactionHash"]).hex() if log else None,
            )
    blocks = [event.block_number for event in events.values()]
    blocks += [fact.block_number for fact in anchors.values() if fact.block_number is not None]
    if batched:
        times = _block_timestamps(blocks, batched=True)
    else:
        times = {}
        for number in blocks:  # one request per state, as a verifier without batching does
            times[number] = int(_web3().eth.get_block(number)["timestamp"])
    operators: set[str] = set()
    if instance is not None:
        candidates = {entry.client_address for entry in protocol.instance_protocol}
        candidates |= {fact.submitter for fact in anchors.values() if fact.submitter}
        for address in sorted(candidates - {instance.owner}):  # usually none: the owner registers
            if tracker.is_operator(instance.owner, address):
                operators.add(address)
    end_document = None
    if protocol.end_hash is not None and instance is not None and instance.terminated:
        terminated = _logs(tracker.address, [INSTANCE_TERMINATED_TOPIC, "0x" + instance_id], since)
        end_document = _data(terminated[0]["topics"][2]).hex() if terminated else None
    return ChainView(
        int(chain.chain_id),
        normalize_address(tracker.address),
        instance,
        model,
        events,
        anchors,
        times,
        frozenset(operators),
        end_document,
    )


# ------------------------------------------------------------------------------------ the checks


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


def protocol_url_for(url_record: str, instance_id: str) -> str:
    """Where an instance's protocol is published under a client's `url` record."""
    return f"{url_record.strip().rstrip('/')}/{normalize_id(instance_id)}.json"


def _short(identifier: str | None) -> str:
    return f"{identifier[:10]}…" if identifier else "none"


def fetch_protocol(url: str, downloader: Downloader, options: VerifyOptions) -> tuple[CheckResult, InstanceProtocol | None, Download]:
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
        return StateResult(position, seq, entry.state_hash, None, "document ok; on-chain registration not checked: no chain")
    owner = view.instance.owner if view.instance else None
    block_number = transaction_hash = None
    if entry.merkle_root:
        fact = view.anchors.get(entry.merkle_root)
        proof = [bytes.fromhex(p) for p in entry.merkle_proof or []]
        if not verify_proof(state_leaf(instance_id, entry.state_hash, seq), proof, bytes.fromhex(entry.merkle_root)):
            problems.append(f"Merkle proof does not lead from (instance, state, seq {seq}) to root {_short(entry.merkle_root)}")
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
            problems.append(f"transaction_hash {_short(entry.transaction_hash)} but registered by {_short(transaction_hash)}")
        chain_time = view.block_times.get(block_number)
        if chain_time is not None and entry.timestamp != chain_time:
            problems.append(f"timestamp {entry.timestamp} but block {block_number} has {chain_time}")
    if owner is not None and not view.acts_for_owner(entry.client_address):
        problems.append(f"client_address 0x{entry.client_address} is neither the instance owner 0x{owner} nor its operator")
    if problems:
        return StateResult(position, seq, entry.state_hash, False, "; ".join(problems))
    where = f"anchored under {_short(entry.merkle_root)}" if entry.merkle_root else f"seq {seq}"
    return StateResult(position, seq, entry.state_hash, True, f"document ok, {where}, block {block_number}")


def _states_check(protocol: InstanceProtocol, rows: list[StateResult], view: ChainView | None) -> CheckResult:
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
        problems.append(f"protocol names contract 0x{protocol.contract_address}, verified against 0x{view.contract_address}")
    if view.instance is None:
        problems.append("instance is not registered on chain")
    else:
        listed = [entry.state_hash for entry in protocol.instance_protocol if not entry.merkle_root]
        anchored = len(protocol.instance_protocol) - len(listed)
        head = chain_head(view.instance.model_id, view.instance.instance_id, listed)
        if len(listed) != view.instance.state_count:
            problems.append(f"chain has {view.instance.state_count} registered states, the protocol lists {len(listed)}")
        elif head != view.instance.head:
            problems.append("the listed states do not hash to the contract's head (order or content differs)")
        if not problems:
            detail = f", {anchored} anchored" if anchored else ""
            return CheckResult(
                CHECK_STATES, True, f"{len(rows)} states in order{detail}; count {len(listed)} and head {_short(head)} match the chain"
            )
    return CheckResult(CHECK_STATES, False, "; ".join(problems))


def _model_check(
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


def ens_check(owner: str | None, protocol_url: str) -> CheckResult:
    """Check 4: the owner's reverse ENS name resolves back to it, and its `url` record is the origin."""
    if owner is None:
        return CheckResult(CHECK_ENS, None, "not checked: the registering address is unknown")
    address = "0x" + owner
    try:
        if not ens.ens_available():
            return CheckResult(CHECK_ENS, None, "not checked: no ENS registry on this network")
        name = ens.reverse_name(address)
        if name is None:
            return CheckResult(CHECK_ENS, False, f"{address} has no ENS reverse record")
        resolved = ens.resolve_address(name)
        if resolved is None or normalize_address(resolved) != owner:
            return CheckResult(CHECK_ENS, False, f"{name} resolves to {resolved or 'nothing'}, not to {address}")
        record = ens.text_record(name, "url")
        if record is None:
            return CheckResult(CHECK_ENS, False, f"{name} has no url text record")
        if not origin_matches(record, protocol_url):
            return CheckResult(CHECK_ENS, False, f"{name} url record is {record}, not the protocol's origin {_origin(protocol_url)}")
    except TrackerError as error:
        return CheckResult(CHECK_ENS, False, one_line(error))
    return CheckResult(CHECK_ENS, True, f"{address} <-> {name}, url {record}")


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


def _not_checked_after_fetch(reason: str) -> list[CheckResult]:
    return [CheckResult(name, None, f"not checked: {reason}") for name in (CHECK_STATES, CHECK_MODEL, CHECK_ENS, CHECK_CERTIFICATE)]


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
            report = VerificationReport(url, [tls, *_not_checked_after_fetch("the protocol could not be read")])
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
        _states_check(protocol, rows, view),
        _model_check(protocol, model_document, instance_document, end_document, view),
        ens_check(owner, url) if view is not None else CheckResult(CHECK_ENS, None, "not checked: no chain reachable"),
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


# ------------------------------------------------------------------------------------ finding a protocol


def locate_protocol(tracker: TrackerContract, instance_id: str) -> str:
    """The protocol URL of an instance: owner on chain -> ENS reverse name -> `url` record."""
    instance_id = normalize_id(instance_id, "instance id")
    record = tracker.instance(instance_id)
    if record is None:
        raise ProtocolNotFoundError(f"instance {instance_id} is not registered on contract {tracker.address}")
    if not ens.ens_available():
        raise ProtocolNotFoundError("no ENS registry on this network: give the protocol URL instead of --instance")
    address = "0x" + record.owner
    name = ens.reverse_name(address)
    if name is None:
        raise ProtocolNotFoundError(f"the instance owner {address} has no ENS reverse record: give the protocol URL")
    url = ens.text_record(name, "url")
    if url is None:
        raise ProtocolNotFoundError(f"ENS name {name} of {address} has no url text record: give the protocol URL")
    return protocol_url_for(url, instance_id)


def tracker_for(url: str | None, contract_address: str | None, options: VerifyOptions) -> TrackerContract:
    """The contract to verify against: the one given, else the deployment recorded for the chain,
    else (for a URL) the contract the protocol names, when it has code on the connected chain."""
    from tracker.errors import ContractNotFoundError

    try:
        return TrackerContract.at(contract_address)
    except ContractNotFoundError:
        if contract_address is not None or url is None:
            raise
    with Downloader(options.timeout) as downloader:
        fetched, protocol, _download = fetch_protocol(url, downloader, options)
    if protocol is None:
        raise ContractNotFoundError(
            f"no InstanceTracker recorded for this chain, and the protocol cannot be read to find one "
            f"({fetched.reason}): pass --contract ADDRESS"
        )
    if protocol.contract_address is None:
        raise ContractNotFoundError(
            "no InstanceTracker recorded for this chain and the protocol names none: pass --contract ADDRESS"
        )
    return TrackerContract.at(protocol.contract_address)


# ------------------------------------------------------------------------------------ following


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
                for result in _judge_pending(url, tracker, instance_id, pending, downloader, options, publish_grace_seconds):
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
    if ready:
        view = read_chain(tracker, protocol, batched=True)
        futures = {seq: downloader.submit(urllib.parse.urljoin(url, listed[seq][1].state_data), options.max_document_bytes) for seq in ready}
        for seq in ready:
            position, entry = listed[seq]
            results.append(judge_state(position, entry, futures[seq].result(), view, instance_id))
    now = time.monotonic()
    for seq in sorted(pending):
        event, first_seen = pending[seq]
        if seq not in listed and now - first_seen > grace:
            results.append(
                StateResult(seq, seq, event.state_id, False, f"registered on chain but not in the protocol after {grace:g} s")
            )
    return sorted(results, key=lambda result: result.seq)
