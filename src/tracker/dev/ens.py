"""Installing ENS on a local chain (anvil) the way Sepolia has it, and registering names there as
a user of the ENS app would.

The registry is ENS's published build (npm `@ensdomains/ens`) at its canonical address. The rest
of today's ENS (.eth registrar, NameWrapper, wrapping ETHRegistrarController with a price oracle,
wrapper-aware public resolver, reverse registrar, UniversalResolver) has no published npm build,
so it comes from the test stand-ins in contracts-dev/ens/, written from ENS's published interfaces
(each file says what it imitates and leaves out). They are compiled here with the project's solc
(0.8.28, through py-solc-x) into .build/, apart from InstanceTracker's own build, and each is put
at Sepolia's published address (`tracker.identity.ens.SEPOLIA`): deployed once normally, then its
runtime code (immutables included) copied there with `anvil_setCode`. A fork of Sepolia and this
local stand-in so read ENS at the same addresses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

from eth_utils import keccak

from tracker.documents.ids import checksum_address
from tracker.errors import ChainError, one_line
from tracker.identity.ens import (
    ENS_REGISTRY_ADDRESS,
    ROOT_NODE,
    SEPOLIA,
    EnsDeployment,
    EnsError,
    address_word,
    contract_type,
    ens_available,
    find_ens,
    labelhash,
    namehash,
    normalize_name,
    registry,
)

SOLC_VERSION = "0.8.28"
STANDINS_FOLDER = Path("contracts-dev") / "ens"
YEAR = 365 * 24 * 3600
NO_EXPIRY = 2**64 - 1


class EnsInstallError(EnsError):
    """ENS cannot be installed on the connected chain (not anvil, or the root is someone else's)."""


def _project_root() -> Path:
    from ape import project

    return Path(project.path)


@functools.cache
def standin_types() -> dict[str, Any]:
    """ContractTypes of every contract in contracts-dev/ens, compiled once per source change."""
    from ethpm_types import ContractType

    root = _project_root()
    sources = {f"ens/{path.name}": path.read_text() for path in sorted((root / STANDINS_FOLDER).glob("*.sol"))}
    digest = hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:16]
    cache = root / ".build" / f"ens-standins-{digest}.json"
    if cache.exists():
        compiled = json.loads(cache.read_text())
    else:
        compiled = _compile(root, sources)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(compiled))
    return {
        name: ContractType.model_validate(
            {
                "contractName": name,
                "abi": entry["abi"],
                "deploymentBytecode": {"bytecode": "0x" + entry["bytecode"]},
                "runtimeBytecode": {"bytecode": "0x" + entry["runtime"]},
            }
        )
        for name, entry in compiled.items()
    }


def _compile(root: Path, sources: dict[str, str]) -> dict[str, dict[str, Any]]:
    import solcx

    standard_input = {
        "language": "Solidity",
        "sources": {path: {"content": text} for path, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": "cancun",
            "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }
    try:
        output = solcx.compile_standard(
            standard_input, solc_version=SOLC_VERSION, base_path=str(root), allow_paths=[str(root)]
        )
    except Exception as error:  # py-solc-x raises its own errors for a missing compiler or bad source
        raise EnsInstallError(f"compiling {STANDINS_FOLDER} failed: {one_line(error)} (run bin/setup)") from error
    return {
        name: {
            "abi": entry["abi"],
            "bytecode": entry["evm"]["bytecode"]["object"],
            "runtime": entry["evm"]["deployedBytecode"]["object"],
        }
        for path, contracts in output["contracts"].items()
        if path.startswith("ens/")
        for name, entry in contracts.items()
        if entry["evm"]["bytecode"]["object"]
    }


def standin(name: str, address: str) -> Any:
    """A stand-in contract (full ABI) at an address."""
    from ape.contracts import ContractInstance

    return ContractInstance(checksum_address(address), standin_types()[name])


def deploy_standin(deployer: Any, name: str, *arguments: Any) -> Any:
    """Deploys a contract of contracts-dev/ens normally (tests' own resolvers)."""
    from ape.contracts import ContractContainer

    return deployer.deploy(ContractContainer(standin_types()[name]), *arguments)


def _place(deployer: Any, name: str, address: str, *arguments: Any) -> Any:
    """Deploys `name`, then puts its runtime code (immutables included) at `address`."""
    from ape import chain

    deployed = deploy_standin(deployer, name, *arguments)
    code = chain.provider.get_code(deployed.address)
    chain.provider.make_request("anvil_setCode", [checksum_address(address), "0x" + bytes(code).hex()])
    return standin(name, address)


def install_local_ens(deployer: Any) -> EnsDeployment:
    """Installs ENS on a local anvil (or a fork) at Sepolia's addresses; a no-op when present.

    Raises `EnsInstallError` when the chain does not accept `anvil_setCode` or the registry's
    root belongs to another account.
    """
    from ape import chain

    existing = find_ens()
    if existing is not None:
        return existing
    provider = chain.provider
    deployer_address = checksum_address(str(deployer.address))
    if not ens_available():
        runtime = contract_type("ENSRegistry").runtime_bytecode.bytecode
        root_owner_slot = keccak(ROOT_NODE + (0).to_bytes(32, "big"))  # records[0x0].owner
        try:
            provider.make_request("anvil_setCode", [ENS_REGISTRY_ADDRESS, runtime])
            provider.make_request(
                "anvil_setStorageAt",
                ["0x" + ENS_REGISTRY_ADDRESS[2:].lower(), "0x" + root_owner_slot.hex(), address_word(deployer_address)],
            )
        except Exception as error:  # a non-anvil node answers with its own RPC error
            raise EnsInstallError(
                f"cannot install ENS on {provider.network.name} ({provider.name}): it needs anvil "
                f"(anvil_setCode): {one_line(error)}"
            ) from error
    ens_registry = registry()
    root_owner = ens_registry.owner(ROOT_NODE)
    if checksum_address(str(root_owner)) != deployer_address:
        raise EnsInstallError(
            f"the ENS root is owned by {root_owner}, not by the installing account {deployer_address}"
        )
    at = SEPOLIA
    try:
        base = _place(
            deployer, "StandInBaseRegistrar", at.base_registrar, ENS_REGISTRY_ADDRESS, namehash("eth"), deployer
        )
        wrapper = _place(
            deployer, "StandInNameWrapper", at.name_wrapper, ENS_REGISTRY_ADDRESS, at.base_registrar, deployer
        )
        reverse = _place(deployer, "StandInReverseRegistrar", at.reverse_registrar, ENS_REGISTRY_ADDRESS, deployer)
        oracle = deploy_standin(deployer, "StandInPriceOracle")
        _place(
            deployer,
            "StandInETHRegistrarController",
            at.eth_registrar_controller,
            at.base_registrar,
            at.name_wrapper,
            at.reverse_registrar,
            oracle.address,
        )
        _place(
            deployer,
            "StandInPublicResolver",
            at.public_resolver,
            ENS_REGISTRY_ADDRESS,
            at.name_wrapper,
            at.eth_registrar_controller,
            at.reverse_registrar,
        )
        _place(deployer, "StandInUniversalResolver", at.universal_resolver, ENS_REGISTRY_ADDRESS)
        ens_registry.setSubnodeOwner(ROOT_NODE, labelhash("eth"), at.base_registrar, sender=deployer)
        ens_registry.setSubnodeOwner(ROOT_NODE, labelhash("reverse"), deployer_address, sender=deployer)
        ens_registry.setSubnodeOwner(namehash("reverse"), labelhash("addr"), at.reverse_registrar, sender=deployer)
        base.addController(at.name_wrapper, sender=deployer)
        wrapper.setController(at.eth_registrar_controller, True, sender=deployer)
        reverse.setController(at.eth_registrar_controller, True, sender=deployer)
        reverse.setDefaultResolver(at.public_resolver, sender=deployer)
    except Exception as error:
        raise EnsInstallError(f"installing ENS failed: {one_line(error)}") from error
    installed = find_ens()
    if installed is None:
        raise EnsInstallError("installing ENS failed: the contracts are not where they were put")
    return installed


def advance_time(seconds: int) -> None:
    """Moves anvil's clock forward and mines a block at the new time."""
    from ape import chain

    chain.provider.make_request("evm_increaseTime", [int(seconds)])
    chain.provider.make_request("evm_mine", [])


def register_name(
    registrant: Any,
    name: str,
    owner: str | None = None,
    duration: int = 10 * YEAR,
    fuses: int = 0,
    resolver: str | None = SEPOLIA.public_resolver,
) -> str:
    """Registers a .eth 2LD through the controller as the ENS app does: commit, wait out the
    minimum commitment age (anvil's clock is moved), register paying the rent. The name is wrapped
    for `owner` (default: the registrant) with the fuses given; returns the normalised name."""
    name = normalize_name(name)
    labels = name.split(".")
    if len(labels) != 2 or labels[1] != "eth":
        raise EnsError(f"only .eth 2LDs are registered through the controller, not {name}")
    label = labels[0]
    holder = checksum_address(owner or str(registrant.address))
    controller = standin("StandInETHRegistrarController", SEPOLIA.eth_registrar_controller)
    secret = secrets.token_bytes(32)
    arguments: tuple[Any, ...] = (label, holder, duration, secret, resolver or "0x" + "0" * 40, [], False, fuses)
    try:
        controller.commit(controller.makeCommitment(*arguments), sender=registrant)
        advance_time(int(controller.minCommitmentAge()) + 1)
        price = controller.rentPrice(label, duration)
        controller.register(*arguments, sender=registrant, value=int(price.base) + int(price.premium))
    except Exception as error:  # ape raises contract- and provider-specific errors
        raise ChainError(f"registering ENS name {name} failed: {one_line(error)}") from error
    return name


def create_subname(
    parent_holder: Any,
    name: str,
    owner: str,
    fuses: int = 0,
    expiry: int = NO_EXPIRY,
    resolver: str | None = None,
) -> str:
    """The holder of a wrapped parent creates a wrapped subname for `owner` with fuses and an expiry
    (capped at the parent's by the NameWrapper); returns the normalised name."""
    name = normalize_name(name)
    label, _, parent = name.partition(".")
    wrapper = standin("StandInNameWrapper", SEPOLIA.name_wrapper)
    try:
        wrapper.setSubnodeRecord(
            namehash(parent),
            label,
            checksum_address(owner),
            resolver or "0x" + "0" * 40,
            0,
            fuses,
            expiry,
            sender=parent_holder,
        )
    except Exception as error:  # ape raises contract- and provider-specific errors
        raise ChainError(f"creating ENS subname {name} failed: {one_line(error)}") from error
    return name
