"""Models: registered per publisher, idempotent, written only by the publisher or its operator."""

from __future__ import annotations

from contract_model import ZERO, Execution, ident


def test_register_model_stores_the_time_and_emits_once(contract, owner, events, block_time):
    receipt = contract.registerModel(owner, ident("m"), sender=owner)
    assert events(receipt) == [("ModelRegistered", {"publisher": owner.address, "model": ident("m")})]
    assert contract.modelOf(owner, ident("m")) == block_time(receipt)


def test_registering_again_changes_nothing_and_emits_nothing(contract, owner, events, chain):
    first = contract.registerModel(owner, ident("m"), sender=owner)
    registered_at = contract.modelOf(owner, ident("m"))
    chain.mine(deltatime=100)
    again = contract.registerModel(owner, ident("m"), sender=owner)
    assert events(again) == []
    assert again.status == first.status == 1
    assert contract.modelOf(owner, ident("m")) == registered_at


def test_models_are_per_publisher(contract, owner, other, events):
    contract.registerModel(owner, ident("m"), sender=owner)
    assert contract.modelOf(other, ident("m")) == 0
    receipt = contract.registerModel(other, ident("m"), sender=other)
    assert events(receipt) == [("ModelRegistered", {"publisher": other.address, "model": ident("m")})]
    assert contract.modelOf(other, ident("m")) != 0
    assert contract.modelOf(owner, ident("m")) != 0


def test_operator_registers_for_the_owner(contract, owner, operator, events):
    contract.setOperator(operator, True, sender=owner)
    receipt = contract.registerModel(owner, ident("m"), sender=operator)
    assert events(receipt) == [("ModelRegistered", {"publisher": owner.address, "model": ident("m")})]
    assert contract.modelOf(owner, ident("m")) != 0
    assert contract.modelOf(operator, ident("m")) == 0


def test_stranger_cannot_register_under_another_publisher(contract, owner, other, expect_revert):
    with expect_revert("NotOwnerOrOperator", owner=owner.address, caller=other.address):
        contract.registerModel(owner, ident("m"), sender=other)
    assert contract.modelOf(owner, ident("m")) == 0


def test_zero_model_id(contract, owner, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.registerModel(owner, ZERO, sender=owner)


def test_register_execution_registers_a_new_model_for_the_owner_only_once(contract, owner, events):
    first = contract.registerExecution(owner, *Execution("a").ids, [], sender=owner)
    assert [name for name, _ in events(first)] == ["ModelRegistered", "InstanceRegistered"]
    second = contract.registerAnchoredExecution(owner, *Execution("b").ids, sender=owner)
    assert [name for name, _ in events(second)] == ["InstanceRegistered"]
    assert contract.modelOf(owner, Execution("a").model) != 0


def test_register_execution_with_another_publishers_model_registers_it_for_the_caller(contract, owner, other, events):
    contract.registerModel(owner, ident("model"), sender=owner)
    receipt = contract.registerExecution(other, *Execution("x").ids, [], sender=other)
    assert events(receipt)[0] == ("ModelRegistered", {"publisher": other.address, "model": ident("model")})
