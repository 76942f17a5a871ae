"""ENS resolution as wallets do it: through the chain's UniversalResolver (ENSIP-23), which finds
the resolver by walking up the name (ENSIP-10 wildcards) and asks for offchain answers with
EIP-3668 (CCIP-Read).

web3.py's `ens` module (web3 7, behind ape-ens) resolves through the same UniversalResolver, and its
building blocks are used here: ENSIP-15 normalisation and DNS encoding of names (through
`tracker.identity.ens`, which needs no normaliser for plain lowercase names), the resolver and
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector

from tracker.chain import logs
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
_FIND_RESOLVER = function_signature_to_4byte_selector("findResolver(bytes)")
_RESOLVE = function_signature_to_4byte_selector("resolve(bytes,bytes)")
_OFFCHAIN_LOOKUP = function_signature_to_4byte_selector("OffchainLookup(address,string[],bytes,bytes4,bytes)")
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
    registry_code, universal_code = _codes([ens.ENS_REGISTRY_ADDRESS, universal_resolver_address()])
    if not registry_code:
        return "no ENS registry on this network"
    if not universal_code:
        return f"no UniversalResolver at {universal_resolver_address()} on this network"
    return None


_lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ens-lookup")

# What one call to the UniversalResolver gave: its return data, an OffchainLookup to follow, or a
# revert (its data), or the reason the call could not be made at all.
Outcome = bytes | tuple[str, Any]


class EnsResolution:
    """Forward and reverse resolution with CCIP-Read bounded by `timeout` and `max_bytes`.

    Each resolution is one round trip to the node when no gateway is involved: the
    UniversalResolver's `resolve` of every record wanted and its `findResolver` of the name (which
    says how the name was resolved) go out as one JSON-RPC batch."""

    def __init__(self, timeout: float, max_bytes: int = MAX_GATEWAY_BYTES, policy: HostPolicy | None = None):
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.policy = policy

    def address(self, name: str) -> Resolved | None:
        """The ETH address `name` resolves to (None when it has none)."""
        return _raised(self.address_and_text(name, None)[0])

    def text(self, name: str, key: str) -> Resolved | None:
        """A text record of `name` (None when unset)."""
        return _raised(self._resolve(name, [_text_call(name, key)])[0], _as_text)

    def address_and_text(
        self, name: str, key: str | None
    ) -> tuple[Resolved | ResolutionError | None, Resolved | ResolutionError | None]:
        """The ETH address of `name` and (with `key`) one of its text records, resolved together
        (one round trip); each is its value, None when unset, or why it could not be resolved."""
        calls = [_call("addr(bytes32)", ["bytes32"], [ens.namehash(name)])]
        if key is not None:
            calls.append(_text_call(name, key))
        found = self._resolve(name, calls)
        address = found[0]
        if isinstance(address, Resolved):
            value = (
                ens.address_or_none("0x" + decode(["address"], address.value)[0][2:])
                if len(address.value) >= 32
                else None
            )
            address = None if value is None else Resolved(value, address.resolver, address.route, address.via)
        text = _as_text(found[1]) if key is not None else None
        return address, text

    def reverse_name(self, address: str) -> Resolved | None:
        """The name in `address`'s reverse record (not checked against forward resolution)."""
        reverse = f"{checksum_address(address)[2:].lower()}.addr.reverse"
        found = self._resolve(reverse, [_call("name(bytes32)", ["bytes32"], [ens.namehash(reverse)])])
        return _raised(found[0], _as_text)

    def _resolve(self, name: str, calldatas: list[bytes]) -> list[Resolved | ResolutionError | None]:
        """UniversalResolver.resolve(name, calldata) for each calldata, following CCIP-Read; None
        where the name has no resolver or its resolver has no such record."""
        dns_name = ens.dns_encode(name)
        to = checksum_address(universal_resolver_address())
        requests = [_RESOLVE + encode(["bytes", "bytes"], [dns_name, calldata]) for calldata in calldatas]
        # Where the resolver was found (for the report's route) is read with the records.
        *outcomes, found_resolver = _eth_calls(to, [*requests, _FIND_RESOLVER + encode(["bytes"], [dns_name])])

        def settle(outcome: Outcome) -> Resolved | ResolutionError | None:
            try:
                return self._resolve_with(name, dns_name, to, outcome, found_resolver)
            except ResolutionError as error:
                return error

        # Records that go offchain follow their gateways at the same time (each within the timeout).
        if sum(1 for outcome in outcomes if not isinstance(outcome, bytes) and outcome[0] == "lookup") > 1:
            return list(_lookups.map(settle, outcomes))
        return [settle(outcome) for outcome in outcomes]

    def _resolve_with(
        self, name: str, dns_name: bytes, to: str, outcome: Outcome, found_resolver: Outcome
    ) -> Resolved | None:
        def where() -> tuple[str, str, str]:
            resolver, offset = _found(found_resolver)
            if offset:
                return resolver, ROUTE_WILDCARD, f"(resolver of {_dns_suffix(dns_name, offset)})"
            return resolver, ROUTE_ONCHAIN, ""

        gateways: list[str] = []
        for _ in range(MAX_LOOKUPS + 1):
            if isinstance(outcome, bytes):
                result, answered_by = decode(["bytes", "address"], outcome)
                _resolver, route, via = where()
                if gateways:
                    route, via = ROUTE_OFFCHAIN, ", ".join(sorted(set(gateways)))
                return Resolved(bytes(result), checksum_address(answered_by), route, via)
            if outcome[0] == "failed":
                raise ResolutionError(f"calling the UniversalResolver failed: {outcome[1]}")
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
                (outcome,) = _eth_calls(to, [data])
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


def _found(found_resolver: Outcome) -> tuple[str, int]:
    """The resolver `findResolver` named and the offset of the name it answers for."""
    if not isinstance(found_resolver, bytes):
        cause = _describe(found_resolver[1]) if found_resolver[0] == "revert" else str(found_resolver[1])
        raise ResolutionError(f"the UniversalResolver's findResolver failed: {cause}")
    resolver, _node, offset = decode(["address", "bytes32", "uint256"], found_resolver)
    return str(resolver), int(offset)


def _resolver_of(found_resolver: Outcome) -> str:
    try:
        return _found(found_resolver)[0]
    except ResolutionError:  # the UniversalResolver's own revert: the resolve call's error says more
        return "unknown"


def _raised(result: Resolved | ResolutionError | None, convert: Any = None) -> Resolved | None:
    if isinstance(result, ResolutionError):
        raise result
    return convert(result) if convert is not None else result


def _as_text(found: Resolved | ResolutionError | None) -> Resolved | ResolutionError | None:
    """A string record (a text record or a reverse name) from its return data; None when empty."""
    if not isinstance(found, Resolved) or not found.value:
        return found
    value = decode(["string"], found.value)[0]
    return Resolved(value, found.resolver, found.route, found.via) if value else None


def _text_call(name: str, key: str) -> bytes:
    return _call("text(bytes32,string)", ["bytes32", "string"], [ens.namehash(name), key])


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


def _json_rpc() -> Any:
    """The chain layer's JSON-RPC for the connected provider (None: ape's in-process chain)."""
    from tracker.chain.rpc import JsonRpc

    rpc = logs.chain_rpc()
    return rpc if isinstance(rpc, JsonRpc) else None


def _codes(addresses: list[str]) -> list[bytes]:
    """The code at each address, in one round trip."""
    rpc = _json_rpc()
    if rpc is None:
        from ape import chain

        return [bytes(chain.provider.get_code(checksum_address(address))) for address in addresses]
    try:
        answers = rpc.batch([("eth_getCode", [checksum_address(a), "latest"]) for a in addresses], str)
    except TrackerError as error:
        raise ResolutionError(f"reading ENS's contracts failed: {one_line(error)}") from error
    return [bytes.fromhex(str(answer or "0x").removeprefix("0x")) for answer in answers]


def _eth_calls(to: str, calls: list[bytes]) -> list[Outcome]:
    """Each call's return data, ("lookup", OffchainLookup payload), ("revert", revert data) or
    ("failed", why): one JSON-RPC batch over HTTP, one call after another on ape's in-process chain."""
    rpc = _json_rpc()
    if rpc is None:
        return [_eth_call(to, data) for data in calls]
    from tracker.chain.rpc import RpcError

    requests = [("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"]) for data in calls]
    try:
        answers = rpc.batch(requests, str, settled=True)
    except TrackerError as error:  # the provider's own errors (connection, rate limits)
        return [("failed", one_line(error))] * len(calls)
    outcomes: list[Outcome] = []
    for answer in answers:
        if not isinstance(answer, RpcError):
            outcomes.append(bytes.fromhex(str(answer or "0x").removeprefix("0x")))
            continue
        data = answer.data if isinstance(answer.data, str) and answer.data.startswith("0x") else None
        if data is None:
            reverted = answer.code == 3 or "revert" in answer.node_message.lower()
            outcomes.append(("revert", b"") if reverted else ("failed", one_line(answer)))
            continue
        outcomes.append(_reverted(bytes.fromhex(data[2:])))
    return outcomes


def _reverted(data: bytes) -> Outcome:
    """A revert's data: EIP-3668's OffchainLookup (to follow), or any other revert."""
    if data[:4] != _OFFCHAIN_LOOKUP:
        return ("revert", data)
    sender, urls, call_data, callback, extra = decode(["address", "string[]", "bytes", "bytes4", "bytes"], data[4:])
    return (
        "lookup",
        {"sender": sender, "urls": list(urls), "callData": call_data, "callbackFunction": callback, "extraData": extra},
    )


def _eth_call(to: str, data: bytes) -> Outcome:
    """One call through web3 (ape's in-process chain, which speaks no JSON-RPC)."""
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
        return ("failed", one_line(error))


def _dns_suffix(dns_name: bytes, offset: int) -> str:
    labels = []
    while offset < len(dns_name) and dns_name[offset]:
        length = dns_name[offset]
        labels.append(dns_name[offset + 1 : offset + 1 + length].decode("utf-8", "replace"))
        offset += 1 + length
    return ".".join(labels)
