"""ENS resolution as wallets do it: through the chain's UniversalResolver (ENSIP-23), which finds
the resolver by walking up the name (ENSIP-10 wildcards) and asks for offchain answers with
EIP-3668 (CCIP-Read).

web3.py's `ens` module (web3 7, behind ape-ens) resolves through the same UniversalResolver, and its
building blocks are used here: ENSIP-15 normalisation, DNS encoding of names, the resolver and
UniversalResolver ABIs. Its `ENS` class itself is not: it follows gateways with `requests` (30 s a
URL, no size limit, loopback refused), swallows every revert into None, and cannot say how a name
resolved. So the calls are made here, and CCIP-Read runs under the verifier's bounds:

* only `https://` gateway URLs the resolver itself named are fetched, through the verifier's
  bounded downloader (a timeout and a byte limit a request, at most `MAX_URLS` URLs a lookup and
  `MAX_LOOKUPS` lookups a resolution);
* the UniversalResolver's batch-gateway lookup (ENSIP-21) is always answered locally, so no
  request goes to a batch gateway it names;
* the gateway's answer goes back on chain to the UniversalResolver's callback, which hands it to
  the resolver's own callback: the resolver checks it (a signature, a proof), as EIP-3668 requires.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector

from tracker.documents.ids import checksum_address
from tracker.errors import TrackerError, one_line
from tracker.identity import ens
from tracker.verify.download import Downloader, HostPolicy

MAX_LOOKUPS = 4
MAX_URLS = 4
MAX_GATEWAY_BYTES = 64 * 1024

ROUTE_ONCHAIN = "onchain"
ROUTE_WILDCARD = "wildcard"
ROUTE_OFFCHAIN = "offchain gateway"

_BATCH_QUERY = function_signature_to_4byte_selector("query((address,string[],bytes)[])")
_ERRORS = {
    function_signature_to_4byte_selector(signature): signature
    for signature in (
        "ResolverNotFound(bytes)",
        "ResolverNotContract(bytes,address)",
        "UnsupportedResolverProfile(bytes4)",
        "ResolverError(bytes)",
        "HttpError(uint16,string)",
        "Error(string)",
    )
}


class ResolutionError(TrackerError):
    """A name could not be resolved, for a reason other than having no such record."""


@dataclass(frozen=True)
class Resolved:
    """A record's value and how it was found."""

    value: Any
    resolver: str
    route: str  # ROUTE_ONCHAIN, ROUTE_WILDCARD or ROUTE_OFFCHAIN
    via: str = ""  # the parent whose resolver answered (wildcard), or the gateway's origin (offchain)

    @property
    def how(self) -> str:
        return f"{self.route} {self.via}".strip()


def universal_resolver_address() -> str:
    return ens.current_addresses().universal_resolver


def available() -> str | None:
    """None when this chain can resolve ENS names, else why not."""
    from ape import chain

    # Both at once: through a distant provider each is a round trip of its own.
    universal = _pool.submit(lambda: bool(chain.provider.get_code(universal_resolver_address())))
    if not ens.ens_available():
        return "no ENS registry on this network"
    if not universal.result():
        return f"no UniversalResolver at {universal_resolver_address()} on this network"
    return None


# Reads that go out beside the one waited for (a few at a time, each a short eth_call).
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ens-read")


class EnsResolution:
    """Forward and reverse resolution with CCIP-Read bounded by `timeout` and `max_bytes`."""

    def __init__(self, timeout: float, max_bytes: int = MAX_GATEWAY_BYTES, policy: HostPolicy | None = None):
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.policy = policy

    def address(self, name: str) -> Resolved | None:
        """The ETH address `name` resolves to (None when it has none)."""
        node = ens.namehash(name)
        found = self._resolve(name, _call("addr(bytes32)", ["bytes32"], [node]))
        if found is None or len(found.value) < 32:
            return None
        address = ens.address_or_none("0x" + decode(["address"], found.value)[0][2:])
        return None if address is None else Resolved(address, found.resolver, found.route, found.via)

    def text(self, name: str, key: str) -> Resolved | None:
        """A text record of `name` (None when unset)."""
        node = ens.namehash(name)
        found = self._resolve(name, _call("text(bytes32,string)", ["bytes32", "string"], [node, key]))
        if found is None or not found.value:
            return None
        value = decode(["string"], found.value)[0]
        return Resolved(value, found.resolver, found.route, found.via) if value else None

    def reverse_name(self, address: str) -> Resolved | None:
        """The name in `address`'s reverse record (not checked against forward resolution)."""
        reverse = f"{checksum_address(address)[2:].lower()}.addr.reverse"
        found = self._resolve(reverse, _call("name(bytes32)", ["bytes32"], [ens.namehash(reverse)]))
        if found is None or not found.value:
            return None
        value = decode(["string"], found.value)[0]
        return Resolved(value, found.resolver, found.route, found.via) if value else None

    def _resolve(self, name: str, calldata: bytes) -> Resolved | None:
        """UniversalResolver.resolve(name, calldata), following CCIP-Read; None when the name has no
        resolver or its resolver has no such record."""
        from ens.utils import dns_encode_name  # type: ignore[import-untyped]

        universal = ens.at("UniversalResolver", universal_resolver_address())
        dns_name = bytes(dns_encode_name(name))
        # Where the resolver was found (for the report's route) is read while the name resolves.
        found_resolver = _pool.submit(universal.findResolver, dns_name)
        try:
            return self._resolve_with(name, dns_name, calldata, found_resolver)
        finally:
            found_resolver.cancel()

    def _resolve_with(self, name: str, dns_name: bytes, calldata: bytes, found_resolver: Future) -> Resolved | None:
        def where() -> tuple[str, str, str]:
            resolver, _node, offset = found_resolver.result()
            if int(offset):
                return str(resolver), ROUTE_WILDCARD, f"(resolver of {_dns_suffix(dns_name, int(offset))})"
            return str(resolver), ROUTE_ONCHAIN, ""

        data = function_signature_to_4byte_selector("resolve(bytes,bytes)") + encode(
            ["bytes", "bytes"], [dns_name, calldata]
        )
        to = checksum_address(universal_resolver_address())
        gateways: list[str] = []
        for _ in range(MAX_LOOKUPS + 1):
            outcome = _eth_call(to, data)
            if isinstance(outcome, bytes):
                result, answered_by = decode(["bytes", "address"], outcome)
                _resolver, route, via = where()
                if gateways:
                    route, via = ROUTE_OFFCHAIN, ", ".join(sorted(set(gateways)))
                return Resolved(bytes(result), checksum_address(answered_by), route, via)
            if outcome[0] == "lookup":
                lookup = outcome[1]
                if ens.address_or_none(str(lookup["sender"])) != to:
                    raise ResolutionError(
                        f"{name}: an offchain lookup named {lookup['sender']}, not the contract called"
                    )
                response = self._answer_lookup(name, lookup, gateways)
                data = bytes(lookup["callbackFunction"]) + encode(
                    ["bytes", "bytes"], [response, bytes(lookup["extraData"])]
                )
                continue
            self._raise_unless_missing(name, outcome[1], _resolver_of(found_resolver), gateways)
            return None
        raise ResolutionError(f"{name}: more than {MAX_LOOKUPS} offchain lookups in one resolution")

    def _answer_lookup(self, name: str, lookup: dict[str, Any], gateways: list[str]) -> bytes:
        """The response for an OffchainLookup: a local batch gateway (ENSIP-21) for the
        UniversalResolver's, or one EIP-3668 request."""
        call_data = bytes(lookup["callData"])
        if call_data[:4] != _BATCH_QUERY:
            return self._fetch(name, str(lookup["sender"]), list(lookup["urls"]), call_data, gateways)
        (requests,) = decode(["(address,string[],bytes)[]"], call_data[4:])
        if len(requests) > MAX_LOOKUPS:
            raise ResolutionError(f"{name}: {len(requests)} offchain lookups asked at once, over {MAX_LOOKUPS}")
        failures: list[bool] = []
        responses: list[bytes] = []
        for sender, urls, request in requests:
            failures.append(False)
            responses.append(self._fetch(name, sender, list(urls), bytes(request), gateways))
        return encode(["bool[]", "bytes[]"], [failures, responses])

    def _fetch(self, name: str, sender: str, urls: list[str], call_data: bytes, gateways: list[str]) -> bytes:
        """EIP-3668 from the client's side: GET when the URL carries {data}, else POST; a 4xx ends
        the lookup, anything else tries the next URL. Only https URLs are followed."""
        from urllib.parse import urlsplit

        sender_hex = checksum_address(sender).lower()
        data_hex = "0x" + call_data.hex()
        problems: list[str] = []
        with Downloader(self.timeout, policy=self.policy) as downloader:
            for template in urls[:MAX_URLS]:
                if urlsplit(template).scheme.lower() != "https":
                    problems.append(f"{template} is not https")
                    continue
                url = template.replace("{sender}", sender_hex).replace("{data}", data_hex)
                body = None if "{data}" in template else json.dumps({"data": data_hex, "sender": sender_hex}).encode()
                fetched = downloader.fetch(url, self.max_bytes, _raw, self.max_bytes, json_body=body)
                origin = f"https://{urlsplit(url).netloc}"
                if fetched.content is None:
                    problems.append(fetched.error or f"no answer from {origin}")
                    if fetched.status is not None and 400 <= fetched.status < 500:
                        break
                    continue
                try:
                    answer = json.loads(fetched.content)
                    response = bytes.fromhex(str(answer["data"]).removeprefix("0x"))
                except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                    problems.append(f'the gateway {origin} did not answer with JSON {{"data": "0x…"}}')
                    continue
                gateways.append(origin)
                return response
        reasons = "; ".join(problems) or "the resolver named no gateway"
        raise ResolutionError(f"offchain lookup for {name} failed: {reasons}")

    def _raise_unless_missing(self, name: str, data: bytes, resolver: str, gateways: list[str]) -> None:
        """Returns for 'no such record'; raises a `ResolutionError` naming the cause otherwise."""
        signature = _ERRORS.get(data[:4])
        if signature in ("ResolverNotFound(bytes)", "UnsupportedResolverProfile(bytes4)"):
            return
        if signature == "ResolverNotContract(bytes,address)":
            raise ResolutionError(f"the resolver of {name} ({resolver}) is not a contract")
        if signature == "ResolverError(bytes)":
            (inner,) = decode(["bytes"], data[4:])
            cause = _describe(bytes(inner))
            if gateways:
                raise ResolutionError(
                    f"the resolver of {name} rejected the answer of {', '.join(sorted(set(gateways)))}: {cause}"
                )
            raise ResolutionError(f"the resolver of {name} ({resolver}) reverted: {cause}")
        raise ResolutionError(f"resolving {name} failed: {_describe(data)}")


def _resolver_of(found_resolver: Future) -> str:
    try:
        return str(found_resolver.result()[0])
    except Exception:  # the UniversalResolver's own revert: the resolve call's error says more
        return "unknown"


def _raw(body: bytes) -> bytes:
    return body


def _describe(data: bytes) -> str:
    signature = _ERRORS.get(data[:4])
    if signature == "Error(string)":
        return str(decode(["string"], data[4:])[0])
    if signature == "HttpError(uint16,string)":
        status, message = decode(["uint16", "string"], data[4:])
        return f"HTTP {status} {message}"
    if not data:
        return "reverted without a reason"
    return f"error 0x{data[:4].hex()} ({len(data)} bytes)"


def _call(signature: str, types: list[str], values: list[Any]) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, values)


def _eth_call(to: str, data: bytes) -> bytes | tuple[str, Any]:
    """The return data, ("lookup", OffchainLookup payload) or ("revert", revert data)."""
    from ape import chain
    from web3.exceptions import ContractLogicError, OffchainLookup

    web3 = chain.provider.web3
    try:
        return bytes(web3.eth.call({"to": to, "data": "0x" + data.hex()}, "latest", ccip_read_enabled=False))
    except OffchainLookup as lookup:
        return ("lookup", lookup.payload)
    except ContractLogicError as error:
        raw = error.data if isinstance(error.data, str) else ""
        return ("revert", bytes.fromhex(raw.removeprefix("0x")) if raw else b"")
    except Exception as error:  # the provider's own errors (connection, RPC)
        raise ResolutionError(f"calling the UniversalResolver failed: {one_line(error)}") from error


def _dns_suffix(dns_name: bytes, offset: int) -> str:
    labels = []
    while offset < len(dns_name) and dns_name[offset]:
        length = dns_name[offset]
        labels.append(dns_name[offset + 1 : offset + 1 + length].decode("utf-8", "replace"))
        offset += 1 + length
    return ".".join(labels)
