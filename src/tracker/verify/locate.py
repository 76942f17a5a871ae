"""Finding a protocol and the contract to check it against: instance owner on chain, then ENS reverse name, then the url record."""

from __future__ import annotations

from tracker.chain.contract import TrackerContract
from tracker.documents.ids import normalize_id
from tracker.errors import TrackerError
from tracker.verify import ens_resolution
from tracker.verify.checks import fetch_protocol
from tracker.verify.download import Downloader
from tracker.verify.report import VerifyOptions


class ProtocolNotFoundError(TrackerError):
    """The protocol of an instance cannot be located through the chain and ENS."""


def protocol_url_for(url_record: str, instance_id: str) -> str:
    """Where an instance's protocol is published under a client's `url` record."""
    return f"{url_record.strip().rstrip('/')}/{normalize_id(instance_id)}.json"


def locate_protocol(tracker: TrackerContract, instance_id: str, timeout: float = 10.0) -> str:
    """The protocol URL of an instance: owner on chain -> ENS reverse name -> `url` record, both
    resolved as wallets do (UniversalResolver, wildcards, CCIP-Read within `timeout` a request)."""
    instance_id = normalize_id(instance_id, "instance id")
    record = tracker.instance(instance_id)
    if record is None:
        raise ProtocolNotFoundError(f"instance {instance_id} is not registered on contract {tracker.address}")
    missing = ens_resolution.available()
    if missing is not None:
        raise ProtocolNotFoundError(f"{missing}: give the protocol URL instead of --instance")
    address = "0x" + record.owner
    resolution = ens_resolution.EnsResolution(timeout)
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
