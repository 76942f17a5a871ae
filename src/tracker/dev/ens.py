"""Installing ENS on a local chain (anvil): the registry at its canonical address, a public resolver and the reverse registrar, from ENS's published builds."""

from __future__ import annotations

from typing import Any

from eth_utils import keccak

from tracker.documents.ids import checksum_address
from tracker.errors import ChainError, one_line
from tracker.identity.ens import (
    ENS_REGISTRY_ADDRESS,
    ROOT_NODE,
    EnsDeployment,
    EnsError,
    NameNotControlledError,
    address_or_none,
    address_word,
    contract_type,
    ens_available,
    find_ens,
    labelhash,
    namehash,
    normalize_name,
    registry,
)


class EnsInstallError(EnsError):
    """ENS cannot be installed on the connected chain (not anvil, or the root is someone else's)."""


def install_local_ens(deployer: Any) -> EnsDeployment:
    """Installs ENS on a local anvil (or a fork) from ENS's published builds; a no-op when present.

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
    root_owner = address_or_none(ens_registry.owner(ROOT_NODE))
    if root_owner != deployer_address:
        raise EnsInstallError(
            f"the ENS root is owned by {root_owner}, not by the installing account {deployer_address}"
        )
    try:
        from ape.contracts import ContractContainer

        resolver = deployer.deploy(ContractContainer(contract_type("PublicResolver")), ENS_REGISTRY_ADDRESS)
        reverse_registrar = deployer.deploy(
            ContractContainer(contract_type("ReverseRegistrar")), ENS_REGISTRY_ADDRESS, resolver.address
        )
        ens_registry.setSubnodeOwner(ROOT_NODE, labelhash("reverse"), deployer_address, sender=deployer)
        ens_registry.setSubnodeOwner(namehash("reverse"), labelhash("addr"), reverse_registrar.address, sender=deployer)
    except Exception as error:
        raise EnsInstallError(f"installing ENS failed: {one_line(error)}") from error
    return EnsDeployment(
        ENS_REGISTRY_ADDRESS, checksum_address(str(resolver.address)), checksum_address(str(reverse_registrar.address))
    )


def assign_name(registrar: Any, name: str, owner: str) -> None:
    """Gives `name` (and any missing parent names, kept by `registrar`) to `owner` on a local ENS.

    The registrar must own the name's parent (the installer owns the root and so every TLD).
    """
    name = normalize_name(name)
    labels = name.split(".")
    registrar_address = checksum_address(str(registrar.address))
    ens_registry = registry()
    parent = ROOT_NODE
    for depth in range(len(labels) - 1, -1, -1):
        suffix = ".".join(labels[depth:])
        node = namehash(suffix)
        current = address_or_none(ens_registry.owner(node))
        wanted = checksum_address(owner) if depth == 0 else registrar_address
        if depth > 0 and current is not None and current != registrar_address:
            raise NameNotControlledError(f"ENS name {suffix} is owned by {current}, not by {registrar_address}")
        if current != wanted:
            try:
                ens_registry.setSubnodeOwner(parent, labelhash(labels[depth]), wanted, sender=registrar)
            except Exception as error:  # ape raises contract- and provider-specific errors
                raise ChainError(f"assigning ENS name {suffix} failed: {one_line(error)}") from error
        parent = node
