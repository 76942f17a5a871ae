"""Merkle anchors: roots built with tracker.merkle verify on chain with the contract's leaf rule."""

from __future__ import annotations

import pytest

from tracker.chain.merkle import MerkleTree, state_leaf, verify_proof

ZERO = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20


def _states(hexid, count: int) -> list[tuple[str, str, int]]:
    """(instance, state, seq) triples spread over three instances."""
    triples = []
    for n in range(count):
        instance = hexid(f"instance-{n % 3}")
        triples.append((instance, hexid(f"state-{n}"), n // 3))
    return triples


def test_state_leaf_matches_python(contract, hexid):
    for instance, state, seq in _states(hexid, 4):
        expected = state_leaf(instance, state, seq)
        assert bytes(contract.stateLeaf(bytes.fromhex(instance), bytes.fromhex(state), seq)) == expected


@pytest.mark.parametrize("count", [1, 2, 5, 7, 8])
def test_every_leaf_verifies_against_an_anchored_root(contract, owner, hexid, events, block_time, count):
    triples = _states(hexid, count)
    tree = MerkleTree.build([state_leaf(*t) for t in triples])
    receipt = contract.anchorStates(tree.root, count, sender=owner)
    assert events(receipt) == [("StatesAnchored", {"root": tree.root, "submitter": owner.address, "leafCount": count})]
    submitter, anchored_at, leaf_count = contract.anchors(tree.root)
    assert (submitter, anchored_at, leaf_count) == (owner.address, block_time(receipt), count)
    for index, (instance, state, seq) in enumerate(triples):
        proof = tree.proof(index)
        assert verify_proof(state_leaf(instance, state, seq), proof, tree.root)
        valid, by = contract.verifyAnchoredState(tree.root, bytes.fromhex(instance), bytes.fromhex(state), seq, proof)
        assert (valid, by) == (True, owner.address)


def test_wrong_proofs_do_not_verify(contract, owner, hexid):
    triples = _states(hexid, 7)
    tree = MerkleTree.build([state_leaf(*t) for t in triples])
    contract.anchorStates(tree.root, len(triples), sender=owner)
    instance, state, seq = (bytes.fromhex(triples[2][0]), bytes.fromhex(triples[2][1]), triples[2][2])
    checks = [
        (instance, state, seq, tree.proof(3)),  # another leaf's proof
        (instance, state, seq + 1, tree.proof(2)),  # wrong position
        (bytes.fromhex(hexid("instance-9")), state, seq, tree.proof(2)),  # wrong instance
        (instance, bytes.fromhex(hexid("state-99")), seq, tree.proof(2)),  # state not in the tree
        (instance, state, seq, []),  # no proof
    ]
    for args in checks:
        assert contract.verifyAnchoredState(tree.root, *args) == (False, owner.address)


def test_root_that_was_never_anchored(contract, owner, hexid):
    triples = _states(hexid, 3)
    tree = MerkleTree.build([state_leaf(*t) for t in triples])
    instance, state, seq = triples[0]
    result = contract.verifyAnchoredState(tree.root, bytes.fromhex(instance), bytes.fromhex(state), seq, tree.proof(0))
    assert result == (False, ZERO_ADDRESS)
    assert contract.anchors(tree.root) == (ZERO_ADDRESS, 0, 0)


def test_duplicate_root_reverts_for_anyone(contract, owner, other, hexid, expect_revert):
    tree = MerkleTree.build([state_leaf(*t) for t in _states(hexid, 3)])
    contract.anchorStates(tree.root, 3, sender=owner)
    for caller in (owner, other):
        with expect_revert("AnchorAlreadyExists", root=tree.root, submitter=owner.address):
            contract.anchorStates(tree.root, 3, sender=caller)
    assert contract.anchors(tree.root)[0] == owner.address


def test_anchor_input_checks(contract, owner, ids, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.anchorStates(ZERO, 1, sender=owner)
    with expect_revert("NoStates"):
        contract.anchorStates(ids("root"), 0, sender=owner)


def test_large_leaf_count_is_stored(contract, owner, ids):
    contract.anchorStates(ids("root"), 2**32 - 1, sender=owner)
    assert contract.anchors(ids("root"))[2] == 2**32 - 1


def test_client_reads_anchor(tracker, contract, owner, hexid):
    tree = MerkleTree.build([state_leaf(*t) for t in _states(hexid, 5)])
    tracker.send_batch([tracker.anchor_states_call(tree.root, 5)])
    record = tracker.anchor(tree.root.hex())
    assert (record.root, record.submitter, record.leaf_count) == (tree.root.hex(), owner.address.lower()[2:], 5)
