"""Checks 1, 4 and 5: the protocol over TLS, the owner's ENS name, the server's certificate.
(Check 2 is in `tracker.verify.states`, check 3 in `tracker.verify.ends`.)"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from tracker.chain.contract import CertificateRecord, TrackerContract
from tracker.documents.ids import DocumentError, normalize_address, sha256_hex
from tracker.documents.protocol import InstanceProtocol
from tracker.errors import TrackerError, one_line
from tracker.identity import ens
from tracker.publish import certificates
from tracker.verify import ens_resolution, safejson
from tracker.verify.download import Downloader, HostPolicy
from tracker.verify.report import (
    CHECK_CERTIFICATE,
    CHECK_ENS,
    CHECK_MODEL,
    CHECK_STATES,
    CHECK_TLS,
    CheckResult,
    VerifyOptions,
    short,
)

UNREAD = object()  # `certificate_check`'s record not read yet


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


@dataclass(frozen=True)
class FetchedProtocol:
    """Check 1's result, the protocol when it could be read, and the certificate the server presented."""

    check: CheckResult
    protocol: InstanceProtocol | None
    certificate: bytes | None


def read_protocol(data: bytes, options: VerifyOptions) -> InstanceProtocol | str:
    """The protocol in `data`, or why it cannot be read; bounded before it is parsed."""
    listed = data.count(b'"state_hash"')
    if listed > options.max_entries:
        return f"the protocol lists about {listed:,} states, over the limit of {options.max_entries:,} (--max-entries)"
    try:
        value = safejson.loads(data, options.max_depth, options.max_values)
    except safejson.JsonRefused as refused:
        return f"the protocol {refused}"
    try:
        protocol = InstanceProtocol.from_json(value)
    except DocumentError as error:
        return one_line(error)
    if len(protocol.instance_protocol) > options.max_entries:
        count = len(protocol.instance_protocol)
        return f"the protocol lists {count:,} states, over the limit of {options.max_entries:,} (--max-entries)"
    return protocol


def fetch_protocol(url: str, downloader: Downloader, options: VerifyOptions) -> FetchedProtocol:
    """Check 1: the protocol over TLS (https only), within its limits, and readable as a protocol."""
    if urllib.parse.urlsplit(url).scheme.lower() != "https":
        return FetchedProtocol(CheckResult(CHECK_TLS, False, f"not an https URL: {url}"), None, None)
    fetched = downloader.fetch(
        url, options.max_protocol_bytes, lambda data: read_protocol(data, options), options.max_protocol_bytes
    )
    if not fetched.ok:
        return FetchedProtocol(CheckResult(CHECK_TLS, False, fetched.error or "no answer"), None, fetched.certificate)
    if isinstance(fetched.content, str) or fetched.content is None:
        reason = fetched.content or "the protocol could not be read"
        return FetchedProtocol(CheckResult(CHECK_TLS, False, reason), None, fetched.certificate)
    protocol = fetched.content
    reason = (
        f"fetched over {fetched.tls_version} from {url} ({fetched.size} bytes, "
        f"{len(protocol.instance_protocol)} states, certificate sha256 {short(sha256_hex(fetched.certificate or b''))})"
    )
    return FetchedProtocol(CheckResult(CHECK_TLS, True, reason), protocol, fetched.certificate)


def ens_check(
    owner: str | None, protocol_url: str, timeout: float = 10.0, policy: HostPolicy | None = None
) -> CheckResult:
    """Check 4: the owner's reverse ENS name resolves back to it, and its `url` record is the origin.

    Both directions resolve as wallets do (UniversalResolver, wildcards, CCIP-Read through https
    gateways within `timeout` and the host `policy`); the reason says how each resolved (onchain,
    wildcard, offchain gateway).
    """
    if owner is None:
        return CheckResult(CHECK_ENS, None, "not checked: the owner is unknown (the protocol names none)")
    address = "0x" + owner
    try:
        missing = ens_resolution.available()
        if missing is not None:
            return CheckResult(CHECK_ENS, None, f"not checked: {missing}")
        resolution = ens_resolution.EnsResolution(timeout, policy=policy)
        reverse = resolution.reverse_name(address)
        if reverse is None:
            return CheckResult(CHECK_ENS, False, f"{address} has no ENS reverse record")
        name = str(reverse.value)
        if ens.normalize_name(name) != name:
            return CheckResult(CHECK_ENS, False, f"the reverse record of {address} is {name!r}, not a normalised name")
        # The url record is read with the name's address: one round trip instead of two.
        forward, record = resolution.address_and_text(name, "url")
        if isinstance(forward, TrackerError):
            raise forward
        if forward is None or normalize_address(str(forward.value)) != owner:
            resolved = f"resolves to {forward.value}" if forward is not None else "resolves to no address"
            return CheckResult(
                CHECK_ENS,
                False,
                f"forward and reverse disagree: the reverse record of {address} names {name}, but {name} {resolved}",
            )
        if isinstance(record, TrackerError):
            raise record
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


def certificate_check(
    tracker: TrackerContract | None,
    owner: str | None,
    presented: bytes | None,
    not_read: str = "no chain reachable",
    registered: CertificateRecord | object | None = UNREAD,
) -> CheckResult:
    """Check 5: presented certificate fingerprint = the owner's registered one, signed by the owner
    (`not_read`: why there is no contract to read it from, when `tracker` is None; `registered`:
    the owner's record when it was read already, with the rest of the chain's facts)."""
    if presented is None:
        return CheckResult(CHECK_CERTIFICATE, False, "the server presented no certificate")
    try:
        fingerprint = certificates.fingerprint(certificates.parse_certificate(presented, "the presented certificate"))
    except TrackerError as error:
        return CheckResult(CHECK_CERTIFICATE, False, one_line(error))
    if tracker is None:
        return CheckResult(CHECK_CERTIFICATE, None, f"not checked: {not_read} (presented sha256 {fingerprint})")
    if owner is None:
        return CheckResult(CHECK_CERTIFICATE, None, "not checked: the owner is unknown (the protocol names none)")
    record = tracker.certificate(owner) if registered is UNREAD else registered
    if not isinstance(record, CertificateRecord):
        return CheckResult(CHECK_CERTIFICATE, False, f"0x{owner} has registered no certificate fingerprint")
    if record.fingerprint != fingerprint:
        return CheckResult(
            CHECK_CERTIFICATE,
            False,
            f"server presented certificate sha256 {short(fingerprint)}, 0x{owner} registered {short(record.fingerprint)}",
        )
    try:
        signer = certificates.recover_fingerprint_signer(record.fingerprint, record.signature)
    except TrackerError as error:
        return CheckResult(CHECK_CERTIFICATE, False, f"registered signature: {one_line(error)}")
    if normalize_address(signer) != owner:
        return CheckResult(CHECK_CERTIFICATE, False, f"registered signature recovers to {signer}, not to 0x{owner}")
    return CheckResult(CHECK_CERTIFICATE, True, f"sha256 {short(fingerprint)} registered and signed by 0x{owner}")


def not_checked_after_fetch(reason: str) -> list[CheckResult]:
    return [
        CheckResult(name, None, f"not checked: {reason}")
        for name in (CHECK_STATES, CHECK_MODEL, CHECK_ENS, CHECK_CERTIFICATE)
    ]
