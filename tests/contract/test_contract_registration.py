"""Instances: keys derived from (owner, execution), direct and anchored registration, the views."""

from __future__ import annotations

import pytest
from contract_model import ZERO, ZERO_ADDRESS, Execution, Mode, Status, ident, key, record, start_head, states

RUN = Execution("run")


def test_instance_key_and_start_head_views_match_the_specification(contract, owner, other):
    assert bytes(contract.instanceKey(owner, RUN.execution)) == key(owner, RUN.execution)
    assert bytes(contract.instanceKey(other, RUN.execution)) != key(owner, RUN.execution)
    assert bytes(contract.startHead(*RUN.ids)) == start_head(*RUN.ids)
    # Every id is committed: swapping two changes the start head.
    assert bytes(contract.startHead(RUN.model, RUN.execution, RUN.document)) != start_head(*RUN.ids)


def test_register_execution_with_states(contract, owner, events):
    trace = states("a", "b", "c")
    receipt = contract.registerExecution(owner, *RUN.ids, trace, sender=owner)
    instance = RUN.key(owner)
    assert events(receipt) == [
        ("ModelRegistered", {"publisher": owner.address, "model": RUN.model}),
        (
            "InstanceRegistered",
            {
                "key": instance,
                "owner": owner.address,
                "execution": RUN.execution,
                "model": RUN.model,
                "instanceDocument": RUN.document,
                "mode": Mode.DIRECT,
            },
        ),
    ] + [("StateRegistered", {"key": instance, "state": s, "seq": n}) for n, s in enumerate(trace)]
    assert record(contract, owner, RUN) == (3, 0, Status.OPEN, Mode.DIRECT, RUN.head(trace))
    assert tuple(contract.instances(instance)) == (3, 0, Status.OPEN, Mode.DIRECT)


def test_register_execution_without_states_stores_the_start_head(contract, owner, events):
    receipt = contract.registerExecution(owner, *RUN.ids, [], sender=owner)
    assert [name for name, _ in events(receipt)] == ["ModelRegistered", "InstanceRegistered"]
    assert record(contract, owner, RUN) == (0, 0, Status.OPEN, Mode.DIRECT, RUN.start())


def test_register_anchored_execution(contract, owner, events):
    receipt = contract.registerAnchoredExecution(owner, *RUN.ids, sender=owner)
    assert events(receipt)[1] == (
        "InstanceRegistered",
        {
            "key": RUN.key(owner),
            "owner": owner.address,
            "execution": RUN.execution,
            "model": RUN.model,
            "instanceDocument": RUN.document,
            "mode": Mode.ANCHORED,
        },
    )
    # Anchored instances store no head: the view reports zero.
    assert record(contract, owner, RUN) == (0, 0, Status.OPEN, Mode.ANCHORED, ZERO)


def test_head_commits_to_model_and_instance_document(contract, owner):
    trace = states("a")
    other_model = Execution("run", model_label="another model")
    contract.registerExecution(owner, *RUN.ids, trace, sender=owner)
    assert record(contract, owner, RUN)[4] == RUN.head(trace)
    assert RUN.head(trace) != other_model.head(trace)
    assert RUN.head(trace) != start_head(RUN.execution, RUN.model, ident("another document"))


def test_unregistered_instance_reads_as_zero(contract, owner):
    assert record(contract, owner, RUN) == (0, 0, Status.NONE, Mode.DIRECT, ZERO)
    assert tuple(contract.instances(RUN.key(owner))) == (0, 0, 0, 0)
    assert contract.pendingOwner(RUN.key(owner)) == ZERO_ADDRESS


@pytest.mark.parametrize("anchored", [False, True])
def test_zero_ids_are_refused(contract, owner, expect_revert, anchored):
    execution, model, document = RUN.ids
    for ids in ((ZERO, model, document), (execution, ZERO, document), (execution, model, ZERO)):
        with expect_revert("ZeroIdentifier"):
            if anchored:
                contract.registerAnchoredExecution(owner, *ids, sender=owner)
            else:
                contract.registerExecution(owner, *ids, states("a"), sender=owner)
    assert record(contract, owner, RUN)[2] == Status.NONE
    assert contract.modelOf(owner, model) == 0


def test_zero_state_is_refused_and_nothing_is_kept(contract, owner, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.registerExecution(owner, *RUN.ids, [*states("a"), ZERO], sender=owner)
    assert record(contract, owner, RUN)[2] == Status.NONE
    assert contract.modelOf(owner, RUN.model) == 0


def test_an_existing_key_is_refused_in_either_mode(contract, owner, expect_revert):
    contract.registerExecution(owner, *RUN.ids, states("a"), sender=owner)
    for register in (
        lambda: contract.registerExecution(owner, *RUN.ids, [], sender=owner),
        lambda: contract.registerExecution(owner, RUN.execution, ident("m2"), ident("d2"), states("x"), sender=owner),
        lambda: contract.registerAnchoredExecution(owner, *RUN.ids, sender=owner),
    ):
        with expect_revert("InstanceAlreadyRegistered", key=RUN.key(owner)):
            register()
    assert record(contract, owner, RUN) == (1, 0, Status.OPEN, Mode.DIRECT, RUN.head(states("a")))


def test_the_same_execution_under_two_owners_is_two_records(contract, owner, other):
    contract.registerExecution(owner, *RUN.ids, states("a", "b"), sender=owner)
    contract.registerAnchoredExecution(other, *RUN.ids, sender=other)
    assert record(contract, owner, RUN) == (2, 0, Status.OPEN, Mode.DIRECT, RUN.head(states("a", "b")))
    assert record(contract, other, RUN) == (0, 0, Status.OPEN, Mode.ANCHORED, ZERO)


def test_operator_registers_under_the_owner(contract, owner, operator, events):
    contract.setOperator(operator, True, sender=owner)
    receipt = contract.registerExecution(owner, *RUN.ids, states("a"), sender=operator)
    assert events(receipt, "InstanceRegistered")[0][1]["owner"] == owner.address
    assert record(contract, owner, RUN)[:3] == (1, 0, Status.OPEN)
    assert record(contract, operator, RUN)[2] == Status.NONE


@pytest.mark.parametrize("anchored", [False, True])
def test_stranger_cannot_register_under_another_owner(contract, owner, other, expect_revert, anchored):
    with expect_revert("NotOwnerOrOperator", owner=owner.address, caller=other.address):
        if anchored:
            contract.registerAnchoredExecution(owner, *RUN.ids, sender=other)
        else:
            contract.registerExecution(owner, *RUN.ids, states("a"), sender=other)
    with expect_revert("NotOwnerOrOperator", owner=ZERO_ADDRESS, caller=other.address):
        contract.registerExecution(ZERO_ADDRESS, *RUN.ids, [], sender=other)
    assert record(contract, owner, RUN)[2] == Status.NONE
