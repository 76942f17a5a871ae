"""Attacks on InstanceTracker v2, each played the way a stranger would, against each property the
design promises: who may write under an owner's keys, and what cannot be squatted, replayed,
forged or pushed. Every test asserts the exact outcome: the revert's name and values, or that the
victim's record is exactly what the victim wrote.

Written before the guards were trusted: each attack states what would have happened in v1 (global,
first-come records) and what v2 must make of it.
"""

from __future__ import annotations

from typing import Any

import pytest
from contract_model import ZERO, Execution, MerkleTree, Mode, Status, ident, key, record, states
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from hexbytes import HexBytes

RUN = Execution("victim run")
END = ident("end document")
GWEI = 10**9


@pytest.fixture
def victim_direct(contract, victim):
    """The victim's direct-mode RUN with states a, b; returns its key."""
    contract.registerExecution(victim, *RUN.ids, states("a", "b"), sender=victim)
    return RUN.key(victim)


# ------------------------------------------------------------------ mempool front-running (anvil)


def _send_raw(anvil: Any, account: Any, to: str, data: bytes, nonce: int, tip: int) -> HexBytes:
    """Signs and sends an EIP-1559 transaction without waiting for it (automine is off)."""
    transaction = {
        "type": 2,
        "chainId": anvil.chain_id,
        "nonce": nonce,
        "to": to,
        "data": HexBytes(data),
        "value": 0,
        "gas": 500_000,
        "maxPriorityFeePerGas": tip,
        "maxFeePerGas": 100 * GWEI + tip,
    }
    signed = Account.sign_transaction(transaction, account.private_key)
    raw = getattr(signed, "raw_transaction", None) or signed.rawTransaction
    return HexBytes(anvil.web3.eth.send_raw_transaction(raw))


def _pending_transactions(anvil: Any, sender: str) -> list[dict]:
    """What a bot sees: the sender's pending transactions in anvil's txpool_content."""
    pool = anvil.make_request("txpool_content", [])
    for address, by_nonce in pool.get("pending", {}).items():
        if address.lower() == sender.lower():
            return [by_nonce[nonce] for nonce in sorted(by_nonce, key=int)]
    return []


def _revert_data(anvil: Any, transaction_hash: HexBytes) -> bytes:
    """The revert data of a mined, failed transaction, from anvil's debug_traceTransaction."""
    trace = anvil.make_request("debug_traceTransaction", ["0x" + bytes(transaction_hash).hex(), {}])
    assert trace["failed"] is True
    return bytes(HexBytes(trace["returnValue"]))


def test_instance_squatting_by_mempool_front_run(contract, victim, attacker, anvil):
    """v1: a bot copying a pending registration with a higher tip took the instance id; the
    victim's transaction then reverted and the bot's forged trace was the record. v2: the copy
    either names the victim as owner (refused) or lands under the bot's own key."""
    web3 = anvil.web3
    trace, forged = states("a", "b", "c"), states("forged 1", "forged 2")
    victim_nonce = web3.eth.get_transaction_count(victim.address, "pending")
    bot_nonce = web3.eth.get_transaction_count(attacker.address, "pending")
    calldata = contract.registerExecution.encode_input(victim.address, *RUN.ids, trace)
    anvil.make_request("evm_setAutomine", [False])
    try:
        victim_hash = _send_raw(anvil, victim, contract.address, calldata, victim_nonce, tip=1 * GWEI)

        # The bot reads the pool, decodes the victim's call and copies its arguments.
        [seen] = _pending_transactions(anvil, victim.address)
        assert HexBytes(seen["hash"]) == victim_hash
        _, arguments = contract.registerExecution.decode_input(HexBytes(seen["input"]))
        copied = (bytes(arguments["execution"]), bytes(arguments["model"]), bytes(arguments["instanceDocument"]))
        assert copied == RUN.ids and arguments["owner"] == victim.address
        higher_tip = int(seen["maxPriorityFeePerGas"], 16) * 10
        as_victim = contract.registerExecution.encode_input(arguments["owner"], *copied, forged)
        as_bot = contract.registerExecution.encode_input(attacker.address, *copied, forged)
        copy_as_victim = _send_raw(anvil, attacker, contract.address, as_victim, bot_nonce, higher_tip)
        copy_as_bot = _send_raw(anvil, attacker, contract.address, as_bot, bot_nonce + 1, higher_tip)

        anvil.make_request("evm_mine", [])
    finally:
        anvil.make_request("evm_setAutomine", [True])

    receipts = {
        name: web3.eth.get_transaction_receipt(h)
        for name, h in (("victim", victim_hash), ("copy_as_victim", copy_as_victim), ("copy_as_bot", copy_as_bot))
    }
    assert len({r["blockNumber"] for r in receipts.values()}) == 1, "all three are mined in one block"
    # The bot was mined first, as a front-runner is.
    assert receipts["copy_as_victim"]["transactionIndex"] < receipts["victim"]["transactionIndex"]
    assert receipts["copy_as_bot"]["transactionIndex"] < receipts["victim"]["transactionIndex"]
    assert receipts["victim"]["status"] == 1
    assert receipts["copy_as_bot"]["status"] == 1
    assert receipts["copy_as_victim"]["status"] == 0
    selector = keccak(text="NotOwnerOrOperator(address,address)")[:4]
    assert _revert_data(anvil, copy_as_victim) == selector + encode(
        ["address", "address"], [victim.address, attacker.address]
    )

    assert record(contract, victim, RUN) == (3, 0, Status.OPEN, Mode.DIRECT, RUN.head(trace))
    assert record(contract, attacker, RUN) == (2, 0, Status.OPEN, Mode.DIRECT, RUN.head(forged))
    assert RUN.key(attacker) != RUN.key(victim)
    # The victim's states were emitted under the victim's key only.
    logs = contract.StateRegistered.range(receipts["victim"]["blockNumber"], receipts["victim"]["blockNumber"] + 1)
    by_key = {}
    for log in logs:
        by_key.setdefault(bytes(log.key), []).append(bytes(log.state))
    assert by_key == {RUN.key(victim): trace, RUN.key(attacker): forged}


# ------------------------------------------------------------------ squatting


def test_model_squatting(contract, victim, attacker, events, expect_revert):
    """v1: the first registrant of a model id was its publisher for good. v2: a model is registered
    per publisher, so registering the victim's id first, or after, changes nothing for the victim."""
    model = ident("victim model")
    squat = contract.registerModel(attacker, model, sender=attacker)  # before the victim
    assert events(squat) == [("ModelRegistered", {"publisher": attacker.address, "model": model})]
    registered = contract.registerModel(victim, model, sender=victim)
    assert events(registered) == [("ModelRegistered", {"publisher": victim.address, "model": model})]
    registered_at = contract.modelOf(victim, model)
    assert registered_at != 0
    contract.registerModel(attacker, model, sender=attacker)  # after: a no-op under its own key
    contract.registerExecution(attacker, Execution("x").execution, model, ident("doc"), [], sender=attacker)
    with expect_revert("NotOwnerOrOperator", owner=victim.address, caller=attacker.address):
        contract.registerModel(victim, model, sender=attacker)
    assert contract.modelOf(victim, model) == registered_at


def test_anchor_root_copy(contract, victim, attacker, events):
    """v1: a root was global, so a stranger who anchored the victim's root first owned it and the
    victim's anchorStates reverted. v2: the victim's anchor is independent and verifies under the
    victim; the copy verifies only under the attacker, who is not the instance's owner."""
    trace = states("a", "b", "c")
    tree = MerkleTree.build([RUN.leaf(state, seq) for seq, state in enumerate(trace)])
    contract.anchorStates(tree.root, 3, sender=attacker)  # copied and mined first
    receipt = contract.anchorStates(tree.root, 3, sender=victim)
    assert events(receipt) == [("StatesAnchored", {"submitter": victim.address, "root": tree.root, "leafCount": 3})]
    for seq, state in enumerate(trace):
        proof = tree.proof(seq)
        assert contract.verifyAnchoredState(victim, tree.root, RUN.execution, state, seq, proof) is True
        assert contract.verifyAnchoredState(attacker, tree.root, RUN.execution, state, seq, proof) is True
    # The attacker's anchor is only its own statement: a root only the victim anchored is not its.
    victims_own = MerkleTree.build([RUN.leaf(state, seq) for seq, state in enumerate(states("d", "e"))])
    contract.anchorStates(victims_own.root, 2, sender=victim)
    proof = victims_own.proof(0)
    assert contract.verifyAnchoredState(attacker, victims_own.root, RUN.execution, states("d")[0], 0, proof) is False
    assert contract.anchorOf(attacker, victims_own.root)[0] == 0


def test_forged_leaves(contract, victim, attacker):
    """An attacker anchors leaves claiming forged states for the victim's execution: they verify
    only under the attacker, never under the victim, so a verifier checking the owner rejects them."""
    forged = states("forged 0", "forged 1")
    tree = MerkleTree.build([RUN.leaf(state, seq) for seq, state in enumerate(forged)])
    contract.anchorStates(tree.root, 2, sender=attacker)
    for seq, state in enumerate(forged):
        assert contract.verifyAnchoredState(victim, tree.root, RUN.execution, state, seq, tree.proof(seq)) is False
        assert contract.verifyAnchoredState(attacker, tree.root, RUN.execution, state, seq, tree.proof(seq)) is True
    assert tuple(contract.anchorOf(victim, tree.root)) == (0, 0)


# ------------------------------------------------------------------ finality and replays


@pytest.mark.parametrize("mode", [Mode.DIRECT, Mode.ANCHORED])
def test_post_termination_writes(contract, victim, operator, expect_revert, mode):
    """After Final nothing changes the record, by the owner or its operator, in either mode."""
    contract.setOperator(operator, True, sender=victim)
    if mode == Mode.DIRECT:
        contract.registerExecution(victim, *RUN.ids, states("a", "b"), sender=victim)
        contract.terminate(victim, RUN.execution, 2, [], 0, END, sender=victim)
        expected = (2, 1, Status.FINAL, Mode.DIRECT, RUN.head(states("a", "b")))
    else:
        contract.registerAnchoredExecution(victim, *RUN.ids, sender=victim)
        contract.closeAnchored(victim, RUN.execution, 0, 2, RUN.head(states("a", "b")), END, True, sender=victim)
        expected = (2, 1, Status.FINAL, Mode.ANCHORED, ZERO)
    key = RUN.key(victim)
    for caller in (victim, operator):
        for write in (
            lambda: contract.registerStates(victim, RUN.execution, 2, states("late"), sender=caller),
            lambda: contract.endAttempt(victim, RUN.execution, 2, states("late"), 1, ident("late end"), sender=caller),
            lambda: contract.terminate(victim, RUN.execution, 2, [], 1, ident("late end"), sender=caller),
            lambda: contract.terminate(victim, RUN.execution, 2, [], 0, ident("other end"), sender=caller),
            lambda: contract.closeAnchored(
                victim, RUN.execution, 1, 3, ident("h"), ident("late"), False, sender=caller
            ),
            lambda: contract.closeAnchored(victim, RUN.execution, 0, 3, ident("h"), ident("late"), True, sender=caller),
        ):
            with expect_revert("InstanceIsFinal", key=key):
                write()
        for register in (
            lambda: contract.registerExecution(victim, *RUN.ids, states("again"), sender=caller),
            lambda: contract.registerAnchoredExecution(victim, *RUN.ids, sender=caller),
        ):
            with expect_revert("InstanceAlreadyRegistered", key=key):
                register()
    assert record(contract, victim, RUN) == expected


def test_conflicting_state_zero_and_stale_resends(contract, victim, operator, victim_direct, expect_revert):
    """A second registration of the same (owner, execution) with another state 0, and resends of
    an end with a stale fromSeq or attempt, are refused: the first trace stands."""
    contract.setOperator(operator, True, sender=victim)
    for caller in (victim, operator):
        with expect_revert("InstanceAlreadyRegistered", key=victim_direct):
            contract.registerExecution(victim, *RUN.ids, states("conflicting 0"), sender=caller)
    contract.endAttempt(victim, RUN.execution, 2, states("c"), 0, ident("failed"), sender=victim)
    # The same endAttempt resent (its fromSeq is now stale), then with the right seq but the old attempt.
    with expect_revert("SequenceMismatch", key=victim_direct, expected=3, given=2):
        contract.endAttempt(victim, RUN.execution, 2, states("c"), 0, ident("failed"), sender=operator)
    with expect_revert("AttemptMismatch", key=victim_direct, expected=1, given=0):
        contract.endAttempt(victim, RUN.execution, 3, [], 0, ident("failed"), sender=operator)
    with expect_revert("SequenceMismatch", key=victim_direct, expected=3, given=2):
        contract.terminate(victim, RUN.execution, 2, states("c"), 1, END, sender=operator)
    with expect_revert("AttemptMismatch", key=victim_direct, expected=1, given=2):
        contract.terminate(victim, RUN.execution, 3, [], 2, END, sender=operator)
    assert record(contract, victim, RUN) == (3, 1, Status.OPEN, Mode.DIRECT, RUN.head(states("a", "b", "c")))


def test_redrive(contract, victim, expect_revert, events):
    """AWS redrives a failed execution: the attempt ends, the trace continues, a later attempt
    is final; or the reported end is finalised as it is. Stale attempts are refused throughout."""
    redriven, given_up = Execution("redriven"), Execution("given up")
    contract.registerExecution(victim, *redriven.ids, states("a"), sender=victim)
    contract.endAttempt(victim, redriven.execution, 1, states("b"), 0, ident("failed"), sender=victim)
    contract.registerStates(victim, redriven.execution, 2, states("c"), sender=victim)
    with expect_revert("AttemptMismatch", key=redriven.key(victim), expected=1, given=0):
        contract.endAttempt(victim, redriven.execution, 3, [], 0, ident("failed"), sender=victim)
    with expect_revert("AttemptMismatch", key=redriven.key(victim), expected=1, given=2):
        contract.terminate(victim, redriven.execution, 3, [], 2, END, sender=victim)
    receipt = contract.terminate(victim, redriven.execution, 3, states("d"), 1, END, sender=victim)
    head = redriven.head(states("a", "b", "c", "d"))
    assert events(receipt, "InstanceTerminated")[0][1] == {
        "key": redriven.key(victim),
        "endDocument": END,
        "attempt": 1,
        "stateCount": 4,
        "head": head,
    }
    assert record(contract, victim, redriven) == (4, 2, Status.FINAL, Mode.DIRECT, head)

    contract.registerExecution(victim, *given_up.ids, states("a"), sender=victim)
    contract.endAttempt(victim, given_up.execution, 1, [], 0, ident("failed"), sender=victim)
    contract.endAttempt(victim, given_up.execution, 1, [], 1, ident("failed again"), sender=victim)
    with expect_revert("AttemptMismatch", key=given_up.key(victim), expected=2, given=0):
        contract.terminate(victim, given_up.execution, 1, [], 0, ident("failed"), sender=victim)
    contract.terminate(victim, given_up.execution, 1, [], 1, ident("failed again"), sender=victim)
    assert record(contract, victim, given_up) == (1, 2, Status.FINAL, Mode.DIRECT, given_up.head(states("a")))


def test_replayed_certificate_signature(contract, victim, attacker, sign, expect_revert):
    """The victim's fingerprint and signature are public (in its event); replaying them, or signing
    the attacker's fingerprint with a key not the attacker's, recovers the victim, not the sender."""
    fingerprint = bytes.fromhex("ab" * 32)
    victims_signature = sign(victim, fingerprint)
    contract.registerCertificate(fingerprint, victims_signature, sender=victim)
    with expect_revert("CertificateSignerMismatch", signer=victim.address, sender=attacker.address):
        contract.registerCertificate(fingerprint, victims_signature, sender=attacker)
    attackers_fingerprint = bytes.fromhex("cd" * 32)
    with expect_revert("CertificateSignerMismatch", signer=victim.address, sender=attacker.address):
        contract.registerCertificate(attackers_fingerprint, sign(victim, attackers_fingerprint), sender=attacker)
    assert bytes(contract.certificateOf(victim)[0]) == fingerprint
    assert bytes(contract.certificateOf(attacker)[0]) == ZERO


def test_operator_revocation(contract, victim, operator, victim_direct, expect_revert):
    """A revoked operator (a retired tracker key) can no longer write anything under the owner."""
    anchored = Execution("anchored run")
    contract.registerAnchoredExecution(victim, *anchored.ids, sender=victim)
    contract.setOperator(operator, True, sender=victim)
    contract.registerStates(victim, RUN.execution, 2, states("c"), sender=operator)
    contract.setOperator(operator, False, sender=victim)
    refused = dict(owner=victim.address, caller=operator.address)
    for write in (
        lambda: contract.registerModel(victim, ident("new model"), sender=operator),
        lambda: contract.registerExecution(victim, *Execution("new").ids, [], sender=operator),
        lambda: contract.registerAnchoredExecution(victim, *Execution("new").ids, sender=operator),
        lambda: contract.registerStates(victim, RUN.execution, 3, states("evil"), sender=operator),
        lambda: contract.endAttempt(victim, RUN.execution, 3, [], 0, END, sender=operator),
        lambda: contract.terminate(victim, RUN.execution, 3, [], 0, END, sender=operator),
        lambda: contract.closeAnchored(victim, anchored.execution, 0, 1, ident("h"), END, True, sender=operator),
        lambda: contract.registerTransition(
            victim, RUN.execution, RUN.start(), states("a", "b", "c"), 1, sender=operator
        ),
    ):
        with expect_revert("NotOwnerOrOperator", **refused):
            write()
    assert record(contract, victim, RUN) == (3, 0, Status.OPEN, Mode.DIRECT, RUN.head(states("a", "b", "c")))
    assert record(contract, victim, anchored) == (0, 0, Status.OPEN, Mode.ANCHORED, ZERO)
    assert contract.modelOf(victim, ident("new model")) == 0


# ------------------------------------------------------------------ transfers


def test_pushed_transfer(contract, victim, attacker, target, victim_direct, expect_revert, events):
    """v1 pushed an instance onto its new owner at once. v2: a proposal changes nothing for the
    target; only the target's acceptTransfer moves the record; nobody else can accept; the target's
    existing record is never overwritten; the old key is Moved and can never be registered again."""
    # An attacker pushes junk at the victim: nothing appears under the victim's keys.
    junk = Execution("junk")
    contract.registerExecution(attacker, *junk.ids, states("junk"), sender=attacker)
    contract.proposeTransfer(junk.execution, victim, sender=attacker)
    assert record(contract, victim, junk)[2] == Status.NONE
    # Pushing the attacker's own instance of the victim's execution at the victim: refused on accept.
    contract.registerExecution(attacker, *RUN.ids, states("forged"), sender=attacker)
    contract.proposeTransfer(RUN.execution, victim, sender=attacker)
    with expect_revert("InstanceAlreadyRegistered", key=victim_direct):
        contract.acceptTransfer(attacker, RUN.execution, sender=victim)
    assert record(contract, victim, RUN) == (2, 0, Status.OPEN, Mode.DIRECT, RUN.head(states("a", "b")))

    # The victim proposes to the target: the target's key stays empty until it accepts.
    contract.proposeTransfer(RUN.execution, target, sender=victim)
    assert record(contract, target, RUN)[2] == Status.NONE
    assert record(contract, victim, RUN)[2] == Status.OPEN
    with expect_revert("NotPendingOwner", key=victim_direct, caller=attacker.address):
        contract.acceptTransfer(victim, RUN.execution, sender=attacker)
    accepted = contract.acceptTransfer(victim, RUN.execution, sender=target)
    assert [name for name, _ in events(accepted)] == ["InstanceTransferred"]
    head = RUN.head(states("a", "b"))
    assert record(contract, target, RUN) == (2, 0, Status.OPEN, Mode.DIRECT, head)
    assert record(contract, victim, RUN) == (2, 0, Status.MOVED, Mode.DIRECT, head)

    # The old key is closed for good: not by its owner, not by anyone else.
    with expect_revert("InstanceAlreadyRegistered", key=victim_direct):
        contract.registerExecution(victim, *RUN.ids, states("again"), sender=victim)
    with expect_revert("NotOwnerOrOperator", owner=victim.address, caller=attacker.address):
        contract.registerExecution(victim, *RUN.ids, states("again"), sender=attacker)
    with expect_revert("InstanceIsMoved", key=victim_direct):
        contract.registerStates(victim, RUN.execution, 2, states("late"), sender=victim)
    assert record(contract, victim, RUN) == (2, 0, Status.MOVED, Mode.DIRECT, head)
    assert key(target, RUN.execution) == RUN.key(target)
