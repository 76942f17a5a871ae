"""The hashes of InstanceTracker v2 recomputed off chain, as a verifier does: keys, chain heads,
state leaves and sorted-pair Merkle trees. The tests compare the contract against these.

Kept independent of the `tracker` package (which is being reorganised) on purpose: what a test
expects is written out here from the specification, not taken from the code under test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi import encode
from eth_utils import keccak

ZERO = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20


class Status(IntEnum):
    NONE = 0
    OPEN = 1
    FINAL = 2
    MOVED = 3


class Mode(IntEnum):
    DIRECT = 0
    ANCHORED = 1


def ident(label: str) -> bytes:
    """A nonzero bytes32 id: the SHA-256 of a label, as the ids of real documents are."""
    return hashlib.sha256(label.encode("utf-8")).digest()


def address_of(account: Any) -> str:
    return account if isinstance(account, str) else str(account.address)


def key(account: Any, identifier: bytes) -> bytes:
    """keccak256(abi.encode(account, id)): instance, model and anchor keys alike."""
    return keccak(encode(["address", "bytes32"], [address_of(account), identifier]))


def start_head(execution: bytes, model: bytes, document: bytes) -> bytes:
    """keccak256(abi.encode(execution, model, instanceDocument))."""
    return keccak(encode(["bytes32", "bytes32", "bytes32"], [execution, model, document]))


def chain(head: bytes, states: Iterable[bytes]) -> bytes:
    """The head after the states: keccak256(abi.encodePacked(head, state)) for each, in order."""
    for state in states:
        head = keccak(head + state)
    return head


def state_leaf(execution: bytes, state: bytes, seq: int) -> bytes:
    """keccak256(bytes.concat(keccak256(abi.encode(execution, state, seq))))."""
    return keccak(keccak(encode(["bytes32", "bytes32", "uint256"], [execution, state, seq])))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


@dataclass(frozen=True)
class MerkleTree:
    """A sorted-pair tree (OpenZeppelin MerkleProof's rule); an odd node is carried up unhashed."""

    layers: tuple[tuple[bytes, ...], ...]

    @classmethod
    def build(cls, leaves: list[bytes]) -> MerkleTree:
        assert leaves, "a tree needs at least one leaf"
        layers = [tuple(leaves)]
        while len(layers[-1]) > 1:
            level = layers[-1]
            layers.append(
                tuple(
                    _pair(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)
                )
            )
        return cls(tuple(layers))

    @property
    def root(self) -> bytes:
        return self.layers[-1][0]

    def proof(self, index: int) -> list[bytes]:
        proof = []
        for level in self.layers[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index //= 2
        return proof


@dataclass(frozen=True)
class Execution:
    """One Step Functions execution's ids, derived from a label: execution, model, instance document."""

    label: str
    model_label: str = "model"

    @property
    def execution(self) -> bytes:
        return ident(f"execution {self.label}")

    @property
    def model(self) -> bytes:
        return ident(self.model_label)

    @property
    def document(self) -> bytes:
        return ident(f"instance document {self.label}")

    @property
    def ids(self) -> tuple[bytes, bytes, bytes]:
        """(execution, model, instanceDocument), the registration arguments after the owner."""
        return (self.execution, self.model, self.document)

    def start(self) -> bytes:
        return start_head(*self.ids)

    def head(self, states: Iterable[bytes]) -> bytes:
        return chain(self.start(), states)

    def key(self, owner: Any) -> bytes:
        return key(owner, self.execution)

    def leaf(self, state: bytes, seq: int) -> bytes:
        return state_leaf(self.execution, state, seq)


def states(*labels: str) -> list[bytes]:
    return [ident(f"state {label}") for label in labels]


def record(contract: Any, owner: Any, execution: Execution) -> tuple[int, int, int, int, bytes]:
    """instanceOf(owner, execution) with the head as bytes, comparable with a plain tuple."""
    count, attempts, status, mode, head = contract.instanceOf(address_of(owner), execution.execution)
    return (int(count), int(attempts), int(status), int(mode), bytes(head))
