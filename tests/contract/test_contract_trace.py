"""Direct-mode traces: batches of states, the running head, sequence checks, transitions."""

from __future__ import annotations

import pytest
from contract_model import ZERO, Execution, Mode, Status, chain, ident, record, states
from eth_utils import keccak

RUN = Execution("run")
NAMES = ["a", "b", "c", "d"]


@pytest.fixture
def instance(contract, owner):
    """RUN registered by `owner` in direct mode, without states; returns its key."""
    contract.registerExecution(owner, *RUN.ids, [], sender=owner)
    return RUN.key(owner)


def test_register_states_appends_in_order_with_events(contract, owner, instance, events):
    first = contract.registerStates(owner, RUN.execution, 0, states("a", "b"), sender=owner)
    assert events(first) == [
        ("StateRegistered", {"key": instance, "state": states("a")[0], "seq": 0}),
        ("StateRegistered", {"key": instance, "state": states("b")[0], "seq": 1}),
    ]
    second = contract.registerStates(owner, RUN.execution, 2, states("c"), sender=owner)
    assert events(second) == [("StateRegistered", {"key": instance, "state": states("c")[0], "seq": 2})]
    assert record(contract, owner, RUN) == (3, 0, Status.OPEN, Mode.DIRECT, RUN.head(states("a", "b", "c")))


def test_head_depends_on_order(contract, owner):
    other_run = Execution("other run")
    contract.registerExecution(owner, *RUN.ids, states("a", "b"), sender=owner)
    contract.registerExecution(owner, *other_run.ids, states("b", "a"), sender=owner)
    assert record(contract, owner, RUN)[4] == RUN.head(states("a", "b"))
    assert record(contract, owner, other_run)[4] == other_run.head(states("b", "a"))
    assert RUN.head(states("a", "b")) != RUN.head(states("b", "a"))


@pytest.mark.parametrize("cuts", [(), (1,), (3, 4, 9), (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)])
def test_head_is_the_same_however_the_trace_is_split_into_batches(contract, owner, operator, cuts):
    """registerExecution with the first batch, then registerStates (owner and operator alternating)."""
    names = [f"s{n}" for n in range(12)]
    bounds = [0, *cuts, len(names)]
    batches = [names[start:end] for start, end in zip(bounds, bounds[1:])]
    contract.setOperator(operator, True, sender=owner)
    contract.registerExecution(owner, *RUN.ids, states(*batches[0]), sender=owner)
    for number, batch in enumerate(batches[1:]):
        sender = operator if number % 2 else owner
        contract.registerStates(owner, RUN.execution, names.index(batch[0]), states(*batch), sender=sender)
    assert record(contract, owner, RUN) == (12, 0, Status.OPEN, Mode.DIRECT, RUN.head(states(*names)))


@pytest.mark.parametrize("from_seq", [0, 1, 3])
def test_resend_or_gap_reverts_sequence_mismatch(contract, owner, instance, expect_revert, from_seq):
    contract.registerStates(owner, RUN.execution, 0, states("a", "b"), sender=owner)
    with expect_revert("SequenceMismatch", key=instance, expected=2, given=from_seq):
        contract.registerStates(owner, RUN.execution, from_seq, states("c"), sender=owner)
    assert record(contract, owner, RUN)[0] == 2


def test_empty_batch_reverts_no_states(contract, owner, instance, expect_revert):
    with expect_revert("NoStates"):
        contract.registerStates(owner, RUN.execution, 0, [], sender=owner)


def test_zero_state_reverts_and_nothing_is_kept(contract, owner, instance, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.registerStates(owner, RUN.execution, 0, [*states("a"), ZERO], sender=owner)
    assert record(contract, owner, RUN) == (0, 0, Status.OPEN, Mode.DIRECT, RUN.start())


def test_states_for_an_unregistered_instance(contract, owner, expect_revert):
    with expect_revert("InstanceNotRegistered", key=RUN.key(owner)):
        contract.registerStates(owner, RUN.execution, 0, states("a"), sender=owner)


def test_states_for_an_anchored_instance_revert_wrong_mode(contract, owner, expect_revert):
    contract.registerAnchoredExecution(owner, *RUN.ids, sender=owner)
    with expect_revert("WrongMode", key=RUN.key(owner), mode=Mode.ANCHORED):
        contract.registerStates(owner, RUN.execution, 0, states("a"), sender=owner)
    assert record(contract, owner, RUN) == (0, 0, Status.OPEN, Mode.ANCHORED, ZERO)


def test_stranger_reverts_not_owner_or_operator(contract, owner, other, instance, expect_revert):
    with expect_revert("NotOwnerOrOperator", owner=owner.address, caller=other.address):
        contract.registerStates(owner, RUN.execution, 0, states("a"), sender=other)
    # Under its own key the stranger has no such instance.
    with expect_revert("InstanceNotRegistered", key=RUN.key(other)):
        contract.registerStates(other, RUN.execution, 0, states("a"), sender=other)
    assert record(contract, owner, RUN)[0] == 0


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


def test_operator_appends_states_under_the_owner(contract, owner, operator, instance, events):
    contract.setOperator(operator, True, sender=owner)
    receipt = contract.registerStates(owner, RUN.execution, 0, states("a"), sender=operator)
    assert events(receipt) == [("StateRegistered", {"key": instance, "state": states("a")[0], "seq": 0})]
    assert record(contract, owner, RUN)[0] == 1


# ------------------------------------------------------------------ transitions


@pytest.fixture
def traced(contract, owner):
    """RUN with states a, b, c, d; returns the head before each state (heads[k] = before state k)."""
    contract.registerExecution(owner, *RUN.ids, states(*NAMES), sender=owner)
    return [RUN.head(states(*NAMES[:k])) for k in range(len(NAMES) + 1)]


def test_transition_over_the_whole_trace(contract, owner, traced, events):
    receipt = contract.registerTransition(owner, RUN.execution, traced[0], states(*NAMES), 1, sender=owner)
    assert events(receipt) == [
        (
            "TransitionRegistered",
            {"key": RUN.key(owner), "pre": states("a")[0], "post": states("b")[0], "preSeq": 0, "postSeq": 1},
        )
    ]


def test_transition_from_a_suffix(contract, owner, traced, events):
    receipt = contract.registerTransition(owner, RUN.execution, traced[1], states("b", "c", "d"), 2, sender=owner)
    assert events(receipt)[0][1] | {"key": None} == {
        "key": None,
        "pre": states("b")[0],
        "post": states("d")[0],
        "preSeq": 1,
        "postSeq": 3,
    }


def test_transition_by_operator(contract, owner, operator, traced, events):
    contract.setOperator(operator, True, sender=owner)
    receipt = contract.registerTransition(owner, RUN.execution, traced[2], states("c", "d"), 1, sender=operator)
    assert events(receipt)[0][1]["preSeq"] == 2


def test_transition_is_allowed_on_a_final_instance(contract, owner, traced, events):
    contract.terminate(owner, RUN.execution, 4, [], 0, ident("end"), sender=owner)
    receipt = contract.registerTransition(owner, RUN.execution, traced[2], states("c", "d"), 1, sender=owner)
    assert events(receipt)[0][1]["postSeq"] == 3
    assert record(contract, owner, RUN)[:3] == (4, 1, Status.FINAL)


def test_transition_with_a_wrong_suffix_reverts_trace_mismatch(contract, owner, traced, expect_revert):
    computed = chain(traced[2], states("c", "x"))
    with expect_revert("TraceMismatch", key=RUN.key(owner), computed=computed, stored=traced[4]):
        contract.registerTransition(owner, RUN.execution, traced[2], states("c", "x"), 1, sender=owner)


def test_transition_with_a_wrong_start_head_reverts_trace_mismatch(contract, owner, traced, expect_revert):
    computed = keccak(keccak(traced[1] + states("c")[0]) + states("d")[0])  # c, d chained from the head before b
    with expect_revert("TraceMismatch", key=RUN.key(owner), computed=computed, stored=traced[4]):
        contract.registerTransition(owner, RUN.execution, traced[1], states("c", "d"), 1, sender=owner)


@pytest.mark.parametrize(
    "suffix, post_offset",
    [(["c", "d"], 0), (["c", "d"], 2), (["d"], 1), ([], 1), (["x", "a", "b", "c", "d"], 1)],
)
def test_invalid_transition_positions(contract, owner, traced, expect_revert, suffix, post_offset):
    with expect_revert("InvalidTransition", postOffset=post_offset, suffixLength=len(suffix)):
        contract.registerTransition(owner, RUN.execution, traced[0], states(*suffix), post_offset, sender=owner)


def test_transition_on_an_instance_without_states(contract, owner, instance, expect_revert):
    with expect_revert("InvalidTransition", postOffset=1, suffixLength=2):
        contract.registerTransition(owner, RUN.execution, ZERO, states("a", "b"), 1, sender=owner)


def test_transition_refusals(contract, owner, other, traced, expect_revert):
    with expect_revert("NotOwnerOrOperator", owner=owner.address, caller=other.address):
        contract.registerTransition(owner, RUN.execution, traced[2], states("c", "d"), 1, sender=other)
    with expect_revert("InstanceNotRegistered", key=RUN.key(other)):
        contract.registerTransition(other, RUN.execution, traced[2], states("c", "d"), 1, sender=other)
    anchored = Execution("anchored")
    contract.registerAnchoredExecution(owner, *anchored.ids, sender=owner)
    with expect_revert("WrongMode", key=anchored.key(owner), mode=Mode.ANCHORED):
        contract.registerTransition(owner, anchored.execution, ZERO, states("a", "b"), 1, sender=owner)


def test_revert_data_that_ape_leaves_undecoded_is_still_named(contract, owner, expect_revert):
    """The v2 form of test_contract_revert_decoding: ape's local provider hands over revert data
    containing a 0x27 byte and no 0x22 as b"..." text and raises a bare ContractLogicError;
    expect_revert must still see TraceMismatch with its exact values. The labels are chosen so
    that the data has that form (asserted first, so the test keeps exercising that path)."""
    run = Execution("undecoded 7")
    names = [f"state-{n}" for n in range(5)]
    contract.registerExecution(owner, *run.ids, states(*names), sender=owner)
    computed, stored = run.head(states(*names[:3])), run.head(states(*names))
    revert_data = keccak(text="TraceMismatch(bytes32,bytes32,bytes32)")[:4] + run.key(owner) + computed + stored
    assert b"'" in revert_data and b'"' not in revert_data
    with expect_revert("TraceMismatch", key=run.key(owner), computed=computed, stored=stored):
        contract.registerTransition(
            owner, run.execution, run.head(states(*names[:1])), states(*names[1:3]), 1, sender=owner
        )
