"""Attack regressions: every way the published prototype could be hijacked, refused here.

The prototype lets anyone re-register a victim's instance hash and then append states to it.
Each test plays one hijack as `attacker` against `victim` and checks both the custom error and
that the victim's record is untouched.
"""

from __future__ import annotations

import pytest

from tracker.chain.merkle import MerkleTree, state_leaf
from tracker.documents.facts import chain_head

ZERO_ADDRESS = "0x" + "00" * 20


@pytest.fixture
def victim(owner):
    return owner


@pytest.fixture
def attacker(other):
    return other


@pytest.fixture
def victim_instance(contract, victim, ids):
    """The victim's model `m` and instance `i` with states a, b."""
    contract.registerExecution(ids("m"), ids("i"), [ids("a"), ids("b")], sender=victim)
    return ids("i")


@pytest.fixture
def untouched(contract, victim, ids, hexid):
    """Asserts that the victim's model and instance are exactly as registered."""

    def check(count: int = 2, terminated: bool = False, states: tuple[str, ...] = ("a", "b")) -> None:
        assert contract.models(ids("m"))[0] == victim.address
        owner, stored_count, stored_terminated, model, _ = contract.instances(ids("i"))
        assert (owner, stored_count, stored_terminated, bytes(model)) == (victim.address, count, terminated, ids("m"))
        expected = chain_head(hexid("m"), hexid("i"), [hexid(s) for s in states])
        assert bytes(contract.instanceHead(ids("i"))).hex() == expected

    return check


def test_prototype_attack_reregister_instance_then_append_states(
    contract, attacker, victim, victim_instance, ids, expect_revert, untouched
):
    for register in (
        lambda: contract.registerInstance(ids("m"), victim_instance, sender=attacker),
        lambda: contract.registerExecution(ids("m"), victim_instance, [], sender=attacker),
        lambda: contract.registerExecution(ids("m"), victim_instance, [ids("evil")], sender=attacker),
        lambda: contract.registerExecution(ids("attacker-model"), victim_instance, [ids("evil")], sender=attacker),
    ):
        with expect_revert("InstanceAlreadyRegistered", instance=victim_instance, owner=victim.address):
            register()
    with expect_revert("InstanceNotOwned", instance=victim_instance, caller=attacker.address):
        contract.registerStates(victim_instance, 2, [ids("evil")], sender=attacker)
    untouched()


def test_reregistering_a_victims_model_changes_nothing(
    contract, attacker, victim, victim_instance, ids, events, untouched
):
    before = contract.models(ids("m"))
    receipt = contract.registerModel(ids("m"), sender=attacker)
    assert events(receipt) == []
    assert contract.models(ids("m")) == before
    # Using the model for the attacker's own instance is allowed and does not make them publisher.
    contract.registerInstance(ids("m"), ids("attacker-i"), sender=attacker)
    assert contract.instances(ids("attacker-i"))[0] == attacker.address
    untouched()


def test_states_transitions_and_termination_into_a_victims_instance(
    contract, attacker, victim_instance, ids, hexid, expect_revert, untouched
):
    refused = dict(instance=victim_instance, caller=attacker.address)
    with expect_revert("InstanceNotOwned", **refused):
        contract.registerStates(victim_instance, 2, [ids("evil")], sender=attacker)
    with expect_revert("InstanceNotOwned", **refused):
        contract.registerStatesAndTerminate(victim_instance, 2, [ids("evil")], ids("end"), sender=attacker)
    with expect_revert("InstanceNotOwned", **refused):
        contract.terminateInstance(victim_instance, ids("end"), sender=attacker)
    start = bytes.fromhex(chain_head(hexid("m"), hexid("i"), []))
    with expect_revert("InstanceNotOwned", **refused):
        contract.registerTransition(victim_instance, start, [ids("a"), ids("b")], 1, sender=attacker)
    with expect_revert("NotInstanceOwner", **refused):
        contract.transferInstance(victim_instance, attacker, sender=attacker)
    untouched()


def test_no_writes_after_termination_even_by_owner_or_operator(
    contract, victim, operator, victim_instance, ids, expect_revert, untouched
):
    contract.setOperator(operator, True, sender=victim)
    contract.terminateInstance(victim_instance, ids("end"), sender=victim)
    for caller in (victim, operator):
        with expect_revert("InstanceIsTerminated", instance=victim_instance):
            contract.registerStates(victim_instance, 2, [ids("late")], sender=caller)
        with expect_revert("InstanceIsTerminated", instance=victim_instance):
            contract.terminateInstance(victim_instance, ids("end2"), sender=caller)
    untouched(terminated=True)


def test_new_owner_of_a_transferred_instance_cannot_reopen_it(
    contract, victim, attacker, victim_instance, ids, expect_revert, untouched
):
    contract.terminateInstance(victim_instance, ids("end"), sender=victim)
    contract.transferInstance(victim_instance, attacker, sender=victim)
    with expect_revert("InstanceIsTerminated", instance=victim_instance):
        contract.registerStates(victim_instance, 2, [ids("evil")], sender=attacker)
    assert contract.instances(victim_instance)[:3] == (attacker.address, 2, True)


def test_replayed_certificate_signature_of_another_key(contract, victim, attacker, sign, expect_revert):
    fingerprint = bytes.fromhex("ab" * 32)
    victims_signature = sign(victim, fingerprint)
    contract.registerCertificate(fingerprint, victims_signature, sender=victim)
    attackers_fingerprint = bytes.fromhex("cd" * 32)
    # The attacker replays the victim's signature, then signs a fingerprint with a key not theirs.
    with expect_revert("CertificateSignerMismatch", signer=victim.address, sender=attacker.address):
        contract.registerCertificate(fingerprint, victims_signature, sender=attacker)
    with expect_revert("CertificateSignerMismatch", signer=victim.address, sender=attacker.address):
        contract.registerCertificate(attackers_fingerprint, sign(victim, attackers_fingerprint), sender=attacker)
    assert bytes(contract.certificateOf(victim)[0]) == fingerprint
    assert bytes(contract.certificateOf(attacker)[0]) == b"\x00" * 32


def test_operator_after_revocation(contract, victim, operator, victim_instance, ids, expect_revert, untouched):
    contract.setOperator(operator, True, sender=victim)
    contract.registerStates(victim_instance, 2, [ids("c")], sender=operator)
    contract.setOperator(operator, False, sender=victim)
    with expect_revert("InstanceNotOwned", instance=victim_instance, caller=operator.address):
        contract.registerStates(victim_instance, 3, [ids("evil")], sender=operator)
    with expect_revert("InstanceNotOwned", instance=victim_instance, caller=operator.address):
        contract.terminateInstance(victim_instance, ids("end"), sender=operator)
    untouched(count=3, states=("a", "b", "c"))


def test_operator_of_one_owner_cannot_write_to_another_owners_instance(
    contract, victim, attacker, operator, victim_instance, ids, expect_revert, untouched
):
    contract.setOperator(operator, True, sender=attacker)
    with expect_revert("InstanceNotOwned", instance=victim_instance, caller=operator.address):
        contract.registerStates(victim_instance, 2, [ids("evil")], sender=operator)
    untouched()


def test_approving_oneself_as_the_victims_operator_does_nothing(
    contract, victim, attacker, victim_instance, ids, expect_revert, untouched
):
    contract.setOperator(victim, True, sender=attacker)  # grants the victim rights over the attacker
    contract.setOperator(attacker, True, sender=attacker)
    assert contract.isOperator(victim, attacker) is False
    with expect_revert("InstanceNotOwned", instance=victim_instance, caller=attacker.address):
        contract.registerStates(victim_instance, 2, [ids("evil")], sender=attacker)
    untouched()


def test_multicall_cannot_act_as_someone_else(contract, attacker, victim_instance, ids, expect_revert, untouched):
    hijack = [
        contract.registerModel.encode_input(ids("attacker-m")),
        contract.registerStates.encode_input(victim_instance, 2, [ids("evil")]),
    ]
    with expect_revert("InstanceNotOwned", instance=victim_instance, caller=attacker.address):
        contract.multicall(hijack, sender=attacker)
    nested = [
        contract.multicall.encode_input([contract.transferInstance.encode_input(victim_instance, attacker.address)])
    ]
    with expect_revert("NotInstanceOwner", instance=victim_instance, caller=attacker.address):
        contract.multicall(nested, sender=attacker)
    assert contract.models(ids("attacker-m"))[0] == ZERO_ADDRESS
    untouched()


def test_anchor_over_a_victims_states_is_attributed_to_its_submitter(
    contract, victim, attacker, victim_instance, hexid
):
    """Anyone may anchor a root; the view names who did, so a verifier rejects a stranger's anchor."""
    leaves = [state_leaf(hexid("i"), hexid("a"), 0), state_leaf(hexid("i"), hexid("b"), 1)]
    tree = MerkleTree.build(leaves)
    contract.anchorStates(tree.root, 2, sender=attacker)
    valid, submitter = contract.verifyAnchoredState(
        tree.root, victim_instance, bytes.fromhex(hexid("a")), 0, tree.proof(0)
    )
    assert (valid, submitter) == (True, attacker.address)
    assert submitter != contract.instances(victim_instance)[0]
