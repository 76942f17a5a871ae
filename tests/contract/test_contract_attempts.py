"""Attempt ends and finality: endAttempt and terminate (direct), closeAnchored (anchored)."""

from __future__ import annotations

import pytest
from contract_model import ZERO, Execution, Mode, Status, ident, record, states

RUN = Execution("run")
END = ident("end document")


@pytest.fixture
def direct(contract, owner):
    """RUN in direct mode with states a, b; returns its key."""
    contract.registerExecution(owner, *RUN.ids, states("a", "b"), sender=owner)
    return RUN.key(owner)


@pytest.fixture
def anchored(contract, owner):
    """RUN in anchored mode; returns its key."""
    contract.registerAnchoredExecution(owner, *RUN.ids, sender=owner)
    return RUN.key(owner)


# ------------------------------------------------------------------ endAttempt


def test_end_attempt_appends_reports_and_stays_open(contract, owner, direct, events):
    receipt = contract.endAttempt(owner, RUN.execution, 2, states("c"), 0, END, sender=owner)
    head = RUN.head(states("a", "b", "c"))
    assert events(receipt) == [
        ("StateRegistered", {"key": direct, "state": states("c")[0], "seq": 2}),
        ("AttemptEnded", {"key": direct, "endDocument": END, "attempt": 0, "stateCount": 3, "head": head}),
    ]
    assert record(contract, owner, RUN) == (3, 1, Status.OPEN, Mode.DIRECT, head)


def test_end_attempt_without_states_reports_the_stored_head(contract, owner, direct, events):
    receipt = contract.endAttempt(owner, RUN.execution, 2, [], 0, END, sender=owner)
    assert events(receipt) == [
        (
            "AttemptEnded",
            {"key": direct, "endDocument": END, "attempt": 0, "stateCount": 2, "head": RUN.head(states("a", "b"))},
        )
    ]


def test_end_attempt_checks_the_sequence_even_without_states(contract, owner, direct, expect_revert):
    with expect_revert("SequenceMismatch", key=direct, expected=2, given=1):
        contract.endAttempt(owner, RUN.execution, 1, [], 0, END, sender=owner)
    assert record(contract, owner, RUN)[:3] == (2, 0, Status.OPEN)


@pytest.mark.parametrize("attempt", [1, 2, 2**256 - 1])
def test_end_attempt_must_name_the_next_attempt(contract, owner, direct, expect_revert, attempt):
    with expect_revert("AttemptMismatch", key=direct, expected=0, given=attempt):
        contract.endAttempt(owner, RUN.execution, 2, [], attempt, END, sender=owner)


def test_end_attempt_zero_end_document(contract, owner, direct, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.endAttempt(owner, RUN.execution, 2, [], 0, ZERO, sender=owner)


def test_redrive_continues_the_trace_after_an_attempt_end(contract, owner, direct, events):
    contract.endAttempt(owner, RUN.execution, 2, [], 0, ident("failed"), sender=owner)
    contract.registerStates(owner, RUN.execution, 2, states("c", "d"), sender=owner)
    contract.endAttempt(owner, RUN.execution, 4, [], 1, ident("failed again"), sender=owner)
    receipt = contract.terminate(owner, RUN.execution, 4, states("e"), 2, END, sender=owner)
    head = RUN.head(states("a", "b", "c", "d", "e"))
    assert events(receipt, "InstanceTerminated") == [
        ("InstanceTerminated", {"key": direct, "endDocument": END, "attempt": 2, "stateCount": 5, "head": head})
    ]
    assert record(contract, owner, RUN) == (5, 3, Status.FINAL, Mode.DIRECT, head)


# ------------------------------------------------------------------ terminate


def test_terminate_appends_and_becomes_final(contract, owner, direct, events):
    receipt = contract.terminate(owner, RUN.execution, 2, states("c"), 0, END, sender=owner)
    head = RUN.head(states("a", "b", "c"))
    assert events(receipt) == [
        ("StateRegistered", {"key": direct, "state": states("c")[0], "seq": 2}),
        ("InstanceTerminated", {"key": direct, "endDocument": END, "attempt": 0, "stateCount": 3, "head": head}),
    ]
    assert record(contract, owner, RUN) == (3, 1, Status.FINAL, Mode.DIRECT, head)


def test_terminate_without_states_of_an_instance_without_states_reports_the_start_head(contract, owner, events):
    contract.registerExecution(owner, *RUN.ids, [], sender=owner)
    receipt = contract.terminate(owner, RUN.execution, 0, [], 0, END, sender=owner)
    assert events(receipt)[0][1] | {"key": None} == {
        "key": None,
        "endDocument": END,
        "attempt": 0,
        "stateCount": 0,
        "head": RUN.start(),
    }


def test_terminate_finalises_the_last_reported_attempt_end(contract, owner, direct, events):
    contract.endAttempt(owner, RUN.execution, 2, [], 0, ident("failed"), sender=owner)
    receipt = contract.terminate(owner, RUN.execution, 2, [], 0, ident("failed"), sender=owner)
    assert events(receipt)[0][1]["attempt"] == 0
    assert record(contract, owner, RUN)[:3] == (2, 1, Status.FINAL)


def test_terminate_attempt_rule(contract, owner, direct, expect_revert):
    with expect_revert("AttemptMismatch", key=direct, expected=0, given=1):
        contract.terminate(owner, RUN.execution, 2, [], 1, END, sender=owner)
    contract.endAttempt(owner, RUN.execution, 2, [], 0, ident("failed"), sender=owner)
    contract.endAttempt(owner, RUN.execution, 2, [], 1, ident("failed"), sender=owner)
    for stale in (0, 3):
        with expect_revert("AttemptMismatch", key=direct, expected=2, given=stale):
            contract.terminate(owner, RUN.execution, 2, [], stale, END, sender=owner)
    assert record(contract, owner, RUN)[:3] == (2, 2, Status.OPEN)


def test_terminate_checks_the_sequence_even_without_states(contract, owner, direct, expect_revert):
    with expect_revert("SequenceMismatch", key=direct, expected=2, given=99):
        contract.terminate(owner, RUN.execution, 99, [], 0, END, sender=owner)
    with expect_revert("SequenceMismatch", key=direct, expected=2, given=1):
        contract.terminate(owner, RUN.execution, 1, states("b"), 0, END, sender=owner)
    assert record(contract, owner, RUN)[2] == Status.OPEN


def test_terminate_zero_end_document_and_zero_state(contract, owner, direct, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.terminate(owner, RUN.execution, 2, [], 0, ZERO, sender=owner)
    with expect_revert("ZeroIdentifier"):
        contract.terminate(owner, RUN.execution, 2, [ZERO], 0, END, sender=owner)
    assert record(contract, owner, RUN)[:3] == (2, 0, Status.OPEN)


def test_direct_end_calls_on_an_anchored_instance_revert_wrong_mode(contract, owner, anchored, expect_revert):
    with expect_revert("WrongMode", key=anchored, mode=Mode.ANCHORED):
        contract.endAttempt(owner, RUN.execution, 0, [], 0, END, sender=owner)
    with expect_revert("WrongMode", key=anchored, mode=Mode.ANCHORED):
        contract.terminate(owner, RUN.execution, 0, [], 0, END, sender=owner)


def test_writes_after_final_revert_instance_is_final(contract, owner, direct, expect_revert):
    contract.terminate(owner, RUN.execution, 2, [], 0, END, sender=owner)
    for write in (
        lambda: contract.registerStates(owner, RUN.execution, 2, states("c"), sender=owner),
        lambda: contract.endAttempt(owner, RUN.execution, 2, [], 1, END, sender=owner),
        lambda: contract.terminate(owner, RUN.execution, 2, [], 1, END, sender=owner),
        lambda: contract.closeAnchored(owner, RUN.execution, 1, 2, ident("head"), END, True, sender=owner),
    ):
        with expect_revert("InstanceIsFinal", key=direct):
            write()
    assert record(contract, owner, RUN) == (2, 1, Status.FINAL, Mode.DIRECT, RUN.head(states("a", "b")))


def test_end_calls_for_an_unregistered_instance(contract, owner, expect_revert):
    with expect_revert("InstanceNotRegistered", key=RUN.key(owner)):
        contract.endAttempt(owner, RUN.execution, 0, [], 0, END, sender=owner)
    with expect_revert("InstanceNotRegistered", key=RUN.key(owner)):
        contract.terminate(owner, RUN.execution, 0, [], 0, END, sender=owner)
    with expect_revert("InstanceNotRegistered", key=RUN.key(owner)):
        contract.closeAnchored(owner, RUN.execution, 0, 0, ident("head"), END, True, sender=owner)


# ------------------------------------------------------------------ closeAnchored


def test_close_anchored_attempt_then_final(contract, owner, anchored, events):
    first_head, final_head = ident("head after 5"), ident("head after 9")
    receipt = contract.closeAnchored(owner, RUN.execution, 0, 5, first_head, ident("failed"), False, sender=owner)
    assert events(receipt) == [
        (
            "AttemptEnded",
            {"key": anchored, "endDocument": ident("failed"), "attempt": 0, "stateCount": 5, "head": first_head},
        )
    ]
    assert record(contract, owner, RUN) == (5, 1, Status.OPEN, Mode.ANCHORED, ZERO)
    receipt = contract.closeAnchored(owner, RUN.execution, 1, 9, final_head, END, True, sender=owner)
    assert events(receipt) == [
        ("InstanceTerminated", {"key": anchored, "endDocument": END, "attempt": 1, "stateCount": 9, "head": final_head})
    ]
    assert record(contract, owner, RUN) == (9, 2, Status.FINAL, Mode.ANCHORED, ZERO)


def test_close_anchored_finalises_the_last_reported_attempt(contract, owner, anchored):
    contract.closeAnchored(owner, RUN.execution, 0, 5, ident("h"), ident("failed"), False, sender=owner)
    contract.closeAnchored(owner, RUN.execution, 0, 5, ident("h"), ident("failed"), True, sender=owner)
    assert record(contract, owner, RUN)[:3] == (5, 1, Status.FINAL)


def test_close_anchored_attempt_rules(contract, owner, anchored, expect_revert):
    with expect_revert("AttemptMismatch", key=anchored, expected=0, given=1):
        contract.closeAnchored(owner, RUN.execution, 1, 0, ident("h"), END, False, sender=owner)
    with expect_revert("AttemptMismatch", key=anchored, expected=0, given=1):
        contract.closeAnchored(owner, RUN.execution, 1, 0, ident("h"), END, True, sender=owner)
    contract.closeAnchored(owner, RUN.execution, 0, 3, ident("h"), END, False, sender=owner)
    # Not final: only the next attempt; final: the next or the last reported one.
    with expect_revert("AttemptMismatch", key=anchored, expected=1, given=0):
        contract.closeAnchored(owner, RUN.execution, 0, 3, ident("h"), END, False, sender=owner)
    with expect_revert("AttemptMismatch", key=anchored, expected=1, given=2):
        contract.closeAnchored(owner, RUN.execution, 2, 3, ident("h"), END, True, sender=owner)


def test_close_anchored_count_never_decreases(contract, owner, anchored, expect_revert):
    contract.closeAnchored(owner, RUN.execution, 0, 7, ident("h"), END, False, sender=owner)
    with expect_revert("CountDecreased", key=anchored, stored=7, given=6):
        contract.closeAnchored(owner, RUN.execution, 1, 6, ident("h"), END, True, sender=owner)
    contract.closeAnchored(owner, RUN.execution, 1, 7, ident("h2"), END, True, sender=owner)
    assert record(contract, owner, RUN)[:3] == (7, 2, Status.FINAL)


def test_close_anchored_count_must_fit_the_stored_uint64(contract, owner, anchored, expect_revert):
    with expect_revert("SafeCastOverflowedUintDowncast", bits=64, value=2**64):
        contract.closeAnchored(owner, RUN.execution, 0, 2**64, ident("h"), END, True, sender=owner)
    contract.closeAnchored(owner, RUN.execution, 0, 2**64 - 1, ident("h"), END, True, sender=owner)
    assert record(contract, owner, RUN)[0] == 2**64 - 1


def test_close_anchored_refuses_zero_head_or_end(contract, owner, anchored, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.closeAnchored(owner, RUN.execution, 0, 1, ZERO, END, True, sender=owner)
    with expect_revert("ZeroIdentifier"):
        contract.closeAnchored(owner, RUN.execution, 0, 1, ident("h"), ZERO, True, sender=owner)
    assert record(contract, owner, RUN)[:3] == (0, 0, Status.OPEN)


def test_close_anchored_on_a_direct_instance_reverts_wrong_mode(contract, owner, direct, expect_revert):
    with expect_revert("WrongMode", key=direct, mode=Mode.DIRECT):
        contract.closeAnchored(owner, RUN.execution, 0, 2, ident("h"), END, True, sender=owner)


def test_writes_after_anchored_final_revert_instance_is_final(contract, owner, anchored, expect_revert):
    contract.closeAnchored(owner, RUN.execution, 0, 4, ident("h"), END, True, sender=owner)
    for write in (
        lambda: contract.closeAnchored(owner, RUN.execution, 1, 4, ident("h"), END, False, sender=owner),
        lambda: contract.closeAnchored(owner, RUN.execution, 0, 4, ident("h"), END, True, sender=owner),
        lambda: contract.registerStates(owner, RUN.execution, 4, states("x"), sender=owner),
        lambda: contract.endAttempt(owner, RUN.execution, 4, [], 1, END, sender=owner),
        lambda: contract.terminate(owner, RUN.execution, 4, [], 1, END, sender=owner),
    ):
        with expect_revert("InstanceIsFinal", key=anchored):
            write()
    assert record(contract, owner, RUN) == (4, 1, Status.FINAL, Mode.ANCHORED, ZERO)


def test_operator_ends_attempts_and_terminates(contract, owner, operator, direct, anchored_other, events):
    contract.setOperator(operator, True, sender=owner)
    contract.endAttempt(owner, RUN.execution, 2, [], 0, ident("failed"), sender=operator)
    contract.terminate(owner, RUN.execution, 2, states("c"), 1, END, sender=operator)
    assert record(contract, owner, RUN)[:3] == (3, 2, Status.FINAL)
    contract.closeAnchored(owner, anchored_other.execution, 0, 1, ident("h"), END, True, sender=operator)
    assert record(contract, owner, anchored_other)[:3] == (1, 1, Status.FINAL)


@pytest.fixture
def anchored_other(contract, owner):
    run = Execution("anchored run")
    contract.registerAnchoredExecution(owner, *run.ids, sender=owner)
    return run


def test_strangers_cannot_end_or_terminate(contract, owner, other, direct, anchored_other, expect_revert):
    refused = dict(owner=owner.address, caller=other.address)
    with expect_revert("NotOwnerOrOperator", **refused):
        contract.endAttempt(owner, RUN.execution, 2, [], 0, END, sender=other)
    with expect_revert("NotOwnerOrOperator", **refused):
        contract.terminate(owner, RUN.execution, 2, [], 0, END, sender=other)
    with expect_revert("NotOwnerOrOperator", **refused):
        contract.closeAnchored(owner, anchored_other.execution, 0, 1, ident("h"), END, True, sender=other)
    assert record(contract, owner, RUN)[:3] == (2, 0, Status.OPEN)
    assert record(contract, owner, anchored_other)[:3] == (0, 0, Status.OPEN)
