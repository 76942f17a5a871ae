"""Attack regressions from v1, replayed against v2: each hijack is played as `attacker` against
`victim` and checks the exact error (or that it landed only under the attacker's own key) and
that the victim's record is untouched.

The published prototype let anyone re-register a victim's instance hash and append states to it;
v1 refused that but kept global, first-come records. v2 keys every record by its owner, so the
same moves now either revert naming the caller or write only under the attacker's key. The
regressions that became the property attacks (model squatting, anchors, finality, replayed
certificate signatures, revoked operators, transfers) live in tests/attacks/test_contract_attacks.py.
"""

from __future__ import annotations

import pytest
from contract_model import Execution, Mode, Status, ident, record, states

RUN = Execution("victim run")
END = ident("end document")


@pytest.fixture
def victim(owner):
    return owner


@pytest.fixture
def attacker(other):
    return other


@pytest.fixture
def victim_instance(contract, victim):
    """The victim's direct-mode RUN with states a, b; returns its key."""
    contract.registerExecution(victim, *RUN.ids, states("a", "b"), sender=victim)
    return RUN.key(victim)


@pytest.fixture
def untouched(contract, victim, victim_instance):
    """Asserts that the victim's instance and model are exactly as registered."""
    registered_at = contract.modelOf(victim, RUN.model)

    def check(count: int = 2, names: tuple[str, ...] = ("a", "b"), status: int = Status.OPEN, attempts: int = 0):
        assert record(contract, victim, RUN) == (count, attempts, status, Mode.DIRECT, RUN.head(states(*names)))
        assert contract.modelOf(victim, RUN.model) == registered_at

    return check


def test_prototype_attack_reregister_instance_then_append_states(
    contract, attacker, victim, victim_instance, expect_revert, untouched
):
    # Registering the victim's ids now lands under the attacker's own key, whatever the model or states.
    contract.registerExecution(attacker, *RUN.ids, states("evil"), sender=attacker)
    assert record(contract, attacker, RUN)[:3] == (1, 0, Status.OPEN)
    with expect_revert("InstanceAlreadyRegistered", key=RUN.key(attacker)):
        contract.registerAnchoredExecution(attacker, *RUN.ids, sender=attacker)
    # Naming the victim as owner is refused before anything is looked at.
    refused = dict(owner=victim.address, caller=attacker.address)
    with expect_revert("NotOwnerOrOperator", **refused):
        contract.registerExecution(victim, *RUN.ids, states("evil"), sender=attacker)
    with expect_revert("NotOwnerOrOperator", **refused):
        contract.registerExecution(victim, RUN.execution, ident("attacker model"), RUN.document, [], sender=attacker)
    with expect_revert("NotOwnerOrOperator", **refused):
        contract.registerStates(victim, RUN.execution, 2, states("evil"), sender=attacker)
    untouched()


def test_states_transitions_ends_and_transfer_into_a_victims_instance(
    contract, attacker, victim, victim_instance, expect_revert, untouched
):
    refused = dict(owner=victim.address, caller=attacker.address)
    with expect_revert("NotOwnerOrOperator", **refused):
        contract.registerStates(victim, RUN.execution, 2, states("evil"), sender=attacker)
    with expect_revert("NotOwnerOrOperator", **refused):
        contract.endAttempt(victim, RUN.execution, 2, states("evil"), 0, END, sender=attacker)
    with expect_revert("NotOwnerOrOperator", **refused):
        contract.terminate(victim, RUN.execution, 2, states("evil"), 0, END, sender=attacker)
    with expect_revert("NotOwnerOrOperator", **refused):
        contract.registerTransition(victim, RUN.execution, RUN.start(), states("a", "b"), 1, sender=attacker)
    # Transfers are keyed by the caller: the attacker can only propose its own (absent) instance,
    # and cannot accept what nobody proposed to it.
    with expect_revert("InstanceNotRegistered", key=RUN.key(attacker)):
        contract.proposeTransfer(RUN.execution, attacker, sender=attacker)
    with expect_revert("NotPendingOwner", key=victim_instance, caller=attacker.address):
        contract.acceptTransfer(victim, RUN.execution, sender=attacker)
    untouched()


def test_new_owner_of_a_transferred_final_instance_cannot_reopen_it(
    contract, victim, attacker, victim_instance, expect_revert
):
    contract.terminate(victim, RUN.execution, 2, [], 0, END, sender=victim)
    contract.proposeTransfer(RUN.execution, attacker, sender=victim)
    contract.acceptTransfer(victim, RUN.execution, sender=attacker)
    for write in (
        lambda: contract.registerStates(attacker, RUN.execution, 2, states("evil"), sender=attacker),
        lambda: contract.terminate(attacker, RUN.execution, 2, [], 1, ident("forged end"), sender=attacker),
        lambda: contract.terminate(attacker, RUN.execution, 2, [], 0, ident("forged end"), sender=attacker),
    ):
        with expect_revert("InstanceIsFinal", key=RUN.key(attacker)):
            write()
    assert record(contract, attacker, RUN) == (2, 1, Status.FINAL, Mode.DIRECT, RUN.head(states("a", "b")))


def test_operator_of_one_owner_cannot_write_to_another_owners_instance(
    contract, victim, attacker, operator, victim_instance, expect_revert, untouched
):
    contract.setOperator(operator, True, sender=attacker)
    with expect_revert("NotOwnerOrOperator", owner=victim.address, caller=operator.address):
        contract.registerStates(victim, RUN.execution, 2, states("evil"), sender=operator)
    untouched()


def test_approving_oneself_as_the_victims_operator_does_nothing(
    contract, victim, attacker, victim_instance, expect_revert, untouched
):
    contract.setOperator(victim, True, sender=attacker)  # grants the victim rights over the attacker
    contract.setOperator(attacker, True, sender=attacker)
    assert contract.isOperator(victim, attacker) is False
    with expect_revert("NotOwnerOrOperator", owner=victim.address, caller=attacker.address):
        contract.registerStates(victim, RUN.execution, 2, states("evil"), sender=attacker)
    untouched()


def test_multicall_cannot_act_as_someone_else(contract, victim, attacker, victim_instance, expect_revert, untouched):
    hijack = [
        contract.registerModel.encode_input(attacker.address, ident("attacker model")),
        contract.registerStates.encode_input(victim.address, RUN.execution, 2, states("evil")),
    ]
    with expect_revert("NotOwnerOrOperator", owner=victim.address, caller=attacker.address):
        contract.multicall(hijack, sender=attacker)
    nested = [
        contract.multicall.encode_input([contract.terminate.encode_input(victim.address, RUN.execution, 2, [], 0, END)])
    ]
    with expect_revert("NotOwnerOrOperator", owner=victim.address, caller=attacker.address):
        contract.multicall(nested, sender=attacker)
    assert contract.modelOf(attacker, ident("attacker model")) == 0
    untouched()
