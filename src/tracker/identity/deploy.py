"""A client's on-chain identity, set up in idempotent steps: the contract deployment it uses, its
client id, its ENS link (name -> address, text `url` -> URI, reverse record) and its server
certificate's fingerprint signed by the same key.

Every input is checked before anything is sent, so a bad certificate or a name the account does
not control never leaves a half-done run. Each step compares the chain with what is wanted and
reports `done`, `skipped` (already matches) or, in a dry run, `would change` with a gas estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from tracker.chain import canonical, deployments
from tracker.chain.contract import CONTRACT_NAME, TrackerContract
from tracker.chain.revert import describe_revert
from tracker.chain.steps import DONE, WOULD_CHANGE, StepResult, send_at_block_times, send_or_estimate, skipped
from tracker.errors import ChainError, ConfigurationError
from tracker.identity import ens
from tracker.publish import certificates

EXPLORERS = {1: "https://etherscan.io", 11155111: "https://sepolia.etherscan.io"}
MAX_CLIENT_ID_BYTES = 64
GAS_HEADROOM_PERCENT = 120
FEE_HEADROOM = 2


@dataclass(frozen=True)
class ContractDeployment:
    """The canonical InstanceTracker on the connected chain, and whether this run deployed it."""

    contract: TrackerContract
    deployed: bool
    explorer_url: str | None
    gas: int | None = None
    transaction_hash: str | None = None


@dataclass(frozen=True)
class IdentityRequest:
    """What `ape run deploy` was asked to set up; None means the step was not asked for."""

    client_id: str | None = None
    ens_name: str | None = None
    uri: str | None = None
    certificate_path: Path | None = None
    dry_run: bool = False
    fetch_timeout: float = 10.0


@dataclass(frozen=True)
class IdentityReport:
    chain_id: int
    account: str
    contract: str | None
    explorer_url: str | None
    fingerprint: str | None
    steps: list[StepResult] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(step.status != "skipped" for step in self.steps)


def deploy_canonical(sender: Any) -> ContractDeployment:
    """Reuses the canonical InstanceTracker when its code is there, else deploys it there.

    The deployment goes through the deterministic-deployment proxy (installed first on a local
    chain that lacks it), so the contract lands at the address computed offline from its code.
    Raises `ChainError` when the canonical address holds other code or the deployment fails.
    """
    from ape import chain

    chain_id = int(chain.chain_id)
    target = canonical.address()
    code = bytes(chain.provider.get_code(target))
    if code == canonical.runtime_code():
        return ContractDeployment(TrackerContract.at(target, sender), False, explorer_url(chain_id, target))
    if code:
        raise ChainError(f"the canonical address {target} holds code that is not this build's {CONTRACT_NAME}")
    if not canonical.proxy_present():
        if chain_id not in deployments.LOCAL_CHAIN_IDS:
            raise ChainError(
                f"the deterministic-deployment proxy {canonical.PROXY_ADDRESS} is not on chain id {chain_id}: "
                "deploy it with its published one-time transaction first"
            )
        canonical.install_proxy(sender)
    try:
        sent = send_at_block_times(
            f"deploying {CONTRACT_NAME} through the proxy", canonical.PROXY_ADDRESS, canonical.deployment_data(), sender
        )
    except ChainError:
        raise
    except Exception as error:  # ape raises account-, provider- and node-specific errors
        raise ChainError(f"deploying {CONTRACT_NAME} through the proxy failed: {describe_revert(error)}") from error
    transaction_hash = "0x" + sent.transaction_hash
    if bytes(chain.provider.get_code(target)) != canonical.runtime_code():
        raise ChainError(f"the proxy did not deploy {CONTRACT_NAME} at {target} (transaction {transaction_hash})")
    genesis = bytes(chain.provider.get_block(0).hash).hex()
    deployments.record(deployments.Deployment(chain_id, target, sent.block_number, transaction_hash, genesis))
    return ContractDeployment(
        TrackerContract.at(target, sender),
        True,
        explorer_url(chain_id, target),
        sent.gas_used,
        transaction_hash,
    )


def explorer_url(chain_id: int, address: str) -> str | None:
    base = EXPLORERS.get(chain_id)
    return f"{base}/address/{address}" if base else None


def _contract_step(sender: Any, request: IdentityRequest) -> tuple[TrackerContract | None, StepResult]:
    """Deploys or reuses the canonical contract; in a dry run, estimates the deployment when needed."""
    from ape import chain

    target = canonical.address()
    if request.dry_run:
        if bytes(chain.provider.get_code(target)) == canonical.runtime_code():
            return TrackerContract.at(target, sender), skipped(CONTRACT_NAME, f"reusing {target}")
        try:
            gas = int(
                chain.provider.web3.eth.estimate_gas(
                    {"from": str(sender.address), "to": canonical.PROXY_ADDRESS, "data": canonical.deployment_data()}
                )
            )
        except Exception as error:  # the node's own estimate errors (no proxy yet on a local chain)
            gas = None
            if canonical.proxy_present():
                raise ChainError(f"{CONTRACT_NAME} deployment estimate failed: {describe_revert(error)}") from error
        return None, StepResult(CONTRACT_NAME, WOULD_CHANGE, f"deploy at the canonical address {target}", gas=gas)
    outcome = deploy_canonical(sender)
    if not outcome.deployed:
        return outcome.contract, skipped(CONTRACT_NAME, f"reusing {target}")
    return outcome.contract, StepResult(
        CONTRACT_NAME, DONE, f"deployed at {target}", gas=outcome.gas, transaction_hash=outcome.transaction_hash
    )


def check_uri(uri: str) -> str:
    """An `https://HOST[:PORT][/PATH]` URI as given; raises `ConfigurationError` otherwise."""
    parts = urlsplit(uri)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError(f"--uri must be an https:// URL with a host, got {uri!r}")
    return uri


def check_client_id(client_id: str) -> str:
    """A non-empty client id of at most 64 UTF-8 bytes (what the contract accepts)."""
    length = len(client_id.encode("utf-8"))
    if length == 0 or length > MAX_CLIENT_ID_BYTES:
        raise ConfigurationError(f"a client id has 1 to {MAX_CLIENT_ID_BYTES} bytes, got {length}: {client_id!r}")
    return client_id


def wanted_certificate(request: IdentityRequest) -> x509.Certificate | None:
    """The certificate to register: the `--cert` file, else the one the URI's host presents."""
    if request.certificate_path is not None:
        return certificates.load_certificate(request.certificate_path)
    if request.uri is not None:
        certificate = certificates.fetch_server_certificate(request.uri, timeout=request.fetch_timeout)
        certificates.check_validity(certificate, f"the certificate {urlsplit(request.uri).netloc} presents")
        return certificate
    return None


def set_up_identity(sender: Any, request: IdentityRequest) -> IdentityReport:
    """Runs every requested step in order (contract, client id, ENS link, certificate).

    Raises a `TrackerError` subclass for a bad input before any transaction is sent.
    """
    from ape import chain

    address = str(sender.address)
    if request.ens_name is not None and request.uri is None:
        raise ConfigurationError("--ens-name needs --uri https://HOST (the name's url text record)")
    if request.uri is not None:
        check_uri(request.uri)
    if request.client_id is not None:
        check_client_id(request.client_id)
    ens_name = ens.normalize_name(request.ens_name) if request.ens_name is not None else None
    if ens_name is not None:
        ens.require_control(address, ens_name)
    certificate = wanted_certificate(request)
    wanted_fingerprint = certificates.fingerprint(certificate) if certificate is not None else None

    contract, contract_result = _contract_step(sender, request)
    steps = [contract_result]
    if request.client_id is not None:
        steps.append(_client_id_step(contract, sender, request.client_id, request.dry_run))
    if ens_name is not None and request.uri is not None:
        steps.extend(ens.link_identity(sender, ens_name, request.uri, dry_run=request.dry_run))
    if wanted_fingerprint is not None:
        steps.append(_certificate_step(contract, sender, wanted_fingerprint, request.dry_run))
    return IdentityReport(
        chain_id=int(chain.chain_id),
        account=address,
        contract=contract.address if contract is not None else None,
        explorer_url=explorer_url(int(chain.chain_id), contract.address) if contract is not None else None,
        fingerprint=wanted_fingerprint,
        steps=steps,
    )


def _client_id_step(contract: TrackerContract | None, sender: Any, client_id: str, dry_run: bool) -> StepResult:
    step, detail = "client id", f"{sender.address} -> {client_id!r}"
    if contract is None:
        return StepResult(step, WOULD_CHANGE, detail + " (after the deployment)")
    if contract.client_id(str(sender.address)) == client_id:
        return skipped(step, detail)
    return send_or_estimate(
        step, detail, contract.contract.registerClientId, (client_id,), sender, dry_run, describe_revert
    )


def _certificate_step(contract: TrackerContract | None, sender: Any, wanted: str, dry_run: bool) -> StepResult:
    step, detail = "certificate", f"fingerprint {wanted}"
    if contract is None:
        return StepResult(step, WOULD_CHANGE, detail + " (after the deployment)")
    address = str(sender.address)
    current = contract.certificate(address)
    if current is not None and current.fingerprint == wanted and _signed_by(current, address):
        return skipped(step, detail)
    signature = certificates.sign_fingerprint(sender, wanted)
    return send_or_estimate(
        step,
        detail,
        contract.contract.registerCertificate,
        (bytes.fromhex(wanted), signature),
        sender,
        dry_run,
        describe_revert,
    )


def _signed_by(record: Any, address: str) -> bool:
    try:
        return certificates.recover_fingerprint_signer(record.fingerprint, record.signature) == address
    except certificates.SignatureError:
        return False
