"""The InstanceTracker contract as the rest of the code sees it: typed reads, prepared calls and
the one send path.

Identifiers cross this boundary as 64-hex strings and addresses as 40-hex strings (the written
forms of `tracker.documents.ids`); they become `bytes32` and checksummed addresses only here.
Every record lives under an owner: an instance is looked up by (owner, execution id), a model by
(publisher, model id), an anchor by (submitter, root), never by the id alone, so what a stranger
registers under the same ids is never read as the owner's. Reads that concern many records go
out as one `eth_call` to the contract's own `multicall`.

Reads are encoded and decoded with eth-abi from the compiled ABI and sent through the chain
layer's JSON-RPC (`tracker.chain.logs.read_together`), one `eth_call` each as before, not through
ape's contract objects: looking a method up on one of those builds the contract's custom error
types, which imports IPython (about 40 MB) into a process that only reads, such as `ape run verify`.

Writes are prepared as `PreparedCall`s (encoded calldata with a label and a gas estimate from
the contract's measured costs) and sent with `send`, one transaction per group of calls
(`multicall` when there are several): the same path for the tracker, execution control and the
tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi import decode, encode
from eth_utils import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types, keccak

from tracker.chain import canonical, deployments
from tracker.chain.revert import describe_revert
from tracker.documents.ids import checksum_address, id_to_bytes32, normalize_address, normalize_id
from tracker.errors import ChainError, ContractNotFoundError

CONTRACT_NAME = "InstanceTracker"
ZERO_ID = "0" * 64

# Measured gas (bench/gas.py), rounded up: used to split work into transactions within a budget.
GAS_PER_STATE = 2_700
GAS_PER_CALL = {
    "registerModel": 50_000,
    "registerExecution": 110_000,
    "registerAnchoredExecution": 90_000,
    "registerStates": 40_000,
    "endAttempt": 45_000,
    "terminate": 45_000,
    "closeAnchored": 40_000,
    "anchorStates": 50_000,
}
GAS_PER_TRANSACTION = 21_000
GAS_HEADROOM = 1.2
MAX_HEADROOM_GAS = 250_000


class Status(IntEnum):
    """The life of an instance key (the contract's `Status`)."""

    NONE = 0
    OPEN = 1
    FINAL = 2
    MOVED = 3


class Mode(IntEnum):
    """How an instance's states are recorded (the contract's `Mode`)."""

    DIRECT = 0
    ANCHORED = 1


def instance_key(owner: str, execution_id: str) -> str:
    """The contract's `instanceKey(owner, execution)`: keccak256(abi.encode(owner, execution))."""
    return keccak(encode(["address", "bytes32"], [checksum_address(owner), id_to_bytes32(execution_id)])).hex()


@dataclass(frozen=True)
class InstanceRecord:
    """An instance as the chain holds it under its owner's key."""

    owner: str
    execution_id: str
    state_count: int
    attempts: int
    status: Status
    mode: Mode
    head: str | None  # direct mode: the running head; anchored: None (carried by events)

    @property
    def key(self) -> str:
        return instance_key(self.owner, self.execution_id)

    @property
    def final(self) -> bool:
        return self.status == Status.FINAL


@dataclass(frozen=True)
class CertificateRecord:
    account: str
    fingerprint: str
    signature: bytes
    registered_at: int


@dataclass(frozen=True)
class AnchorRecord:
    submitter: str
    root: str
    anchored_at: int
    leaf_count: int


@dataclass(frozen=True)
class SentTransaction:
    """A mined transaction: hash (64 hex), block, gas used."""

    transaction_hash: str
    block_number: int
    gas_used: int


@dataclass(frozen=True)
class PreparedCall:
    """One encoded contract call, with a label for messages and its estimated gas."""

    label: str
    data: bytes
    gas: int = 0


def _b32(values: Iterable[str]) -> list[bytes]:
    return [id_to_bytes32(value) for value in values]


@dataclass(frozen=True)
class ContractFunction:
    """One function of a compiled ABI: its selector and the types of its inputs and outputs."""

    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def encode(self, *args: Any) -> bytes:
        return self.selector + encode(list(self.inputs), list(args))

    def decode(self, data: bytes) -> tuple[Any, ...]:
        return tuple(decode(list(self.outputs), data))


def contract_functions(abi: Iterable[Any]) -> dict[str, ContractFunction]:
    """The functions of an ABI (JSON entries or ethpm-types models) by name; InstanceTracker
    overloads none."""
    functions: dict[str, ContractFunction] = {}
    for entry in abi:
        item: Any = entry if isinstance(entry, dict) else entry.model_dump(mode="json", by_alias=True)
        if item.get("type") == "function":
            functions[item["name"]] = ContractFunction(
                item["name"],
                bytes(function_abi_to_4byte_selector(item)),
                tuple(get_abi_input_types(item)),
                tuple(get_abi_output_types(item)),
            )
    return functions


class TrackerContract:
    """A deployed InstanceTracker, optionally with the account that sends transactions."""

    def __init__(self, contract: Any, sender: Any = None):
        self.contract = contract
        self.sender = sender
        self._deployment_block: int | None = None
        self._functions: dict[str, ContractFunction] | None = None

    # ---------------------------------------------------------------- finding the contract

    @classmethod
    def at(cls, address: str | None = None, sender: Any = None) -> TrackerContract:
        """The contract at `address`, else at the canonical address (the same on every chain).

        Raises `ContractNotFoundError` when no code is at the address.
        """
        from ape import chain, project

        chain_id = chain.chain_id
        target = checksum_address(address) if address else canonical.address()
        if not chain.provider.get_code(target):
            where = "at" if address else "at the canonical address"
            raise ContractNotFoundError(
                f"no {CONTRACT_NAME} {where} {target} on chain id {chain_id}: run `ape run deploy` on this "
                "network" + ("" if address else " (or pass --contract ADDRESS for a private deployment)")
            )
        return cls(project.InstanceTracker.at(target), sender)

    @property
    def address(self) -> str:
        return str(self.contract.address)

    @property
    def is_canonical(self) -> bool:
        return normalize_address(self.address) == normalize_address(canonical.address())

    def deployment_block(self) -> int:
        """Where log queries start: the block of the deployment recorded for this contract, else 0."""
        from ape import chain

        if self._deployment_block is None:
            record = deployments.recorded(chain.chain_id)
            matches = record is not None and record.address.lower() == self.address.lower()
            if record is not None and matches and record.genesis_hash is not None:
                matches = record.genesis_hash == bytes(chain.provider.get_block(0).hash).hex()
            self._deployment_block = record.block_number if record is not None and matches else 0
        return self._deployment_block

    # ---------------------------------------------------------------- reads

    def function(self, name: str) -> ContractFunction:
        """A function of the contract's compiled ABI."""
        if self._functions is None:
            self._functions = contract_functions(self.contract.contract_type.abi)
        try:
            return self._functions[name]
        except KeyError:
            raise ChainError(f"{CONTRACT_NAME} has no function {name}") from None

    def encode_call(self, name: str, *args: Any) -> bytes:
        """The calldata of one call, from the compiled ABI."""
        return self.function(name).encode(*args)

    def view(self, name: str, *args: Any) -> tuple[Any, ...]:
        """One read-only call (one `eth_call`), decoded with the compiled ABI's output types."""
        from tracker.chain import logs

        function = self.function(name)
        _events, (data,) = logs.read_together(self.address, [], [function.encode(*args)])
        return function.decode(data)

    def read_many(self, encoded_calls: Iterable[bytes], chunk: int = 500) -> list[bytes]:
        """Runs encoded view calls through the contract's `multicall` in one `eth_call` per chunk."""
        calls = [bytes(c) for c in encoded_calls]
        results: list[bytes] = []
        for start in range(0, len(calls), chunk):
            (returned,) = self.view("multicall", calls[start : start + chunk])
            results.extend(bytes(r) for r in returned)
        return results

    def instances(self, owner: str, execution_ids: Sequence[str]) -> dict[str, InstanceRecord | None]:
        """The instances of many executions under one owner, in one `eth_call` (None: not registered)."""
        ids = [normalize_id(i, "execution id") for i in execution_ids]
        owner = normalize_address(owner)
        results = self.read_many(self.encode_call("instanceOf", checksum_address(owner), id_to_bytes32(i)) for i in ids)
        records: dict[str, InstanceRecord | None] = {}
        for execution, data in zip(ids, results):
            count, attempts, status, mode, head = decode(["uint64", "uint32", "uint8", "uint8", "bytes32"], data)
            if status == Status.NONE:
                records[execution] = None
                continue
            records[execution] = InstanceRecord(
                owner,
                execution,
                int(count),
                int(attempts),
                Status(status),
                Mode(mode),
                bytes(head).hex() if mode == Mode.DIRECT else None,
            )
        return records

    def instance(self, owner: str, execution_id: str) -> InstanceRecord | None:
        return self.instances(owner, [execution_id])[normalize_id(execution_id, "execution id")]

    def models_registered_at(self, publisher: str, model_ids: Sequence[str]) -> dict[str, int | None]:
        """When the publisher registered each model (block timestamp), None when it did not."""
        ids = [normalize_id(i, "model id") for i in model_ids]
        results = self.read_many(
            self.encode_call("modelOf", checksum_address(publisher), id_to_bytes32(i)) for i in ids
        )
        return {m: (int(decode(["uint64"], data)[0]) or None) for m, data in zip(ids, results)}

    def model_registered_at(self, publisher: str, model_id: str) -> int | None:
        return self.models_registered_at(publisher, [model_id])[normalize_id(model_id, "model id")]

    def anchors(self, submitter: str, roots: Sequence[str]) -> dict[str, AnchorRecord | None]:
        """The submitter's anchors of many roots, in one `eth_call` (None: not anchored by it)."""
        ids = [normalize_id(r, "root") for r in roots]
        results = self.read_many(
            self.encode_call("anchorOf", checksum_address(submitter), id_to_bytes32(r)) for r in ids
        )
        records: dict[str, AnchorRecord | None] = {}
        for root, data in zip(ids, results):
            anchored_at, leaf_count = decode(["uint64", "uint32"], data)
            records[root] = (
                AnchorRecord(normalize_address(submitter), root, int(anchored_at), int(leaf_count))
                if anchored_at
                else None
            )
        return records

    def anchor(self, submitter: str, root: str) -> AnchorRecord | None:
        return self.anchors(submitter, [root])[normalize_id(root, "root")]

    def certificate(self, account: str) -> CertificateRecord | None:
        fingerprint, signature, registered_at = self.view("certificateOf", checksum_address(account))
        fingerprint = bytes(fingerprint)
        if fingerprint == bytes(32):
            return None
        return CertificateRecord(normalize_address(account), fingerprint.hex(), bytes(signature), int(registered_at))

    def client_id(self, account: str) -> str:
        return str(self.view("clientIdOf", checksum_address(account))[0])

    def is_operator(self, owner: str, operator: str) -> bool:
        return bool(self.view("isOperator", checksum_address(owner), checksum_address(operator))[0])

    def pending_owner(self, owner: str, execution_id: str) -> str | None:
        (pending,) = self.view("pendingOwner", bytes.fromhex(instance_key(owner, execution_id)))
        return None if int(str(pending), 16) == 0 else normalize_address(str(pending))

    # ---------------------------------------------------------------- prepared calls

    def prepare(self, method: str, *args: Any, gas: int | None = None) -> PreparedCall:
        """Encodes one call; `gas` defaults to the measured cost of the method."""
        handler = getattr(self.contract, method)
        return PreparedCall(method, bytes(handler.encode_input(*args)), gas or GAS_PER_CALL.get(method, 60_000))

    def register_model_call(self, owner: str, model_id: str) -> PreparedCall:
        return self.prepare("registerModel", checksum_address(owner), id_to_bytes32(model_id))

    def register_execution_call(
        self, owner: str, execution_id: str, model_id: str, instance_id: str, state_ids: Sequence[str]
    ) -> PreparedCall:
        return self.prepare(
            "registerExecution",
            checksum_address(owner),
            id_to_bytes32(execution_id),
            id_to_bytes32(model_id),
            id_to_bytes32(instance_id),
            _b32(state_ids),
            gas=GAS_PER_CALL["registerExecution"] + GAS_PER_STATE * len(state_ids),
        )

    def register_anchored_execution_call(
        self, owner: str, execution_id: str, model_id: str, instance_id: str
    ) -> PreparedCall:
        return self.prepare(
            "registerAnchoredExecution",
            checksum_address(owner),
            id_to_bytes32(execution_id),
            id_to_bytes32(model_id),
            id_to_bytes32(instance_id),
        )

    def register_states_call(
        self, owner: str, execution_id: str, from_seq: int, state_ids: Sequence[str]
    ) -> PreparedCall:
        return self.prepare(
            "registerStates",
            checksum_address(owner),
            id_to_bytes32(execution_id),
            from_seq,
            _b32(state_ids),
            gas=GAS_PER_CALL["registerStates"] + GAS_PER_STATE * len(state_ids),
        )

    def end_attempt_call(
        self, owner: str, execution_id: str, from_seq: int, state_ids: Sequence[str], attempt: int, end_id: str
    ) -> PreparedCall:
        """The last states of an attempt and its end, the instance staying open for a redrive."""
        return self._closing_call("endAttempt", owner, execution_id, from_seq, state_ids, attempt, end_id)

    def terminate_call(
        self, owner: str, execution_id: str, from_seq: int, state_ids: Sequence[str], attempt: int, end_id: str
    ) -> PreparedCall:
        """The last states and the final end: nothing can be written to the instance afterwards."""
        return self._closing_call("terminate", owner, execution_id, from_seq, state_ids, attempt, end_id)

    def _closing_call(
        self,
        method: str,
        owner: str,
        execution_id: str,
        from_seq: int,
        state_ids: Sequence[str],
        attempt: int,
        end_id: str,
    ) -> PreparedCall:
        return self.prepare(
            method,
            checksum_address(owner),
            id_to_bytes32(execution_id),
            from_seq,
            _b32(state_ids),
            attempt,
            id_to_bytes32(end_id),
            gas=GAS_PER_CALL[method] + GAS_PER_STATE * len(state_ids),
        )

    def close_anchored_call(
        self,
        owner: str,
        execution_id: str,
        attempt: int,
        state_count: int,
        head: str,
        end_id: str,
        final: bool,
    ) -> PreparedCall:
        return self.prepare(
            "closeAnchored",
            checksum_address(owner),
            id_to_bytes32(execution_id),
            attempt,
            state_count,
            id_to_bytes32(head),
            id_to_bytes32(end_id),
            final,
        )

    def anchor_states_call(self, root: bytes, leaf_count: int) -> PreparedCall:
        return self.prepare("anchorStates", root, leaf_count)

    def set_operator_call(self, operator: str, approved: bool) -> PreparedCall:
        return self.prepare("setOperator", checksum_address(operator), approved)

    # ---------------------------------------------------------------- the send path

    def require_funds(self, methods: Sequence[str], what: str) -> None:
        """Raises `ChainError` saying how much is missing when the sender cannot pay for a
        transaction of these calls at twice today's gas price (checked before anything
        irreversible is started)."""
        from ape import chain

        if self.sender is None:
            raise ChainError("no account to send transactions from (use --account)")
        gas = GAS_PER_TRANSACTION + sum(GAS_PER_CALL.get(method, 60_000) for method in methods)
        price = 2 * int(chain.provider.gas_price)
        needed = gas * price
        balance = int(chain.provider.get_balance(str(self.sender.address)))
        if balance < needed:
            raise ChainError(
                f"account {self.sender.address} has {balance} wei; {what} needs up to {needed} wei "
                f"({gas:,} gas at {price} wei per gas): send it {needed - balance} wei and run this again"
            )

    def send(self, calls: Sequence[PreparedCall], timeout: float = 120.0) -> SentTransaction:
        """Sends the calls in one transaction (`multicall` when there are several) and waits for it.

        The transaction is signed by ape's account and sent raw; its receipt is read as raw JSON-RPC
        (a tracker needs the block, the hash and the gas, not thousands of decoded logs). A revert
        is caught while the transaction is prepared (gas estimation), with the custom error named.
        Raises `ChainError` naming the calls on any failure.
        """
        from ape import chain

        if not calls:
            raise ValueError("send needs at least one call")
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
            transaction = handler.as_transaction(*arguments, sender=self.sender)
            # Estimated here on every network (a refusal is named before anything is sent), with
            # headroom for the state the transaction meets when it is mined.
            estimate = int(provider.estimate_gas_cost(transaction))
            transaction.gas_limit = gas_limit_for(estimate, provider.max_gas)
            signed = self.sender.sign_transaction(transaction)
            if signed is None:
                raise ChainError(f"{labels}: the account did not sign the transaction")
            sent = provider.web3.eth.send_raw_transaction(signed.serialize_transaction())
        except ChainError:
            raise
        except Exception as error:  # ape and the node raise many error types; each becomes one line
            raise ChainError(f"{labels} failed: {describe_revert(error)}") from error
        transaction_hash = bytes(sent).hex()
        deadline = time.monotonic() + timeout
        while True:
            receipt = provider.make_request("eth_getTransactionReceipt", ["0x" + transaction_hash])
            if receipt:
                break
            if time.monotonic() > deadline:
                raise ChainError(f"{labels}: transaction 0x{transaction_hash} not mined within {timeout:.0f}s")
            time.sleep(0.05)
        if _receipt_quantity(receipt, "status") != 1:
            raise ChainError(f"{labels} reverted in transaction 0x{transaction_hash}")
        return SentTransaction(
            transaction_hash, _receipt_quantity(receipt, "blockNumber"), _receipt_quantity(receipt, "gasUsed")
        )


def gas_limit_for(estimate: int, max_gas: int) -> int:
    """The gas limit a transaction is sent with: the node's estimate plus headroom for the state it
    meets when it is mined (20%, at most `MAX_HEADROOM_GAS`). Blocks are filled by the limits their
    transactions declare, not by the gas they use: 20% on top of a multicall of millions of gas
    would leave a sixth of every block it shares with others empty."""
    headroom = min(round(estimate * (GAS_HEADROOM - 1)), MAX_HEADROOM_GAS)
    return min(estimate + headroom + 10_000, max_gas)


def _receipt_quantity(receipt: Any, key: str) -> int:
    """A receipt field as JSON-RPC gives it (camelCase hex) or as ape's in-process test chain does
    (snake_case integers)."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
    value = receipt[key] if key in receipt else receipt[snake]
    return int(value, 16) if isinstance(value, str) else int(value)
