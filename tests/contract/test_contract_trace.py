"""States, the accumulator, termination, operators, transitions and transfers."""

from __future__ import annotations

import pytest

from tracker.documents.facts import chain_head

ZERO = b"\x00" * 32


def _head(hexid, states: list[str], model: str = "m", instance: str = "i") -> bytes:
    return bytes.fromhex(chain_head(hexid(model), hexid(instance), [hexid(s) for s in states]))


@pytest.fixture
def instance(contract, owner, ids):
    """A registered instance `i` of model `m`, owned by `owner`, without states."""
    contract.registerExecution(ids("m"), ids("i"), [], sender=owner)
    return ids("i")


def test_register_states_appends_in_order_with_events(contract, owner, instance, ids, hexid, events):
    first = contract.registerStates(instance, 0, [ids("a"), ids("b")], sender=owner)
    assert events(first) == [
        ("StateRegistered", {"instance": instance, "state": ids("a"), "seq": 0}),
        ("StateRegistered", {"instance": instance, "state": ids("b"), "seq": 1}),
    ]
    second = contract.registerStates(instance, 2, [ids("c")], sender=owner)
    assert events(second) == [("StateRegistered", {"instance": instance, "state": ids("c"), "seq": 2})]
    _, count, terminated, _, head = contract.instances(instance)
    assert (count, terminated) == (3, False)
    assert bytes(head) == _head(hexid, ["a", "b", "c"])
    assert bytes(contract.instanceHead(instance)) == bytes(head)


def test_head_depends_on_order(contract, owner, other, ids, hexid):
    contract.registerExecution(ids("m"), ids("i"), [ids("a"), ids("b")], sender=owner)
    contract.registerExecution(ids("m"), ids("j"), [ids("b"), ids("a")], sender=other)
    assert bytes(contract.instanceHead(ids("i"))) == _head(hexid, ["a", "b"])
    assert bytes(contract.instanceHead(ids("j"))) == _head(hexid, ["b", "a"], instance="j")
    assert contract.instanceHead(ids("i")) != contract.instanceHead(ids("j"))


def test_head_commits_to_the_model(contract, owner, ids, hexid):
    contract.registerExecution(ids("m2"), ids("i"), [ids("a")], sender=owner)
    assert bytes(contract.instanceHead(ids("i"))) == _head(hexid, ["a"], model="m2")
    assert bytes(contract.instanceHead(ids("i"))) != _head(hexid, ["a"], model="m")


def test_batch_after_register_execution_continues_the_chain(contract, owner, ids, hexid):
    contract.registerExecution(ids("m"), ids("i"), [ids("a")], sender=owner)
    contract.registerStates(ids("i"), 1, [ids("b"), ids("c")], sender=owner)
    assert contract.instances(ids("i"))[1] == 3
    assert bytes(contract.instanceHead(ids("i"))) == _head(hexid, ["a", "b", "c"])


@pytest.mark.parametrize("from_seq", [0, 1, 3])
def test_resend_or_gap_reverts_sequence_mismatch(contract, owner, instance, ids, expect_revert, from_seq):
    contract.registerStates(instance, 0, [ids("a"), ids("b")], sender=owner)
    with expect_revert("SequenceMismatch", instance=instance, expected=2, given=from_seq):
        contract.registerStates(instance, from_seq, [ids("c")], sender=owner)
    assert contract.instances(instance)[1] == 2


def test_empty_batch_reverts_no_states(contract, owner, instance, expect_revert):
    with expect_revert("NoStates"):
        contract.registerStates(instance, 0, [], sender=owner)


def test_zero_state_reverts_and_nothing_is_kept(contract, owner, instance, ids, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.registerStates(instance, 0, [ids("a"), ZERO], sender=owner)
    assert contract.instances(instance)[1] == 0


def test_states_for_unknown_instance(contract, owner, ids, expect_revert):
    with expect_revert("InstanceNotRegistered", instance=ids("ghost")):
        contract.registerStates(ids("ghost"), 0, [ids("a")], sender=owner)
    with expect_revert("InstanceNotRegistered", instance=ZERO):
        contract.registerStates(ZERO, 0, [ids("a")], sender=owner)


def test_non_owner_reverts_instance_not_owned(contract, other, instance, ids, expect_revert):
    with expect_revert("InstanceNotOwned", instance=instance, caller=other.address):
        contract.registerStates(instance, 0, [ids("a")], sender=other)
    with expect_revert("InstanceNotOwned", instance=instance, caller=other.address):
        contract.terminateInstance(instance, ids("end"), sender=other)
    with expect_revert("InstanceNotOwned", instance=instance, caller=other.address):
        contract.registerStatesAndTerminate(instance, 0, [ids("a")], ids("end"), sender=other)


# ------------------------------------------------------------------ termination


def test_terminate_emits_final_count_and_head(contract, owner, instance, ids, hexid, events):
    contract.registerStates(instance, 0, [ids("a"), ids("b")], sender=owner)
    receipt = contract.terminateInstance(instance, ids("end"), sender=owner)
    assert events(receipt) == [
        (
            "InstanceTerminated",
            {"instance": instance, "endDocument": ids("end"), "stateCount": 2, "head": _head(hexid, ["a", "b"])},
        )
    ]
    assert contract.instances(instance)[2] is True


def test_terminate_without_states_reports_the_start_head(contract, owner, instance, ids, hexid, events):
    receipt = contract.terminateInstance(instance, ids("end"), sender=owner)
    assert events(receipt)[0][1]["head"] == _head(hexid, [])
    assert events(receipt)[0][1]["stateCount"] == 0


def test_register_states_and_terminate(contract, owner, instance, ids, hexid, events):
    contract.registerStates(instance, 0, [ids("a")], sender=owner)
    receipt = contract.registerStatesAndTerminate(instance, 1, [ids("b"), ids("c")], ids("end"), sender=owner)
    head = _head(hexid, ["a", "b", "c"])
    assert events(receipt) == [
        ("StateRegistered", {"instance": instance, "state": ids("b"), "seq": 1}),
        ("StateRegistered", {"instance": instance, "state": ids("c"), "seq": 2}),
        ("InstanceTerminated", {"instance": instance, "endDocument": ids("end"), "stateCount": 3, "head": head}),
    ]
    assert contract.instances(instance)[1:3] == (3, True)


def test_register_states_and_terminate_with_no_states_only_terminates(contract, owner, instance, ids, events):
    receipt = contract.registerStatesAndTerminate(instance, 99, [], ids("end"), sender=owner)
    assert [name for name, _ in events(receipt)] == ["InstanceTerminated"]


def test_register_states_and_terminate_checks_sequence(contract, owner, instance, ids, expect_revert):
    with expect_revert("SequenceMismatch", instance=instance, expected=0, given=1):
        contract.registerStatesAndTerminate(instance, 1, [ids("a")], ids("end"), sender=owner)
    assert contract.instances(instance)[2] is False


def test_terminate_with_zero_end_document(contract, owner, instance, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.terminateInstance(instance, ZERO, sender=owner)
    assert contract.instances(instance)[2] is False


def test_writes_after_termination_revert(contract, owner, instance, ids, hexid, expect_revert):
    contract.registerStates(instance, 0, [ids("a"), ids("b")], sender=owner)
    contract.terminateInstance(instance, ids("end"), sender=owner)
    with expect_revert("InstanceIsTerminated", instance=instance):
        contract.registerStates(instance, 2, [ids("c")], sender=owner)
    with expect_revert("InstanceIsTerminated", instance=instance):
        contract.terminateInstance(instance, ids("end2"), sender=owner)
    with expect_revert("InstanceIsTerminated", instance=instance):
        contract.registerStatesAndTerminate(instance, 2, [], ids("end2"), sender=owner)
    with expect_revert("InstanceIsTerminated", instance=instance):
        contract.registerTransition(instance, _head(hexid, []), [ids("a"), ids("b")], 1, sender=owner)
    assert contract.instances(instance)[1] == 2


# ------------------------------------------------------------------ operators


def test_set_operator_events_and_view(contract, owner, operator, events):
    receipt = contract.setOperator(operator, True, sender=owner)
    assert events(receipt) == [
        ("OperatorSet", {"owner": owner.address, "operator": operator.address, "approved": True})
    ]
    assert contract.isOperator(owner, operator) is True
    assert contract.isOperator(operator, owner) is False
    receipt = contract.setOperator(operator, False, sender=owner)
    assert events(receipt) == [
        ("OperatorSet", {"owner": owner.address, "operator": operator.address, "approved": False})
    ]
    assert contract.isOperator(owner, operator) is False


def test_set_operator_zero_address(contract, owner, expect_revert):
    with expect_revert("ZeroAddress"):
        contract.setOperator("0x" + "00" * 20, True, sender=owner)


def test_operator_registers_states_and_terminates(contract, owner, operator, instance, ids, hexid, events):
    contract.setOperator(operator, True, sender=owner)
    receipt = contract.registerStates(instance, 0, [ids("a")], sender=operator)
    assert events(receipt) == [("StateRegistered", {"instance": instance, "state": ids("a"), "seq": 0})]
    contract.registerStatesAndTerminate(instance, 1, [ids("b")], ids("end"), sender=operator)
    owner_address, count, terminated, _, head = contract.instances(instance)
    assert (owner_address, count, terminated) == (owner.address, 2, True)
    assert bytes(head) == _head(hexid, ["a", "b"])


def test_revoked_operator_is_refused(contract, owner, operator, instance, ids, expect_revert):
    contract.setOperator(operator, True, sender=owner)
    contract.registerStates(instance, 0, [ids("a")], sender=operator)
    contract.setOperator(operator, False, sender=owner)
    with expect_revert("InstanceNotOwned", instance=instance, caller=operator.address):
        contract.registerStates(instance, 1, [ids("b")], sender=operator)
    with expect_revert("InstanceNotOwned", instance=instance, caller=operator.address):
        contract.terminateInstance(instance, ids("end"), sender=operator)


def test_operator_may_not_transfer(contract, owner, operator, instance, expect_revert):
    contract.setOperator(operator, True, sender=owner)
    with expect_revert("NotInstanceOwner", instance=instance, caller=operator.address):
        contract.transferInstance(instance, operator, sender=operator)


# ------------------------------------------------------------------ transitions


@pytest.fixture
def traced(contract, owner, ids, hexid):
    """Instance `i` with states a, b, c, d; returns the head after each prefix (heads[k] = before state k)."""
    names = ["a", "b", "c", "d"]
    contract.registerExecution(ids("m"), ids("i"), [ids(n) for n in names], sender=owner)
    return [_head(hexid, names[:k]) for k in range(len(names) + 1)]


def test_transition_over_the_whole_trace(contract, owner, ids, traced, events):
    receipt = contract.registerTransition(ids("i"), traced[0], [ids(n) for n in "abcd"], 1, sender=owner)
    assert events(receipt) == [
        ("TransitionRegistered", {"instance": ids("i"), "pre": ids("a"), "post": ids("b"), "preSeq": 0, "postSeq": 1})
    ]


def test_transition_from_a_suffix(contract, owner, ids, traced, events):
    receipt = contract.registerTransition(ids("i"), traced[1], [ids(n) for n in "bcd"], 2, sender=owner)
    assert events(receipt) == [
        ("TransitionRegistered", {"instance": ids("i"), "pre": ids("b"), "post": ids("d"), "preSeq": 1, "postSeq": 3})
    ]


def test_transition_by_operator(contract, owner, operator, ids, traced, events):
    contract.setOperator(operator, True, sender=owner)
    receipt = contract.registerTransition(ids("i"), traced[2], [ids("c"), ids("d")], 1, sender=operator)
    assert events(receipt)[0][1]["preSeq"] == 2


def test_transition_with_a_wrong_suffix_reverts_trace_mismatch(contract, owner, ids, hexid, traced, expect_revert):
    wrong = [ids("c"), ids("x")]
    computed = bytes.fromhex(chain_head(hexid("m"), hexid("i"), [hexid(n) for n in ("a", "b", "c", "x")]))
    with expect_revert("TraceMismatch", instance=ids("i"), computed=computed, stored=traced[4]):
        contract.registerTransition(ids("i"), traced[2], wrong, 1, sender=owner)


def test_transition_with_a_wrong_start_head_reverts_trace_mismatch(contract, owner, ids, traced, expect_revert):
    from eth_utils import keccak

    computed = keccak(keccak(traced[1] + ids("c")) + ids("d"))  # c, d chained from the head before b
    with expect_revert("TraceMismatch", instance=ids("i"), computed=computed, stored=traced[4]):
        contract.registerTransition(ids("i"), traced[1], [ids("c"), ids("d")], 1, sender=owner)


@pytest.mark.parametrize(
    "suffix, post_offset",
    [(["c", "d"], 0), (["c", "d"], 2), (["d"], 1), ([], 1), (["x", "a", "b", "c", "d"], 1)],
)
def test_invalid_transition_positions(contract, owner, ids, traced, expect_revert, suffix, post_offset):
    with expect_revert("InvalidTransition", postOffset=post_offset, suffixLength=len(suffix)):
        contract.registerTransition(ids("i"), traced[0], [ids(n) for n in suffix], post_offset, sender=owner)


def test_transition_on_instance_without_states(contract, owner, instance, ids, expect_revert):
    with expect_revert("InvalidTransition", postOffset=1, suffixLength=2):
        contract.registerTransition(instance, ZERO, [ids("a"), ids("b")], 1, sender=owner)


def test_transition_by_stranger_reverts(contract, other, ids, traced, expect_revert):
    with expect_revert("InstanceNotOwned", instance=ids("i"), caller=other.address):
        contract.registerTransition(ids("i"), traced[2], [ids("c"), ids("d")], 1, sender=other)


# ------------------------------------------------------------------ transfers


def test_transfer_moves_write_rights(contract, owner, other, instance, ids, events, expect_revert):
    receipt = contract.transferInstance(instance, other, sender=owner)
    assert events(receipt) == [
        ("InstanceTransferred", {"instance": instance, "from": owner.address, "to": other.address})
    ]
    assert contract.instances(instance)[0] == other.address
    contract.registerStates(instance, 0, [ids("a")], sender=other)
    with expect_revert("InstanceNotOwned", instance=instance, caller=owner.address):
        contract.registerStates(instance, 1, [ids("b")], sender=owner)
    with expect_revert("NotInstanceOwner", instance=instance, caller=owner.address):
        contract.transferInstance(instance, owner, sender=owner)


def test_transfer_checks(contract, owner, other, instance, ids, expect_revert):
    with expect_revert("NotInstanceOwner", instance=instance, caller=other.address):
        contract.transferInstance(instance, other, sender=other)
    with expect_revert("ZeroAddress"):
        contract.transferInstance(instance, "0x" + "00" * 20, sender=owner)
    with expect_revert("InstanceNotRegistered", instance=ids("ghost")):
        contract.transferInstance(ids("ghost"), other, sender=owner)
    assert contract.instances(instance)[0] == owner.address


def test_old_owners_operator_loses_access_after_transfer(
    contract, owner, other, operator, instance, ids, expect_revert
):
    contract.setOperator(operator, True, sender=owner)
    contract.transferInstance(instance, other, sender=owner)
    with expect_revert("InstanceNotOwned", instance=instance, caller=operator.address):
        contract.registerStates(instance, 0, [ids("a")], sender=operator)


@pytest.mark.parametrize("cuts", [(), (1,), (3, 4, 9), (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)])
def test_head_is_the_same_however_the_trace_is_split_into_batches(contract, owner, operator, ids, hexid, cuts):
    """registerExecution with the first batch, then registerStates (owner and operator alternating)."""
    names = [f"s{n}" for n in range(12)]
    bounds = [0, *cuts, len(names)]
    batches = [names[start:end] for start, end in zip(bounds, bounds[1:])]
    contract.setOperator(operator, True, sender=owner)
    contract.registerExecution(ids("m"), ids("i"), [ids(n) for n in batches[0]], sender=owner)
    for number, batch in enumerate(batches[1:]):
        sender = operator if number % 2 else owner
        contract.registerStates(ids("i"), names.index(batch[0]), [ids(n) for n in batch], sender=sender)
    assert contract.instances(ids("i"))[1] == len(names)
    assert bytes(contract.instanceHead(ids("i"))) == _head(hexid, names)
