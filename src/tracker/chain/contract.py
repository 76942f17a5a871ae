"""The InstanceTracker contract as the rest of the code sees it: typed reads and batched writes.

Identifiers cross this boundary as 64-hex strings (`documents.normalize_id`) and become `bytes32`
only here. Reads that concern many ids go out as one `eth_call` to the contract's own
`multicall`, so checking a thousand states is one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode
from eth_utils import keccak

from tracker.chain import deployments
from tracker.chain.revert import describe_revert
from tracker.documents.ids import checksum_address, id_to_bytes32, normalize_address, normalize_id
from tracker.errors import ChainError, ContractNotFoundError

CONTRACT_NAME = "InstanceTracker"


@dataclass(frozen=True)
class ModelRecord:
    model_id: str
    publisher: str
    registered_at: int


@dataclass(frozen=True)
class InstanceRecord:
    instance_id: str
    model_id: str
    owner: str
    state_count: int
    terminated: bool
    head: str


@dataclass(frozen=True)
class CertificateRecord:
    account: str
    fingerprint: str
    signature: bytes
    registered_at: int


@dataclass(frozen=True)
class AnchorRecord:
    root: str
    submitter: str
    anchored_at: int
    leaf_count: int


@dataclass(frozen=True)
class SentTransaction:
    """A mined transaction as `send_batch_light` reports it: hash (64 hex), block, gas used."""

    transaction_hash: str
    block_number: int
    gas_used: int


@dataclass(frozen=True)
class PreparedCall:
    """One contract call encoded for `multicall`, with a label for messages."""

    label: str
    data: bytes


def _hex(value: Any) -> str:
    return bytes(value).hex() if isinstance(value, (bytes, bytearray)) else normalize_id(value)


class TrackerContract:
    """A deployed InstanceTracker, optionally with the account that sends transactions."""

    def __init__(self, contract: Any, sender: Any = None):
        self.contract = contract
        self.sender = sender
        self._deployment_block: int | None = None

    # ---------------------------------------------------------------- finding the contract

    @classmethod
    def at(cls, address: str | None = None, sender: Any = None) -> TrackerContract:
        """The contract at `address`, or the deployment recorded for the connected chain.

        Raises `ContractNotFoundError` when nothing is recorded or no code is at the address.
        """
        from ape import chain, project

        chain_id = chain.chain_id
        if address is None:
            record = deployments.recorded(chain_id)
            if record is None:
                raise ContractNotFoundError(
                    f"no {CONTRACT_NAME} recorded for chain id {chain_id}: run `ape run deploy` "
                    "on this network or pass --contract ADDRESS"
                )
            address = record.address
        checksummed = checksum_address(address)
        if not chain.provider.get_code(checksummed):
            raise ContractNotFoundError(f"no contract code at {checksummed} on chain id {chain_id}")
        return cls(project.InstanceTracker.at(checksummed), sender)

    @classmethod
    def deploy(cls, sender: Any) -> TrackerContract:
        """Deploys a new InstanceTracker from `sender`."""
        from ape import project

        try:
            return cls(sender.deploy(project.InstanceTracker), sender)
        except Exception as error:
            raise ChainError(f"deploying {CONTRACT_NAME} failed: {describe_revert(error)}") from error

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def deployment_block(self) -> int:
        """Where log queries start: the block of the deployment recorded for this contract, else 0."""
        from ape import chain

        if self._deployment_block is None:
            record = deployments.recorded(chain.chain_id)
            matches = record is not None and record.address.lower() == self.address.lower()
            self._deployment_block = record.block_number if record is not None and matches else 0
        return self._deployment_block

    # ---------------------------------------------------------------- reads

    def model(self, model_id: str) -> ModelRecord | None:
        publisher, registered_at = self.contract.models(id_to_bytes32(model_id))
        if int(publisher, 16) == 0:
            return None
        return ModelRecord(normalize_id(model_id), normalize_address(publisher), int(registered_at))

    def instance(self, instance_id: str) -> InstanceRecord | None:
        return self.instances([instance_id])[normalize_id(instance_id)]

    def instances(self, instance_ids: Sequence[str]) -> dict[str, InstanceRecord | None]:
        """Many instances in one `eth_call`; the head is the effective one (derived before states)."""

        ids = [normalize_id(i) for i in instance_ids]
        results = self.read_many(self.contract.instances.encode_input(id_to_bytes32(i)) for i in ids)
        records: dict[str, InstanceRecord | None] = {}
        for instance_id, data in zip(ids, results):
            owner, count, terminated, model, head = decode(["address", "uint64", "bool", "bytes32", "bytes32"], data)
            if int(owner, 16) == 0:
                records[instance_id] = None
                continue
            if count == 0:
                head = keccak(model + id_to_bytes32(instance_id))
            records[instance_id] = InstanceRecord(
                instance_id, model.hex(), normalize_address(owner), int(count), bool(terminated), head.hex()
            )
        return records

    def models_of(self, model_ids: Sequence[str]) -> dict[str, ModelRecord | None]:
        """Many models in one `eth_call`."""
        ids = [normalize_id(i) for i in model_ids]
        results = self.read_many(self.contract.models.encode_input(id_to_bytes32(i)) for i in ids)
        records: dict[str, ModelRecord | None] = {}
        for model_id, data in zip(ids, results):
            publisher, registered_at = decode(["address", "uint64"], data)
            records[model_id] = (
                None
                if int(publisher, 16) == 0
                else ModelRecord(model_id, normalize_address(publisher), int(registered_at))
            )
        return records

    def certificate(self, account: str) -> CertificateRecord | None:
        fingerprint, signature, registered_at = self.contract.certificateOf(checksum_address(account))
        fingerprint = bytes(fingerprint)
        if fingerprint == bytes(32):
            return None
        return CertificateRecord(normalize_address(account), fingerprint.hex(), bytes(signature), int(registered_at))

    def client_id(self, account: str) -> str:
        return str(self.contract.clientIdOf(checksum_address(account)))

    def is_operator(self, owner: str, operator: str) -> bool:
        return bool(self.contract.isOperator(checksum_address(owner), checksum_address(operator)))

    def anchor(self, root: str) -> AnchorRecord | None:
        submitter, anchored_at, leaf_count = self.contract.anchors(id_to_bytes32(root))
        if int(submitter, 16) == 0:
            return None
        return AnchorRecord(normalize_id(root), normalize_address(submitter), int(anchored_at), int(leaf_count))

    def read_many(self, encoded_calls: Iterable[bytes], chunk: int = 500) -> list[bytes]:
        """Runs encoded view calls through the contract's `multicall` in one `eth_call` per chunk."""
        calls = [bytes(c) for c in encoded_calls]
        results: list[bytes] = []
        for start in range(0, len(calls), chunk):
            results.extend(bytes(r) for r in self.contract.multicall.call(calls[start : start + chunk]))
        return results

    # ---------------------------------------------------------------- writes

    def prepare(self, method: str, *args: Any) -> PreparedCall:
        """Encodes one call for `send_batch`; ids given as hex become bytes32."""
        handler = getattr(self.contract, method)
        return PreparedCall(method, bytes(handler.encode_input(*args)))

    def register_execution_call(self, model_id: str, instance_id: str, state_ids: Sequence[str]) -> PreparedCall:
        return self.prepare(
            "registerExecution",
            id_to_bytes32(model_id),
            id_to_bytes32(instance_id),
            [id_to_bytes32(s) for s in state_ids],
        )

    def register_model_call(self, model_id: str) -> PreparedCall:
        return self.prepare("registerModel", id_to_bytes32(model_id))

    def register_instance_call(self, model_id: str, instance_id: str) -> PreparedCall:
        return self.prepare("registerInstance", id_to_bytes32(model_id), id_to_bytes32(instance_id))

    def register_states_call(self, instance_id: str, from_seq: int, state_ids: Sequence[str]) -> PreparedCall:
        return self.prepare(
            "registerStates", id_to_bytes32(instance_id), from_seq, [id_to_bytes32(s) for s in state_ids]
        )

    def register_states_and_terminate_call(
        self, instance_id: str, from_seq: int, state_ids: Sequence[str], end_id: str
    ) -> PreparedCall:
        return self.prepare(
            "registerStatesAndTerminate",
            id_to_bytes32(instance_id),
            from_seq,
            [id_to_bytes32(s) for s in state_ids],
            id_to_bytes32(end_id),
        )

    def anchor_states_call(self, root: bytes, leaf_count: int) -> PreparedCall:
        return self.prepare("anchorStates", root, leaf_count)

    def send_batch(self, calls: Sequence[PreparedCall], **tx_kwargs: Any) -> Any:
        """Sends the calls in one transaction (directly when there is one) and returns the receipt."""
        if not calls:
            raise ValueError("send_batch needs at least one call")
        if self.sender is None:
            raise ChainError("no account to send transactions from (use --account)")
        try:
            if len(calls) == 1:
                handler = getattr(self.contract, calls[0].label)
                arguments = handler.decode_input(calls[0].data)[1]
                return handler(*arguments.values(), sender=self.sender, **tx_kwargs)
            return self.contract.multicall([c.data for c in calls], sender=self.sender, **tx_kwargs)
        except ChainError:
            raise
        except Exception as error:
            labels = ", ".join(sorted({c.label for c in calls}))
            raise ChainError(f"{labels} failed: {describe_revert(error)}") from error

    def send_batch_light(self, calls: Sequence[PreparedCall], timeout: float = 120.0) -> SentTransaction:
        """`send_batch` for large batches: same transaction, but the receipt is read as raw JSON-RPC.

        Decoding thousands of logs into a full receipt costs seconds; a tracker only needs the
        block, the hash and the gas. A revert is still caught while the transaction is prepared
        (gas estimation), with the custom error named.
        """
        import time as _time

        from ape import chain

        if not calls:
            raise ValueError("send_batch_light needs at least one call")
        if self.sender is None:
            raise ChainError("no account to send transactions from (use --account)")
        labels = ", ".join(sorted({c.label for c in calls}))
        provider = chain.provider
        try:
            if len(calls) == 1:
                handler = getattr(self.contract, calls[0].label)
                arguments = list(handler.decode_input(calls[0].data)[1].values())
            else:
                handler, arguments = self.contract.multicall, [[c.data for c in calls]]
            signed = handler.as_transaction(*arguments, sender=self.sender, sign=True)
            sent = provider.web3.eth.send_raw_transaction(signed.serialize_transaction())
        except Exception as error:
            raise ChainError(f"{labels} failed: {describe_revert(error)}") from error
        transaction_hash = bytes(sent).hex()
        deadline = _time.monotonic() + timeout
        while True:
            receipt = provider.make_request("eth_getTransactionReceipt", ["0x" + transaction_hash])
            if receipt:
                break
            if _time.monotonic() > deadline:
                raise ChainError(f"{labels}: transaction 0x{transaction_hash} not mined within {timeout:.0f}s")
            _time.sleep(0.05)
        if _receipt_quantity(receipt, "status") != 1:
            raise ChainError(f"{labels} reverted in transaction 0x{transaction_hash}")
        return SentTransaction(
            transaction_hash, _receipt_quantity(receipt, "blockNumber"), _receipt_quantity(receipt, "gasUsed")
        )


def _receipt_quantity(receipt: Any, key: str) -> int:
    """A receipt field as JSON-RPC gives it (camelCase hex) or as ape's in-process test chain does
    (snake_case integers)."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
    value = receipt[key] if key in receipt else receipt[snake]
    return int(value, 16) if isinstance(value, str) else int(value)
