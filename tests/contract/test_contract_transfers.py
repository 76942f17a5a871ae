"""Two-step transfers: the owner proposes, the target accepts, the old key is Moved for good."""

from __future__ import annotations

import pytest
from contract_model import ZERO, ZERO_ADDRESS, Execution, Mode, Status, ident, record, states

RUN = Execution("run")
END = ident("end document")


@pytest.fixture
def target(accounts):
    return accounts[3]


@pytest.fixture
def direct(contract, owner):
    contract.registerExecution(owner, *RUN.ids, states("a", "b"), sender=owner)
    return RUN.key(owner)


def test_propose_then_accept_moves_the_record(contract, owner, target, direct, events):
    proposed = contract.proposeTransfer(RUN.execution, target, sender=owner)
    assert events(proposed) == [("TransferProposed", {"key": direct, "from": owner.address, "to": target.address})]
    assert contract.pendingOwner(direct) == target.address
    accepted = contract.acceptTransfer(owner, RUN.execution, sender=target)
    assert events(accepted) == [
        (
            "InstanceTransferred",
            {
                "fromKey": direct,
                "toKey": RUN.key(target),
                "execution": RUN.execution,
                "from": owner.address,
                "to": target.address,
            },
        )
    ]
    head = RUN.head(states("a", "b"))
    assert record(contract, target, RUN) == (2, 0, Status.OPEN, Mode.DIRECT, head)
    assert record(contract, owner, RUN) == (2, 0, Status.MOVED, Mode.DIRECT, head)
    assert contract.pendingOwner(direct) == ZERO_ADDRESS
    # The new owner continues the trace from the same head.
    contract.registerStates(target, RUN.execution, 2, states("c"), sender=target)
    assert record(contract, target, RUN)[4] == RUN.head(states("a", "b", "c"))


def test_anchored_and_final_instances_move_with_their_count_and_attempts(contract, owner, target):
    contract.registerAnchoredExecution(owner, *RUN.ids, sender=owner)
    contract.closeAnchored(owner, RUN.execution, 0, 6, ident("h"), END, True, sender=owner)
    contract.proposeTransfer(RUN.execution, target, sender=owner)
    contract.acceptTransfer(owner, RUN.execution, sender=target)
    assert record(contract, target, RUN) == (6, 1, Status.FINAL, Mode.ANCHORED, ZERO)
    assert record(contract, owner, RUN) == (6, 1, Status.MOVED, Mode.ANCHORED, ZERO)


def test_cancelling_a_proposal(contract, owner, target, direct, events, expect_revert):
    contract.proposeTransfer(RUN.execution, target, sender=owner)
    cancelled = contract.proposeTransfer(RUN.execution, ZERO_ADDRESS, sender=owner)
    assert events(cancelled) == [("TransferProposed", {"key": direct, "from": owner.address, "to": ZERO_ADDRESS})]
    with expect_revert("NotPendingOwner", key=direct, caller=target.address):
        contract.acceptTransfer(owner, RUN.execution, sender=target)
    assert record(contract, owner, RUN)[2] == Status.OPEN


def test_a_new_proposal_replaces_the_old_one(contract, owner, other, target, direct, expect_revert):
    contract.proposeTransfer(RUN.execution, other, sender=owner)
    contract.proposeTransfer(RUN.execution, target, sender=owner)
    with expect_revert("NotPendingOwner", key=direct, caller=other.address):
        contract.acceptTransfer(owner, RUN.execution, sender=other)
    contract.acceptTransfer(owner, RUN.execution, sender=target)
    assert record(contract, target, RUN)[2] == Status.OPEN


def test_proposal_refusals(contract, owner, operator, direct, expect_revert):
    with expect_revert("InvalidTransferTarget", to=owner.address):
        contract.proposeTransfer(RUN.execution, owner, sender=owner)
    with expect_revert("InstanceNotRegistered", key=Execution("ghost").key(owner)):
        contract.proposeTransfer(Execution("ghost").execution, operator, sender=owner)
    # Transfers are the owner's alone: an operator proposes only under its own (empty) key.
    contract.setOperator(operator, True, sender=owner)
    with expect_revert("InstanceNotRegistered", key=RUN.key(operator)):
        contract.proposeTransfer(RUN.execution, operator, sender=operator)
    assert contract.pendingOwner(direct) == ZERO_ADDRESS


def test_accepting_onto_an_existing_key_reverts(contract, owner, target, direct, expect_revert):
    contract.registerAnchoredExecution(target, *RUN.ids, sender=target)
    contract.proposeTransfer(RUN.execution, target, sender=owner)
    with expect_revert("InstanceAlreadyRegistered", key=RUN.key(target)):
        contract.acceptTransfer(owner, RUN.execution, sender=target)
    assert record(contract, owner, RUN)[2] == Status.OPEN
    assert record(contract, target, RUN)[3] == Mode.ANCHORED


def test_a_moved_key_is_closed_for_good(contract, owner, target, direct, expect_revert):
    contract.proposeTransfer(RUN.execution, target, sender=owner)
    contract.acceptTransfer(owner, RUN.execution, sender=target)
    moved = dict(key=direct)
    with expect_revert("InstanceAlreadyRegistered", **moved):
        contract.registerExecution(owner, *RUN.ids, [], sender=owner)
    with expect_revert("InstanceAlreadyRegistered", **moved):
        contract.registerAnchoredExecution(owner, *RUN.ids, sender=owner)
    with expect_revert("InstanceIsMoved", **moved):
        contract.registerStates(owner, RUN.execution, 2, states("c"), sender=owner)
    with expect_revert("InstanceIsMoved", **moved):
        contract.endAttempt(owner, RUN.execution, 2, [], 0, END, sender=owner)
    with expect_revert("InstanceIsMoved", **moved):
        contract.terminate(owner, RUN.execution, 2, [], 0, END, sender=owner)
    with expect_revert("InstanceIsMoved", **moved):
        contract.closeAnchored(owner, RUN.execution, 0, 2, ident("h"), END, True, sender=owner)
    with expect_revert("InstanceIsMoved", **moved):
        contract.registerTransition(owner, RUN.execution, RUN.start(), states("a", "b"), 1, sender=owner)
    with expect_revert("InstanceIsMoved", **moved):
        contract.proposeTransfer(RUN.execution, target, sender=owner)
    # And it cannot be accepted twice.
    with expect_revert("NotPendingOwner", key=direct, caller=target.address):
        contract.acceptTransfer(owner, RUN.execution, sender=target)


def test_moving_back_lands_on_a_fresh_key_only_if_it_is_unused(contract, owner, target, direct, expect_revert):
    """The original owner's key is Moved, so the instance cannot come back to it."""
    contract.proposeTransfer(RUN.execution, target, sender=owner)
    contract.acceptTransfer(owner, RUN.execution, sender=target)
    contract.proposeTransfer(RUN.execution, owner, sender=target)
    with expect_revert("InstanceAlreadyRegistered", key=direct):
        contract.acceptTransfer(target, RUN.execution, sender=owner)
    assert record(contract, target, RUN)[2] == Status.OPEN
