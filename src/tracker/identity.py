"""A client's on-chain identity: the contract deployment it uses (ENS links and certificate
fingerprints are added by the deploy work)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracker import deployments
from tracker.contract import TrackerContract
from tracker.errors import ContractNotFoundError

EXPLORERS = {1: "https://etherscan.io", 11155111: "https://sepolia.etherscan.io"}


@dataclass(frozen=True)
class DeployOutcome:
    tracker: TrackerContract
    deployed: bool
    explorer_url: str | None


def deploy_or_reuse(sender: Any, redeploy: bool = False) -> DeployOutcome:
    """Reuses the deployment recorded for the connected chain when its code is there, else deploys."""
    from ape import chain

    chain_id = chain.chain_id
    if not redeploy:
        try:
            tracker = TrackerContract.at(None, sender)
            return DeployOutcome(tracker, False, _explorer(chain_id, tracker.address))
        except ContractNotFoundError:
            pass
    tracker = TrackerContract.deploy(sender)
    receipt = chain.get_receipt(tracker.contract.txn_hash)
    deployments.record(
        deployments.Deployment(chain_id, tracker.address, int(receipt.block_number), str(receipt.txn_hash))
    )
    return DeployOutcome(tracker, True, _explorer(chain_id, tracker.address))


def _explorer(chain_id: int, address: str) -> str | None:
    base = EXPLORERS.get(chain_id)
    return f"{base}/address/{address}" if base else None
