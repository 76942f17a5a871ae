"""Finding the contract to verify against, and a protocol through the chain and ENS.

The contract is the canonical InstanceTracker (the same address on every chain, computed from its
code) or the one the user names for a private deployment; never one a protocol names. A protocol
is found from an instance document id and its owner: the owner's InstanceRegistered events, the
owner's ENS reverse name, that name's `url` record.
"""

from __future__ import annotations

from tracker.chain import canonical, logs
from tracker.chain.contract import TrackerContract
from tracker.documents.ids import ADDRESS_PATTERN, normalize_address, normalize_id
from tracker.errors import ContractNotFoundError, TrackerError
from tracker.verify import ens_resolution
from tracker.verify.download import HostPolicy


class ProtocolNotFoundError(TrackerError):
    """The protocol of an instance cannot be located through the chain and ENS."""


def protocol_url_for(url_record: str, instance_id: str) -> str:
    """Where an instance's protocol is published under a client's `url` record."""
    return f"{url_record.strip().rstrip('/')}/{normalize_id(instance_id)}.json"


def owner_address(value: str, timeout: float = 10.0, policy: HostPolicy | None = None) -> str:
    """An owner given as an address (40 hex, 0x optional) or as an ENS name that resolves to one
    (as wallets resolve it: UniversalResolver, wildcards, CCIP-Read within `timeout` a request)."""
    text = value.strip()
    if ADDRESS_PATTERN.match(text.lower().removeprefix("0x")):
        return normalize_address(text)
    missing = ens_resolution.available()
    if missing is not None:
        raise ProtocolNotFoundError(f"--owner {value!r} is not an address, and {missing}")
    try:
        resolved = ens_resolution.EnsResolution(timeout, policy=policy).address(text)
    except ens_resolution.ResolutionError as error:
        raise ProtocolNotFoundError(f"--owner {value!r}: {error}") from error
    if resolved is None:
        raise ProtocolNotFoundError(f"the ENS name {value!r} resolves to no address")
    return normalize_address(str(resolved.value))


def locate_protocol(
    tracker: TrackerContract,
    instance_id: str,
    owner: str,
    timeout: float = 10.0,
    policy: HostPolicy | None = None,
) -> str:
    """The protocol URL of `owner`'s instance with this instance document: the owner's
    registration on chain, then its ENS reverse name, then that name's `url` record, resolved as
    wallets do (UniversalResolver, wildcards, CCIP-Read within `timeout` a request)."""
    instance_id = normalize_id(instance_id, "instance id")
    owner = normalize_address(owner)
    registered = logs.events(tracker.address, "InstanceRegistered", [None, owner], tracker.deployment_block())
    if not any(bytes(e.args["instanceDocument"]).hex() == instance_id for e in registered):
        raise ProtocolNotFoundError(
            f"no instance with instance document {instance_id} is registered under 0x{owner} on contract {tracker.address}"
        )
    missing = ens_resolution.available()
    if missing is not None:
        raise ProtocolNotFoundError(f"{missing}: give the protocol URL instead of --instance")
    address = "0x" + owner
    resolution = ens_resolution.EnsResolution(timeout, policy=policy)
    try:
        reverse = resolution.reverse_name(address)
        if reverse is None:
            raise ProtocolNotFoundError(
                f"the instance owner {address} has no ENS reverse record: give the protocol URL"
            )
        name = str(reverse.value)
        url = resolution.text(name, "url")
    except ens_resolution.ResolutionError as error:
        raise ProtocolNotFoundError(f"{error}: give the protocol URL") from error
    if url is None:
        raise ProtocolNotFoundError(f"ENS name {name} of {address} has no url text record: give the protocol URL")
    return protocol_url_for(str(url.value), instance_id)


def tracker_for(contract_address: str | None) -> tuple[TrackerContract | None, str | None]:
    """The contract to verify against: the one given (which must have code), else the canonical
    one; without either, None and why (the verifier then checks what it can without a contract)."""
    if contract_address is not None:
        return TrackerContract.at(contract_address), None
    try:
        return TrackerContract.at(None), None
    except ContractNotFoundError:
        from ape import chain

        return None, (
            f"no InstanceTracker at the canonical address {canonical.address()} on chain id {chain.chain_id} "
            "(--contract ADDRESS names a private deployment)"
        )
