"""Models and instances: first registrant publishes, re-registration changes nothing, instances are owned."""

from __future__ import annotations

ZERO = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20


def test_first_registrant_is_publisher(contract, owner, ids, events, block_time):
    receipt = contract.registerModel(ids("m"), sender=owner)
    assert events(receipt) == [("ModelRegistered", {"model": ids("m"), "publisher": owner.address})]
    publisher, registered_at = contract.models(ids("m"))
    assert publisher == owner.address
    assert registered_at == block_time(receipt)


def test_same_caller_reregistering_model_is_a_silent_noop(contract, owner, ids, events):
    first = contract.registerModel(ids("m"), sender=owner)
    before = contract.models(ids("m"))
    again = contract.registerModel(ids("m"), sender=owner)
    assert events(again) == []
    assert contract.models(ids("m")) == before
    assert first.status == again.status == 1


def test_other_caller_reregistering_model_keeps_publisher_and_may_use_it(contract, owner, other, ids, events):
    contract.registerModel(ids("m"), sender=owner)
    receipt = contract.registerModel(ids("m"), sender=other)
    assert events(receipt) == []
    assert contract.models(ids("m"))[0] == owner.address
    used = contract.registerInstance(ids("m"), ids("i-other"), sender=other)
    assert events(used) == [
        ("InstanceRegistered", {"instance": ids("i-other"), "model": ids("m"), "owner": other.address})
    ]
    assert contract.instances(ids("i-other"))[0] == other.address
    assert contract.models(ids("m"))[0] == owner.address


def test_register_model_zero_id(contract, owner, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.registerModel(ZERO, sender=owner)


def test_unregistered_model_reads_as_zero(contract, ids):
    assert contract.models(ids("nothing")) == (ZERO_ADDRESS, 0)


def test_register_instance(contract, owner, ids, events):
    contract.registerModel(ids("m"), sender=owner)
    receipt = contract.registerInstance(ids("m"), ids("i"), sender=owner)
    assert events(receipt) == [
        ("InstanceRegistered", {"instance": ids("i"), "model": ids("m"), "owner": owner.address})
    ]
    instance_owner, count, terminated, model, head = contract.instances(ids("i"))
    assert (instance_owner, count, terminated, bytes(model), bytes(head)) == (owner.address, 0, False, ids("m"), ZERO)


def test_register_instance_of_unregistered_model(contract, owner, ids, expect_revert):
    with expect_revert("ModelNotRegistered", model=ids("ghost")):
        contract.registerInstance(ids("ghost"), ids("i"), sender=owner)


def test_register_instance_zero_ids(contract, owner, ids, expect_revert):
    contract.registerModel(ids("m"), sender=owner)
    with expect_revert("ZeroIdentifier"):
        contract.registerInstance(ids("m"), ZERO, sender=owner)
    with expect_revert("ModelNotRegistered", model=ZERO):
        contract.registerInstance(ZERO, ids("i"), sender=owner)


def test_duplicate_instance_reverts_for_everyone(contract, owner, other, ids, expect_revert):
    contract.registerModel(ids("m"), sender=owner)
    contract.registerInstance(ids("m"), ids("i"), sender=owner)
    for caller in (owner, other):
        with expect_revert("InstanceAlreadyRegistered", instance=ids("i"), owner=owner.address):
            contract.registerInstance(ids("m"), ids("i"), sender=caller)
        with expect_revert("InstanceAlreadyRegistered", instance=ids("i"), owner=owner.address):
            contract.registerExecution(ids("m"), ids("i"), [], sender=caller)
        with expect_revert("InstanceAlreadyRegistered", instance=ids("i"), owner=owner.address):
            contract.registerExecution(ids("m"), ids("i"), [ids("s")], sender=caller)


def test_register_execution_registers_model_instance_and_states(contract, owner, ids, hexid, events):
    from tracker.documents.facts import chain_head

    states = [ids(f"s{n}") for n in range(3)]
    receipt = contract.registerExecution(ids("m"), ids("i"), states, sender=owner)
    assert events(receipt) == [
        ("ModelRegistered", {"model": ids("m"), "publisher": owner.address}),
        ("InstanceRegistered", {"instance": ids("i"), "model": ids("m"), "owner": owner.address}),
    ] + [("StateRegistered", {"instance": ids("i"), "state": s, "seq": n}) for n, s in enumerate(states)]
    instance_owner, count, terminated, model, head = contract.instances(ids("i"))
    assert (instance_owner, count, terminated, bytes(model)) == (owner.address, 3, False, ids("m"))
    assert bytes(head).hex() == chain_head(hexid("m"), hexid("i"), [hexid(f"s{n}") for n in range(3)])
    assert bytes(contract.instanceHead(ids("i"))) == bytes(head)


def test_register_execution_of_known_model_emits_no_model_event(contract, owner, other, ids, events):
    contract.registerModel(ids("m"), sender=owner)
    receipt = contract.registerExecution(ids("m"), ids("i"), [], sender=other)
    assert events(receipt) == [
        ("InstanceRegistered", {"instance": ids("i"), "model": ids("m"), "owner": other.address})
    ]
    assert contract.models(ids("m"))[0] == owner.address
    assert contract.instances(ids("i"))[:3] == (other.address, 0, False)


def test_register_execution_zero_ids(contract, owner, ids, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.registerExecution(ZERO, ids("i"), [ids("s")], sender=owner)
    with expect_revert("ZeroIdentifier"):
        contract.registerExecution(ids("m"), ZERO, [ids("s")], sender=owner)
    with expect_revert("ZeroIdentifier"):
        contract.registerExecution(ids("m"), ids("i"), [ids("s"), ZERO], sender=owner)
    assert contract.models(ids("m"))[0] == ZERO_ADDRESS


def test_instance_head_before_states_is_derived_from_model_and_instance(contract, owner, ids, hexid):
    from tracker.documents.facts import chain_head

    contract.registerExecution(ids("m"), ids("i"), [], sender=owner)
    assert bytes(contract.instanceHead(ids("i"))).hex() == chain_head(hexid("m"), hexid("i"), [])


def test_instance_head_of_unknown_instance(contract, ids, expect_revert):
    with expect_revert("InstanceNotRegistered", instance=ids("ghost")):
        contract.instanceHead(ids("ghost"))
