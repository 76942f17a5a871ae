"""ENS as the tracker uses it: who owns a name, what it resolves to, its `url` text record, the
reverse record of an address, and linking an account's identity (name -> address, `url` record,
reverse record).

Contract interfaces come from ENS's own published builds in node_modules; names are validated
(ape-ens), normalised (ENSIP-15, web3.py) and hashed (ape-ens). Records are read from the
registry and the name's resolver. Installing ENS on a local chain is `tracker.dev.ens`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.chain.steps import StepResult, send_or_estimate, skipped
from tracker.documents.ids import checksum_address
from tracker.errors import TrackerError

ENS_REGISTRY_ADDRESS = "0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e"
ZERO_ADDRESS = "0x" + "0" * 40
ROOT_NODE = bytes(32)
URL_KEY = "url"


# npm package => build file, for each contract used here.
BUILDS = {
    "ENSRegistry": ("@ensdomains/ens", "ENSRegistry"),
    "PublicResolver": ("@ensdomains/resolver", "PublicResolver"),
    "ReverseRegistrar": ("@ensdomains/resolver", "ReverseRegistrar"),
}


class EnsError(TrackerError):
    """ENS is missing or refused an operation."""


class EnsNotFoundError(EnsError):
    """No ENS registry is deployed on the connected chain."""


class InvalidEnsNameError(EnsError):
    """The text given is not a valid ENS name."""


class NameNotControlledError(EnsError):
    """The account does not own (and is not approved for) the ENS name."""


class EnsBuildMissingError(EnsError):
    """ENS's published contract builds are not installed in node_modules."""


@dataclass(frozen=True)
class EnsDeployment:
    """The ENS contracts of a chain: registry, public resolver and reverse registrar."""

    registry: str
    public_resolver: str
    reverse_registrar: str


@functools.cache
def contract_type(name: str) -> Any:
    """The ethpm ContractType of one ENS contract, from its npm build (ABI and bytecode)."""
    from ape import project
    from ethpm_types import ContractType

    package, build = BUILDS[name]
    path = Path(project.path) / "node_modules" / package / "build" / "contracts" / f"{build}.json"
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


def _at(name: str, address: str) -> Any:
    from ape.contracts import ContractInstance

    return ContractInstance(checksum_address(address), contract_type(name))


def normalize_name(name: str) -> str:
    """The ENSIP-15 normalised form of a name; raises `InvalidEnsNameError` for anything else."""
    from ape_ens import ENS
    from ens.utils import normalize_name as ensip15  # type: ignore[import-untyped]

    text = name.strip()
    if "." not in text or not ENS.is_valid_name(text):
        raise InvalidEnsNameError(f"not a valid ENS name: {name!r} (expected e.g. myname.eth)")
    return ensip15(text)


def namehash(name: str) -> bytes:
    """The EIP-137 node of a name (the root for the empty name)."""
    from ape_ens.utils.namehash import namehash as ape_namehash
    from ens.utils import normalize_name as ensip15

    return bytes(ape_namehash(ensip15(name) if name else ""))


def labelhash(label: str) -> bytes:
    from eth_utils import keccak

    return keccak(text=label)


def reverse_node(address: str) -> bytes:
    """The node of `<address>.addr.reverse`, where an address's reverse record lives."""
    from ape_ens.utils.namehash import namehash as ape_namehash

    return bytes(ape_namehash(f"{_bare(address)}.addr.reverse"))


def ens_available() -> bool:
    """Whether the connected chain has code at the canonical ENS registry address."""
    from ape import chain

    return bool(chain.provider.get_code(ENS_REGISTRY_ADDRESS))


def registry() -> Any:
    """The ENS registry of the connected chain; raises `EnsNotFoundError` when there is none."""
    from ape import chain

    if not ens_available():
        raise EnsNotFoundError(f"no ENS registry at {ENS_REGISTRY_ADDRESS} on chain id {chain.chain_id}")
    return _at("ENSRegistry", ENS_REGISTRY_ADDRESS)


def find_ens() -> EnsDeployment | None:
    """The chain's ENS contracts, found from the registry (None when ENS is not (fully) there)."""
    if not ens_available():
        return None
    reverse_registrar = address_or_none(registry().owner(namehash("addr.reverse")))
    if reverse_registrar is None or not _has_code(reverse_registrar):
        return None
    public_resolver = address_or_none(_at("ReverseRegistrar", reverse_registrar).defaultResolver())
    if public_resolver is None:
        return None
    return EnsDeployment(ENS_REGISTRY_ADDRESS, public_resolver, reverse_registrar)


def name_node(name: str) -> bytes:
    """The node of a user-given name, after validating and normalising it."""
    return namehash(normalize_name(name))


def name_owner(name: str) -> str | None:
    """The registry owner of a name (checksummed), or None when it has none."""
    return address_or_none(registry().owner(name_node(name)))


def resolver_of(name: str) -> str | None:
    """The resolver a name points to, or None."""
    return address_or_none(registry().resolver(name_node(name)))


def resolve_address(name: str) -> str | None:
    """The address a name's resolver returns for it (`addr`), or None.

    Read from the name's resolver directly: web3.py's ENS module (behind ape-ens) resolves through
    ENS's Universal Resolver, which a local install and older deployments do not have.
    """
    resolver = resolver_of(name)
    if resolver is None:
        return None
    return address_or_none(_resolver_read(lambda: _at("PublicResolver", resolver).addr(name_node(name))))


def text_record(name: str, key: str) -> str | None:
    """A text record of a name (e.g. `url`), or None when unset or the name has no resolver."""
    resolver = resolver_of(name)
    if resolver is None:
        return None
    value = _resolver_read(lambda: _at("PublicResolver", resolver).text(name_node(name), key))
    return str(value) if value else None


def reverse_name(address: str) -> str | None:
    """The name in an address's reverse record (not checked against the forward record), or None."""
    node = reverse_node(address)
    resolver = address_or_none(registry().resolver(node))
    if resolver is None:
        return None
    value = _resolver_read(lambda: _at("PublicResolver", resolver).name(node))
    return str(value) if value else None


def controls(account: str, name: str) -> bool:
    """Whether the account owns the name or is approved for all of its owner's names."""
    owner = name_owner(name)
    if owner is None:
        return False
    return owner == checksum_address(account) or bool(registry().isApprovedForAll(owner, checksum_address(account)))


def require_control(account: str, name: str) -> None:
    """Raises `NameNotControlledError`, naming the owner, unless the account controls the name."""
    if controls(account, name):
        return
    owner = name_owner(name)
    if owner is None:
        raise NameNotControlledError(f"ENS name {name} has no owner: register it to {checksum_address(account)} first")
    raise NameNotControlledError(f"ENS name {name} is owned by {owner}, not by {checksum_address(account)}")


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

    Raises `NameNotControlledError` naming the owner when the account does not control the name.
    """
    name = normalize_name(name)
    node = namehash(name)
    address = checksum_address(str(account.address))
    ens_registry = registry()
    require_control(address, name)
    contracts = find_ens()
    results: list[StepResult] = []

    resolver = resolver_of(name)
    # In a dry run a resolver about to be set has no records yet.
    resolver_pending = resolver is None and dry_run
    if resolver is None:
        if contracts is None:
            raise EnsError(f"ENS name {name} has no resolver and no public resolver was found to set")
        resolver = contracts.public_resolver
        results.append(
            send_or_estimate(
                "ENS resolver", f"{name} -> {resolver}", ens_registry.setResolver, (node, resolver), account, dry_run
            )
        )
    else:
        results.append(skipped("ENS resolver", f"{name} -> {resolver}"))
    public_resolver = _at("PublicResolver", resolver)

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
        if contracts is None:
            raise EnsError("no reverse registrar owns addr.reverse on this chain")
        reverse_registrar = _at("ReverseRegistrar", contracts.reverse_registrar)
        results.append(
            send_or_estimate(
                "ENS reverse record", f"{address} -> {name}", reverse_registrar.setName, (name,), account, dry_run
            )
        )
    return results


def _has_code(address: str) -> bool:
    from ape import chain

    return bool(chain.provider.get_code(address))


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
