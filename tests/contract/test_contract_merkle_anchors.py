"""Merkle anchors: per-submitter roots, leaves by the contract's rule, proofs checked on chain."""

from __future__ import annotations

import pytest
from contract_model import ZERO, Execution, MerkleTree, chain, ident, state_leaf, states


def _triples(count: int) -> list[tuple[bytes, bytes, int]]:
    """(execution, state, seq) triples spread over three executions."""
    return [(Execution(f"run {n % 3}").execution, states(str(n))[0], n // 3) for n in range(count)]


def test_state_leaf_matches_the_specification(contract):
    for execution, state, seq in _triples(4):
        assert bytes(contract.stateLeaf(execution, state, seq)) == state_leaf(execution, state, seq)


@pytest.mark.parametrize("count", [1, 2, 5, 7, 8])
def test_every_leaf_verifies_against_an_anchored_root(contract, owner, events, block_time, count):
    triples = _triples(count)
    tree = MerkleTree.build([state_leaf(*t) for t in triples])
    receipt = contract.anchorStates(tree.root, count, sender=owner)
    assert events(receipt) == [("StatesAnchored", {"submitter": owner.address, "root": tree.root, "leafCount": count})]
    assert tuple(contract.anchorOf(owner, tree.root)) == (block_time(receipt), count)
    for index, (execution, state, seq) in enumerate(triples):
        assert contract.verifyAnchoredState(owner, tree.root, execution, state, seq, tree.proof(index)) is True


def test_wrong_proofs_do_not_verify(contract, owner):
    triples = _triples(7)
    tree = MerkleTree.build([state_leaf(*t) for t in triples])
    contract.anchorStates(tree.root, len(triples), sender=owner)
    execution, state, seq = triples[2]
    checks = [
        (execution, state, seq, tree.proof(3)),  # another leaf's proof
        (execution, state, seq + 1, tree.proof(2)),  # wrong position
        (Execution("run 9").execution, state, seq, tree.proof(2)),  # wrong execution
        (execution, ident("not in the tree"), seq, tree.proof(2)),  # state not in the tree
        (execution, state, seq, []),  # no proof
    ]
    for args in checks:
        assert contract.verifyAnchoredState(owner, tree.root, *args) is False


def test_a_root_is_only_valid_under_its_submitter(contract, owner, other):
    triples = _triples(3)
    tree = MerkleTree.build([state_leaf(*t) for t in triples])
    execution, state, seq = triples[0]
    assert contract.verifyAnchoredState(owner, tree.root, execution, state, seq, tree.proof(0)) is False
    contract.anchorStates(tree.root, 3, sender=owner)
    assert contract.verifyAnchoredState(owner, tree.root, execution, state, seq, tree.proof(0)) is True
    assert contract.verifyAnchoredState(other, tree.root, execution, state, seq, tree.proof(0)) is False
    assert tuple(contract.anchorOf(other, tree.root)) == (0, 0)


def test_the_same_root_under_two_submitters_is_two_anchors(contract, owner, other, expect_revert):
    root = ident("root")
    contract.anchorStates(root, 3, sender=owner)
    contract.anchorStates(root, 5, sender=other)
    assert contract.anchorOf(owner, root)[1] == 3
    assert contract.anchorOf(other, root)[1] == 5
    for submitter in (owner, other):
        with expect_revert("AnchorAlreadyExists", submitter=submitter.address, root=root):
            contract.anchorStates(root, 3, sender=submitter)


def test_anchor_input_checks(contract, owner, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.anchorStates(ZERO, 1, sender=owner)
    with expect_revert("NoStates"):
        contract.anchorStates(ident("root"), 0, sender=owner)


def test_largest_leaf_count_is_stored(contract, owner):
    contract.anchorStates(ident("root"), 2**32 - 1, sender=owner)
    assert contract.anchorOf(owner, ident("root"))[1] == 2**32 - 1


def test_anchored_instance_pins_the_head_over_its_anchored_states(contract, owner, events):
    """The anchored flow end to end: register, anchor the leaves, close with (count, head); the
    verifier recomputes the head from InstanceRegistered's ids and the proven states."""
    run = Execution("anchored")
    trace = states("a", "b", "c")
    contract.registerAnchoredExecution(owner, *run.ids, sender=owner)
    tree = MerkleTree.build([run.leaf(state, seq) for seq, state in enumerate(trace)])
    contract.anchorStates(tree.root, len(trace), sender=owner)
    receipt = contract.closeAnchored(owner, run.execution, 0, 3, run.head(trace), ident("end"), True, sender=owner)
    terminated = events(receipt, "InstanceTerminated")[0][1]
    for seq, state in enumerate(trace):
        assert contract.verifyAnchoredState(owner, tree.root, run.execution, state, seq, tree.proof(seq))
    assert terminated["stateCount"] == 3
    assert terminated["head"] == chain(bytes(contract.startHead(*run.ids)), trace)
