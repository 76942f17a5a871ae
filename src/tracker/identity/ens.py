"""ENS as the tracker uses it to link an identity: who holds a name (wrapped or not), whether an
account may set its records, and linking the account (name -> address, `url` text record, reverse
record).

Names are validated and normalised (ENSIP-15, web3.py's normaliser) and hashed (EIP-137). A name
made only of plain lowercase ASCII labels is its own ENSIP-15 form: it skips the normaliser, whose
tables cost a process about 70 MB, which a verifier reading one name does not need. A name is
*wrapped* when its registry owner is the chain's NameWrapper: its holder is then the owner of the
NameWrapper's ERC-1155 token, its resolver is set through the NameWrapper, and its expiry and fuses
live there. A .eth 2LD's expiry comes from the .eth registrar. Contract addresses are those ENS
publishes for mainnet and Sepolia (`@ensdomains/ensjs` 4.3.1); any other chain is taken to carry
Sepolia's, which is where `tracker.dev.ens` installs its local ENS.

Records read here are read from the name's own resolver (exact match), which is what the account
writes to. Resolution as a wallet does it (UniversalResolver, wildcards, CCIP-Read) is the
verifier's, in `tracker.verify.ens_resolution`.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.chain.steps import StepResult, send_or_estimate, skipped
from tracker.documents.ids import checksum_address
from tracker.errors import TrackerError
from tracker.identity import ens_abi

ENS_REGISTRY_ADDRESS = "0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e"
ZERO_ADDRESS = "0x" + "0" * 40
ROOT_NODE = bytes(32)
URL_KEY = "url"
GRACE_PERIOD = 90 * 24 * 3600  # .eth names stay their holder's for 90 days after expiry

# NameWrapper fuses (INameWrapper)
CANNOT_UNWRAP = 1
CANNOT_SET_RESOLVER = 8
PARENT_CANNOT_CONTROL = 1 << 16
IS_DOT_ETH = 1 << 17

MAINNET_CHAIN_ID = 1


@dataclass(frozen=True)
class EnsAddresses:
    """Where a chain's ENS contracts are (the registry is at ENS_REGISTRY_ADDRESS everywhere)."""

    base_registrar: str
    name_wrapper: str
    eth_registrar_controller: str
    public_resolver: str
    reverse_registrar: str
    universal_resolver: str


# From @ensdomains/ensjs 4.3.1, src/contracts/consts.ts: the NameWrapper, the controller that
# registers wrapped names (wrappedEthRegistrarController), the current public resolver, the reverse
# registrar and the UniversalResolver proxy.
SEPOLIA = EnsAddresses(
    base_registrar="0x57f1887a8BF19b14fC0dF6Fd9B2acc9Af147eA85",
    name_wrapper="0x0635513f179D50A207757E05759CbD106d7dFcE8",
    eth_registrar_controller="0x4477cAc137F3353Ca35060E01E5aEb777a1Ca01B",
    public_resolver="0xE99638b40E4Fff0129D56f03b55b6bbC4BBE49b5",
    reverse_registrar="0xA0a1AbcDAe1a2a4A2EF8e9113Ff0e02DD81DC0C6",
    universal_resolver="0xeEeEEEeE14D718C2B47D9923Deab1335E144EeEe",
)
MAINNET = EnsAddresses(
    base_registrar="0x57f1887a8BF19b14fC0dF6Fd9B2acc9Af147eA85",
    name_wrapper="0xD4416b13d2b3a9aBae7AcD5D6C2BbDBE25686401",
    eth_registrar_controller="0x253553366Da8546fC250F225fe3d25d0C782303b",
    public_resolver="0xF29100983E058B709F3D539b0c765937B804AC15",
    reverse_registrar="0xa58E81fe9b61B5c3fE2AFD33CF304c454AbFc7Cb",
    universal_resolver="0xeEeEEEeE14D718C2B47D9923Deab1335E144EeEe",
)


class EnsError(TrackerError):
    """ENS is missing or refused an operation."""


class EnsNotFoundError(EnsError):
    """No ENS registry is deployed on the connected chain."""


class InvalidEnsNameError(EnsError):
    """The text given is not a valid ENS name."""


class NameNotControlledError(EnsError):
    """The account may not set the name's records (not its holder or manager, or it expired)."""


class EnsBuildMissingError(EnsError):
    """ENS's published contract builds are not installed in node_modules."""


@dataclass(frozen=True)
class EnsDeployment:
    """The ENS contracts of a chain."""

    registry: str
    public_resolver: str
    reverse_registrar: str
    name_wrapper: str | None = None
    base_registrar: str | None = None
    eth_registrar_controller: str | None = None
    universal_resolver: str | None = None


@dataclass(frozen=True)
class NameHolding:
    """Who holds a name and until when, as the registry, the NameWrapper and the registrar say."""

    name: str
    node: bytes
    registry_owner: str | None
    wrapped: bool
    holder: str | None  # the NameWrapper token's owner when wrapped, else the registry owner
    fuses: int
    expiry: int | None  # None: the name does not expire by itself (a parent-controlled subname)
    now: int

    @property
    def grace_ends(self) -> int | None:
        """The end of a .eth 2LD's grace period (None for other names)."""
        if self.expiry is None or not is_eth_2ld(self.name):
            return None
        return self.expiry + GRACE_PERIOD

    @property
    def expired(self) -> bool:
        return self.expiry is not None and self.expiry <= self.now

    @property
    def in_grace_period(self) -> bool:
        ends = self.grace_ends
        return self.expired and ends is not None and self.now < ends


@dataclass(frozen=True)
class NameControl:
    """That an account may link a name: how (holder or manager), and the resolver it will use."""

    holding: NameHolding
    role: str  # "holder", "registry operator" or "NameWrapper manager"
    resolver: str | None  # the name's resolver now (None: none set yet)
    wanted_resolver: str  # the resolver the link writes to


def addresses_for(chain_id: int) -> EnsAddresses:
    """ENS's published addresses for mainnet; Sepolia's for every other chain (local installs too)."""
    return MAINNET if chain_id == MAINNET_CHAIN_ID else SEPOLIA


def current_addresses() -> EnsAddresses:
    from ape import chain

    return addresses_for(int(chain.chain_id))


@functools.cache
def contract_type(name: str) -> Any:
    """The ethpm ContractType of one ENS contract: the registry from its npm build (with bytecode),
    the others from the interfaces in `ens_abi` (ABI only)."""
    from ethpm_types import ContractType

    abis = {
        "NameWrapper": ens_abi.NAME_WRAPPER,
        "BaseRegistrar": ens_abi.BASE_REGISTRAR,
        "PublicResolver": ens_abi.PUBLIC_RESOLVER,
        "ReverseRegistrar": ens_abi.reverse_registrar(),
        "UniversalResolver": ens_abi.universal_resolver(),
    }
    if name in abis:
        return ContractType.model_validate({"contractName": name, "abi": abis[name]})
    if name != "ENSRegistry":
        raise KeyError(name)
    from ape import project

    path = Path(project.path) / "node_modules" / "@ensdomains" / "ens" / "build" / "contracts" / "ENSRegistry.json"
    if not path.exists():
        raise EnsBuildMissingError(f"ENS contract build missing at {path}: run bin/setup (npm install)")
    data = json.loads(path.read_text())
    return ContractType.model_validate(
        {
            "contractName": data["contractName"],
            "abi": data["abi"],
            "deploymentBytecode": {"bytecode": data["bytecode"]},
            "runtimeBytecode": {"bytecode": data["deployedBytecode"]},
        }
    )


def at(name: str, address: str) -> Any:
    """An ape ContractInstance of one ENS contract type at an address (no code lookup)."""
    from ape.contracts import ContractInstance

    return ContractInstance(checksum_address(address), contract_type(name))


# A label ENSIP-15 leaves as it is: lowercase ASCII letters, digits and hyphens (each its own
# mapping), unless its third and fourth characters are hyphens (the one rule ENSIP-15 applies to
# such a label: "ab--" is refused as a label extension). Anything else takes the full normaliser.
_PLAIN_LABEL = re.compile(r"[a-z0-9-]+")
MAX_DNS_LABEL_BYTES = 255


def is_plain_name(name: str) -> bool:
    """Whether every label of `name` is plain lowercase ASCII, so that ENSIP-15 maps it to itself."""
    return all(_PLAIN_LABEL.fullmatch(label) and label[2:4] != "--" for label in name.split("."))


def ensip15(name: str) -> str:
    """The ENSIP-15 form of a name (web3.py's normaliser, which raises its `InvalidName`); a plain
    name (`is_plain_name`) is its own form and is returned without loading the normaliser."""
    if is_plain_name(name):
        return name
    from ens.utils import normalize_name as full_ensip15  # type: ignore[import-untyped]

    return str(full_ensip15(name))


def dns_encode(name: str) -> bytes:
    """The DNS wire form of a name (ENSIP-10's `bytes name`) as web3.py's `dns_encode_name` makes
    it; a plain name is encoded here, without loading the normaliser."""
    if not is_plain_name(name) or any(len(label) > MAX_DNS_LABEL_BYTES for label in name.split(".")):
        from ens.utils import dns_encode_name

        return bytes(dns_encode_name(name))
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.split(".")) + b"\0"


def normalize_name(name: str) -> str:
    """The ENSIP-15 normalised form of a name; raises `InvalidEnsNameError` for anything else."""
    text = name.strip()
    if "." in text and is_plain_name(text):
        return text  # valid, and its own ENSIP-15 form
    from ape_ens import ENS

    if "." not in text or not ENS.is_valid_name(text):
        raise InvalidEnsNameError(f"not a valid ENS name: {name!r} (expected e.g. myname.eth)")
    return ensip15(text)


def namehash(name: str) -> bytes:
    """The EIP-137 node of a name (the root for the empty name)."""
    return _node(ensip15(name) if name else "")


def _node(normalised: str) -> bytes:
    """EIP-137's namehash of a name already in ENSIP-15 form (ape-ens's `namehash` would normalise
    it again, loading the normaliser even for a plain name)."""
    from eth_utils import keccak

    node = ROOT_NODE
    if normalised:
        for label in reversed(normalised.split(".")):
            node = keccak(node + keccak(label.encode("utf-8")))
    return node


def labelhash(label: str) -> bytes:
    from eth_utils import keccak

    return keccak(text=label)


def is_eth_2ld(name: str) -> bool:
    labels = name.split(".")
    return len(labels) == 2 and labels[1] == "eth"


def reverse_node(address: str) -> bytes:
    """The node of `<address>.addr.reverse`, where an address's reverse record lives."""
    return _node(f"{_bare(address)}.addr.reverse")


def ens_available() -> bool:
    """Whether the connected chain has code at the canonical ENS registry address."""
    return _has_code(ENS_REGISTRY_ADDRESS)


def registry() -> Any:
    """The ENS registry of the connected chain; raises `EnsNotFoundError` when there is none."""
    from ape import chain

    if not ens_available():
        raise EnsNotFoundError(f"no ENS registry at {ENS_REGISTRY_ADDRESS} on chain id {chain.chain_id}")
    return at("ENSRegistry", ENS_REGISTRY_ADDRESS)


def find_ens() -> EnsDeployment | None:
    """The chain's ENS contracts (None unless the registry, the reverse registrar that owns
    addr.reverse, the NameWrapper and the UniversalResolver are all there)."""
    if not ens_available():
        return None
    reverse_registrar = address_or_none(registry().owner(namehash("addr.reverse")))
    if reverse_registrar is None or not _has_code(reverse_registrar):
        return None
    known = current_addresses()
    if not all(_has_code(address) for address in (known.name_wrapper, known.universal_resolver)):
        return None
    return EnsDeployment(
        registry=ENS_REGISTRY_ADDRESS,
        public_resolver=known.public_resolver,
        reverse_registrar=reverse_registrar,
        name_wrapper=known.name_wrapper,
        base_registrar=known.base_registrar,
        eth_registrar_controller=known.eth_registrar_controller,
        universal_resolver=known.universal_resolver,
    )


def name_node(name: str) -> bytes:
    """The node of a user-given name, after validating and normalising it."""
    return namehash(normalize_name(name))


def name_owner(name: str) -> str | None:
    """The registry owner of a name (the NameWrapper for a wrapped name), or None."""
    return address_or_none(registry().owner(name_node(name)))


def chain_time() -> int:
    """The timestamp of the latest block (what expiries are compared with on chain)."""
    from ape import chain

    return int(chain.blocks.head.timestamp)


def name_holding(name: str) -> NameHolding:
    """Who holds `name` (the token holder when wrapped) and its expiry and fuses."""
    name = normalize_name(name)
    node = namehash(name)
    known = current_addresses()
    owner = address_or_none(registry().owner(node))
    wrapped = owner is not None and owner == checksum_address(known.name_wrapper) and _has_code(owner)
    holder, fuses, expiry = owner, 0, None
    if wrapped:
        token_owner, token_fuses, token_expiry = at("NameWrapper", known.name_wrapper).getData(int.from_bytes(node))
        holder, fuses = address_or_none(token_owner), int(token_fuses)
        if int(token_expiry) and (int(token_fuses) & PARENT_CANNOT_CONTROL or holder is None):
            expiry = int(token_expiry)
    if is_eth_2ld(name) and _has_code(known.base_registrar):
        registrar_expiry = int(
            at("BaseRegistrar", known.base_registrar).nameExpires(int.from_bytes(labelhash(name[:-4])))
        )
        expiry = registrar_expiry or None
    return NameHolding(name, node, owner, wrapped, holder, fuses, expiry, chain_time())


def resolver_of(name: str) -> str | None:
    """The resolver set in the registry for exactly this name, or None."""
    return address_or_none(registry().resolver(name_node(name)))


def resolve_address(name: str) -> str | None:
    """The `addr` record in the name's own resolver, or None."""
    resolver = resolver_of(name)
    if resolver is None:
        return None
    return address_or_none(_resolver_read(lambda: at("PublicResolver", resolver).addr(name_node(name))))


def text_record(name: str, key: str) -> str | None:
    """A text record in the name's own resolver (e.g. `url`), or None."""
    resolver = resolver_of(name)
    if resolver is None:
        return None
    value = _resolver_read(lambda: at("PublicResolver", resolver).text(name_node(name), key))
    return str(value) if value else None


def reverse_name(address: str) -> str | None:
    """The name in an address's reverse record (not checked against the forward record), or None."""
    node = reverse_node(address)
    resolver = address_or_none(registry().resolver(node))
    if resolver is None:
        return None
    value = _resolver_read(lambda: at("PublicResolver", resolver).name(node))
    return str(value) if value else None


def _date(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def require_control(account: str, name: str) -> NameControl:
    """That `account` may link `name`: it holds it, or manages it as an operator approved on the
    registry (unwrapped) or on the NameWrapper (wrapped) and may write the resolver's records.

    Raises `NameNotControlledError` naming the holder, the expiry and what to do otherwise.
    """
    account = checksum_address(account)
    holding = name_holding(name)
    name = holding.name
    if holding.expired and holding.in_grace_period:
        raise NameNotControlledError(
            f"ENS name {name} expired on {_date(holding.expiry or 0)} and is in its grace period until "
            f"{_date(holding.grace_ends or 0)}: its holder {holding.holder or 'of record'} must renew it before "
            "it can be linked"
        )
    if holding.expired:
        ended = f" and its grace period ended on {_date(holding.grace_ends)}" if holding.grace_ends else ""
        again = f"register it again to {account}" if is_eth_2ld(name) else "ask its parent's holder to renew it"
        raise NameNotControlledError(f"ENS name {name} expired on {_date(holding.expiry or 0)}{ended}: {again} first")
    if holding.holder is None:
        raise NameNotControlledError(
            f"ENS name {name} is not registered: register it to {account} first (for a subname, ask the "
            "parent's holder to create it)"
        )
    role = _role(account, holding)
    resolver = address_or_none(registry().resolver(holding.node))
    if resolver is None and holding.wrapped and holding.fuses & CANNOT_SET_RESOLVER:
        raise NameNotControlledError(
            f"ENS name {name} has no resolver and its CANNOT_SET_RESOLVER fuse is burned: no resolver can be set"
        )
    wanted = resolver or checksum_address(current_addresses().public_resolver)
    if role != "holder":
        _require_resolver_approval(account, holding, wanted, role)
    return NameControl(holding, role, resolver, wanted)


def _role(account: str, holding: NameHolding) -> str:
    """How the account may manage the name; raises `NameNotControlledError` when it may not."""
    holder = holding.holder or ZERO_ADDRESS
    if holder == account:
        return "holder"
    if holding.wrapped:
        if at("NameWrapper", current_addresses().name_wrapper).isApprovedForAll(holder, account):
            return "NameWrapper manager"
        raise NameNotControlledError(
            f"ENS name {holding.name} is held by {holder} (wrapped: the NameWrapper's token), not by {account}: "
            f"deploy with {holder}, or let it approve {account} as a manager on the NameWrapper (setApprovalForAll)"
        )
    if registry().isApprovedForAll(holder, account):
        return "registry operator"
    raise NameNotControlledError(
        f"ENS name {holding.name} is owned by {holder} in the ENS registry, not by {account}: deploy with "
        f"{holder}, or let it approve {account} as an operator on the registry (setApprovalForAll)"
    )


def _require_resolver_approval(account: str, holding: NameHolding, resolver: str, role: str) -> None:
    """A wrapper-aware public resolver takes records only from the holder or an account the holder
    approved on the resolver itself; operator approval on the registry or NameWrapper is not enough."""
    contract = at("PublicResolver", resolver)
    holder = holding.holder or ZERO_ADDRESS
    approved = _resolver_read(lambda: contract.isApprovedForAll(holder, account))
    delegated = _resolver_read(lambda: contract.isApprovedFor(holder, holding.node, account))
    if approved is None and delegated is None:
        return  # a resolver without these views: its own checks (estimated before sending) decide
    if approved or delegated:
        return
    raise NameNotControlledError(
        f"{account} manages ENS name {holding.name} as {role} for its holder {holder}, but the resolver "
        f"{resolver} takes records only from {holder} or an account it approved there: let {holder} approve "
        f"{account} on the resolver (setApprovalForAll, or approve for this name), or deploy with {holder}"
    )


def _resolver_read(read: Any) -> Any:
    """A resolver read; a resolver without that record type (it reverts) has no such record."""
    from ape.exceptions import ContractLogicError

    try:
        return read()
    except ContractLogicError:
        return None


def link_identity(account: Any, name: str, uri: str, dry_run: bool = False) -> list[StepResult]:
    """Makes `name` resolve to the account with text `url` = `uri`, and the account's reverse
    record name it; each step is skipped when it already matches.

    The resolver of a wrapped name is set through the NameWrapper, of an unwrapped one through the
    registry; records are written to the resolver, the reverse record through the reverse registrar.
    Raises `NameNotControlledError` (see `require_control`) before anything is sent.
    """
    name = normalize_name(name)
    node = namehash(name)
    address = checksum_address(str(account.address))
    control = require_control(address, name)
    results: list[StepResult] = []

    resolver = control.wanted_resolver
    # In a dry run a resolver about to be set has no records yet.
    resolver_pending = control.resolver is None and dry_run
    if control.resolver is None:
        if control.holding.wrapped:
            wrapper = at("NameWrapper", current_addresses().name_wrapper)
            setter, detail = wrapper.setResolver, f"{name} -> {resolver} (through the NameWrapper)"
        else:
            setter, detail = registry().setResolver, f"{name} -> {resolver}"
        results.append(send_or_estimate("ENS resolver", detail, setter, (node, resolver), account, dry_run))
    else:
        results.append(skipped("ENS resolver", f"{name} -> {resolver}"))
    public_resolver = at("PublicResolver", resolver)

    current = None if resolver_pending else address_or_none(_resolver_read(lambda: public_resolver.addr(node)))
    if current == address:
        results.append(skipped("ENS addr", f"{name} -> {address}"))
    else:
        results.append(
            send_or_estimate(
                "ENS addr", f"{name} -> {address}", public_resolver.setAddr, (node, address), account, dry_run
            )
        )

    current_url = None if resolver_pending else text_record(name, URL_KEY)
    if current_url == uri:
        results.append(skipped("ENS text url", f"{name} url = {uri}"))
    else:
        results.append(
            send_or_estimate(
                "ENS text url", f"{name} url = {uri}", public_resolver.setText, (node, URL_KEY, uri), account, dry_run
            )
        )

    if reverse_name(address) == name:
        results.append(skipped("ENS reverse record", f"{address} -> {name}"))
    else:
        reverse_registrar = address_or_none(registry().owner(namehash("addr.reverse")))
        if reverse_registrar is None:
            raise EnsError("no reverse registrar owns addr.reverse on this chain")
        results.append(
            send_or_estimate(
                "ENS reverse record",
                f"{address} -> {name}",
                at("ReverseRegistrar", reverse_registrar).setName,
                (name,),
                account,
                dry_run,
            )
        )
    return results


def _has_code(address: str) -> bool:
    from ape import chain

    return bool(chain.provider.get_code(checksum_address(address)))


def address_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    if int(text, 16) == 0:
        return None
    return checksum_address(text)


def _bare(address: str) -> str:
    return checksum_address(address)[2:].lower()


def address_word(address: str) -> str:
    return "0x" + _bare(address).rjust(64, "0")
