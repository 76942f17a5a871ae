"""Merkle trees over state leaves, compatible with OpenZeppelin's `MerkleProof` (sorted pairs).

A leaf is keccak256(keccak256(abi.encode(execution, state, seq))), exactly the contract's
`stateLeaf`; the double hash keeps a leaf from ever being read as an inner node. Who anchored a
root is part of the anchor's key on chain, so a leaf needs to name only the execution.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode
from eth_utils import keccak

from tracker.documents.ids import id_to_bytes32


def state_leaf(execution_id: str, state_id: str, seq: int) -> bytes:
    """The leaf of one state, equal to the contract's `stateLeaf(execution, state, seq)`."""
    inner = keccak(
        encode(["bytes32", "bytes32", "uint256"], [id_to_bytes32(execution_id), id_to_bytes32(state_id), seq])
    )
    return keccak(inner)


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


@dataclass(frozen=True)
class MerkleTree:
    """A tree over leaves in the given order; an odd node out is carried up unchanged."""

    levels: tuple[tuple[bytes, ...], ...]

    @classmethod
    def build(cls, leaves: list[bytes]) -> MerkleTree:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        levels = [tuple(leaves)]
        while len(levels[-1]) > 1:
            level = levels[-1]
            parents = [_hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                parents.append(level[-1])
            levels.append(tuple(parents))
        return cls(tuple(levels))

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf at `index` up to the root."""
        proof = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index //= 2
        return proof


def verify_proof(leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """Recomputes the root from a leaf and its proof, as `MerkleProof.verify` does."""
    node = leaf
    for sibling in proof:
        node = _hash_pair(node, sibling)
    return node == root
