"""Chain-side forgeries against the v2 verifier: records squatted or forged under other keys,
roots anchored by strangers, anchored traces cut short or extended after their termination,
operators approved too late or revoked later, transferred instances, and protocols naming another
contract. Each is played through `ape run verify --json` and the check, reason and exit status
asserted. The verifier reads under the owner the protocol names (whom checks 4 and 5 then
authenticate), never under whoever registered first.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

VERIFY_SUITE = Path(__file__).resolve().parent.parent / "verify"
if str(VERIFY_SUITE) not in sys.path:
    sys.path.insert(0, str(VERIFY_SUITE))

import publishing  # noqa: E402
from publishing import address_of  # noqa: E402
from verify_fixtures import *  # noqa: E402, F403  (the fixtures: pytest finds them by name)

from tracker.chain.contract import TrackerContract  # noqa: E402
from tracker.documents.ids import id_to_bytes32  # noqa: E402

EXIT_FAILED, EXIT_INCOMPLETE = 1, 2


def verify(verify_command, published, *options, contract=None):
    address = contract or published.tracker.address
    return verify_command(published.url, "--contract", address, "--timeout", "3", *options)


def squat(published, attacker, forged_labels=("forged 1", "forged 2")):
    """The attacker registers the victim's execution (same execution, model and instance document)
    under its own key, with forged states of its own, as a front-runner copying the victim would."""
    execution = published.execution
    forged = []
    for seq, label in enumerate(forged_labels):
        previous = forged[-1].id if forged else ""
        forged.append(publishing.state_document(execution.instance_id, seq, previous, name=label))
    for document in forged:
        published.write_document(document.content)
    client = TrackerContract(published.tracker.contract, attacker)
    call = client.register_execution_call(
        address_of(attacker), execution.execution_id, execution.model_id, execution.instance_id, [d.id for d in forged]
    )
    return client.send([call]), forged


# ------------------------------------------------------------------ squatting and forged records


def test_the_victims_protocol_is_read_under_the_victim_although_a_squatter_came_first(
    verify_command, publish_execution, victim, attacker
):
    published = publish_execution(victim, states=0)
    squat(published, attacker)  # the attacker's copy is mined before the victim's states
    published.add_states(3)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_INCOMPLETE and outcome.failed_checks == []  # only ENS is not checked
    assert outcome.check("states")["reason"].startswith("3 states in order; count 3 and head ")
    assert outcome.data["owner"] == address_of(victim)


def test_a_squatters_states_listed_under_the_victims_name(verify_command, publish_execution, victim, attacker):
    """A protocol naming the victim that lists the squatter's registrations: the victim's key holds other states."""
    published = publish_execution(victim, states=2)
    sent, forged = squat(published, attacker)
    published.protocol.instance_protocol = [
        dataclasses.replace(entry, state_hash=document.id, state_data=published.document_url(document.id))
        for entry, document in zip(published.entries_for(sent, 0, 2, attacker), forged)
    ]
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks[0] == "states"
    ids = published.execution.state_ids
    assert outcome.failing() == [
        (0, f"not registered for this instance at seq 0 (seq 0 on chain is {ids[0][:10]}…)"),
        (1, f"not registered for this instance at seq 1 (seq 1 on chain is {ids[1][:10]}…)"),
    ]
    assert "the listed states do not hash to the contract's head" in outcome.check("states")["reason"]


def test_a_squatted_execution_the_victim_never_registered(
    verify_command, publish_execution, victim, attacker, tmp_path, serve
):
    """Only the squatter holds the execution: under the victim's name nothing is registered."""
    execution = publishing.make_execution("squatted", 2)
    root = tmp_path / "squatted"
    root.mkdir()
    server = serve(root)
    owned = TrackerContract(publish_execution(victim).tracker.contract, attacker)
    published = publishing.publish(root, server, owned, attacker, execution)
    published.protocol.owner = address_of(victim)  # the forged protocol claims the victim
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.check("states")["reason"] == (
        f"execution {execution.execution_id[:10]}… is not registered under the owner 0x{address_of(victim)} "
        f"(it is registered under 0x{address_of(attacker)})"
    )


def test_the_squatters_own_record_on_the_victims_host_is_never_passed(
    verify_command, publish_execution, victim, attacker
):
    """The protocol names the squatter, whose record is consistent: the chain checks pass for the
    squatter, but nothing binds the squatter to the victim's origin. Without the victim's
    certificate fingerprint, check 5 fails; even with it copied, check 4 (ENS) is what must pass."""
    published = publish_execution(victim, states=2)
    sent, forged = squat(published, attacker)
    published.protocol.owner = address_of(attacker)
    published.protocol.instance_protocol = [
        dataclasses.replace(entry, state_hash=document.id, state_data=published.document_url(document.id))
        for entry, document in zip(published.entries_for(sent, 0, 2, attacker), forged)
    ]
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == ["certificate"]
    assert (
        outcome.check("certificate")["reason"] == f"0x{address_of(attacker)} has registered no certificate fingerprint"
    )
    # The fingerprint is public: the squatter registers it under its own key, signed by itself.
    publishing.register_certificate(published.tracker, attacker, published.server.fingerprint)
    outcome = verify(verify_command, published)
    assert outcome.data["owner"] == address_of(attacker) and outcome.check("ens")["ok"] is not True
    assert outcome.exit_code != 0 and outcome.data["passed"] is False


# ------------------------------------------------------------------ anchored forgeries


def test_states_under_a_root_the_attacker_anchored(verify_command, publish_execution, victim, attacker):
    """Leaves forged for the victim's execution under a root only the attacker anchored."""
    published = publish_execution(victim, anchored=True, states=0)
    published.anchor_states(3, sender=attacker)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == ["states"]
    entry = published.protocol.instance_protocol[0]
    reason = (
        f"root {entry.merkle_root[:10]}… was anchored by 0x{address_of(attacker)}, neither the owner "
        f"0x{address_of(victim)} nor an operator it had approved at block {entry.block_nr}"
    )
    assert outcome.failing() == [(position, reason) for position in range(3)]


def test_a_forged_leaf_under_the_victims_own_root(verify_command, publish_execution, victim):
    """A state the victim never anchored, listed with the victim's root and a proof of another leaf."""
    published = publish_execution(victim, anchored=True, states=2)
    forged = publishing.state_document(
        published.execution.instance_id, 1, published.execution.state_ids[0], name="forged"
    )
    published.write_document(forged.content)
    published.protocol.instance_protocol[1] = published.entry(
        1, state_hash=forged.id, state_data=published.document_url(forged.id)
    )
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    root = published.protocol.instance_protocol[1].merkle_root
    assert outcome.failing() == [(1, f"Merkle proof does not lead from (execution, state, seq 1) to root {root[:10]}…")]


def test_a_truncated_anchored_protocol(verify_command, publish_execution, victim):
    published = publish_execution(victim, anchored=True, states=4)
    published.end("SUCCEEDED", final=True)
    block = published.protocol.attempts[-1].block_nr
    published.protocol.instance_protocol = published.protocol.instance_protocol[:3]
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and "states" in outcome.failed_checks
    assert outcome.check("states")["reason"] == (
        f"the termination (attempt 0, block {block}) pinned 4 states, the protocol lists 3"
    )


def test_a_running_anchored_instance_is_in_progress_never_passed(verify_command, publish_execution, victim):
    published = publish_execution(victim, anchored=True, states=3)
    published.end("FAILED", final=False)
    published.anchor_states(2, attempt=1)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_INCOMPLETE and outcome.failed_checks == []
    assert outcome.check("states")["ok"] is None
    assert outcome.check("states")["reason"].startswith(
        "in progress: 5 anchored states, 3 of them pinned by an attempt end"
    )
    assert outcome.data["status"] == "running"


def test_a_state_anchored_after_the_termination(verify_command, publish_execution, victim):
    """The owner terminated with 3 states, then anchored a fourth: listed, it is after the end."""
    published = publish_execution(victim, anchored=True, states=3)
    published.end("SUCCEEDED", final=True)
    block = published.protocol.attempts[-1].block_nr
    published.anchor_states(1, attempt=1)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and "states" in outcome.failed_checks
    assert outcome.check("states")["reason"] == (
        f"the protocol lists 1 states after the termination (attempt 0, block {block})"
    )


def test_a_pinned_state_re_anchored_after_the_termination(verify_command, publish_execution, victim):
    """The same state again under a root anchored after the end that pinned it: its listed
    registration postdates the trace it claims to be part of."""
    published = publish_execution(victim, anchored=True, states=3)
    published.end("SUCCEEDED", final=True)
    block = published.protocol.attempts[-1].block_nr
    kept = published.protocol.instance_protocol
    again = published.anchor_documents(1, [published.execution.states[1]], publish=False)
    from tracker.chain.merkle import MerkleTree, state_leaf

    tree = MerkleTree.build([state_leaf(published.execution.execution_id, published.execution.state_ids[1], 1)])
    kept[1] = published.entry(
        1,
        merkle_root=tree.root.hex(),
        merkle_proof=[],
        block_nr=again.block_number,
        transaction_hash=again.transaction_hash,
        timestamp=publishing.block_time(again.block_number),
    )
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.failing() == [
        (
            1,
            f"anchored in block {again.block_number}, after the termination (attempt 0, block {block}), which pinned seq 1",
        )
    ]


def test_a_second_different_state_0_under_another_root(verify_command, publish_execution, victim, attacker):
    """Two roots, each with its own state 0 for the same execution. The attacker's never counts;
    the owner's own second trace is refused once the termination pinned the first."""
    published = publish_execution(victim, anchored=True, states=2)
    honest = list(published.protocol.instance_protocol)
    other_zero = publishing.state_document(published.execution.instance_id, 0, "", name="other zero")
    published.write_document(other_zero.content)
    by_attacker = published.anchor_documents(0, [other_zero], sender=attacker, publish=False)
    by_owner = published.anchor_documents(0, [other_zero], publish=False)
    published.end("SUCCEEDED", final=True)
    from tracker.chain.merkle import MerkleTree, state_leaf

    root = MerkleTree.build([state_leaf(published.execution.execution_id, other_zero.id, 0)]).root.hex()
    for sent, sender, failing in (
        (by_attacker, attacker, f"root {root[:10]}… was anchored by 0x{address_of(attacker)}, neither the owner "),
        (by_owner, victim, None),
    ):
        published.protocol.instance_protocol = [
            dataclasses.replace(
                honest[0],
                state_hash=other_zero.id,
                state_data=published.document_url(other_zero.id),
                merkle_root=root,
                merkle_proof=[],
                block_nr=sent.block_number,
                transaction_hash=sent.transaction_hash,
                timestamp=publishing.block_time(sent.block_number),
                client_address=address_of(sender),
            ),
            honest[1],
        ]
        published.write_protocol()
        outcome = verify(verify_command, published)
        assert outcome.exit_code == EXIT_FAILED and "states" in outcome.failed_checks
        if failing:
            assert outcome.failing()[0][1].startswith(failing)
        assert "the first 2 listed states do not chain to the head the termination" in outcome.check("states")["reason"]


# ------------------------------------------------------------------ operators


def test_states_an_operator_registered_stay_valid_after_it_is_revoked(
    verify_command, publish_execution, victim, operator
):
    published = publish_execution(victim, states=1)
    published.tracker.contract.setOperator(operator.address, True, sender=victim)
    published.add_states(2, sender=operator)
    published.tracker.contract.setOperator(operator.address, False, sender=victim)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_INCOMPLETE and outcome.failed_checks == []
    assert outcome.rows()[1]["reason"].endswith(f"by operator 0x{address_of(operator)} of 0x{address_of(victim)}")


def test_a_root_anchored_before_its_submitter_became_an_operator(verify_command, publish_execution, victim, attacker):
    """Approval does not reach back: a root anchored before the owner approved its submitter is not the owner's."""
    published = publish_execution(victim, anchored=True, states=0)
    published.anchor_states(2, sender=attacker)
    published.tracker.contract.setOperator(attacker.address, True, sender=victim)
    published.end("SUCCEEDED", final=True)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    assert all("neither the owner" in reason for _, reason in outcome.failing()) and len(outcome.failing()) == 2


def test_a_root_anchored_by_an_operator_stays_valid_after_it_is_revoked(
    verify_command, publish_execution, victim, operator
):
    published = publish_execution(victim, anchored=True, states=0)
    published.tracker.contract.setOperator(operator.address, True, sender=victim)
    published.anchor_states(2, sender=operator)
    published.tracker.contract.setOperator(operator.address, False, sender=victim)
    published.end("SUCCEEDED", final=True)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_INCOMPLETE and outcome.failed_checks == []
    assert [row["ok"] for row in outcome.rows()] == [True, True]


# ------------------------------------------------------------------ transfers


def transfer(published, old_owner, new_owner):
    """The old owner proposes the instance to the new one, who accepts (the two steps of v2)."""
    x = id_to_bytes32(published.execution.execution_id)
    contract = published.tracker.contract
    contract.proposeTransfer(x, new_owner.address, sender=old_owner)
    receipt = contract.acceptTransfer(old_owner.address, x, sender=new_owner)
    published.owner = new_owner
    published.tracker = TrackerContract(contract, new_owner)
    published.protocol.owner = address_of(new_owner)
    return int(receipt.block_number)


def test_a_transferred_instance_counts_its_previous_owners_states(verify_command, publish_execution, attacker, target):
    """States the previous owner registered before the transfer, listed as the previous owner's,
    then states of the new owner: the report names the previous owner for the early ones."""
    published = publish_execution(attacker, states=2)
    block = transfer(published, attacker, target)
    publishing.register_certificate(published.tracker, target, published.server.fingerprint)
    published.add_states(1)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_INCOMPLETE and outcome.failed_checks == []
    assert outcome.rows()[0]["reason"].endswith(
        f"under the previous owner 0x{address_of(attacker)} (before the transfer in block {block})"
    )
    assert outcome.rows()[2]["reason"].endswith(f"block {published.protocol.instance_protocol[2].block_nr}")


def test_transferred_states_listed_as_the_new_owners(verify_command, publish_execution, attacker, target):
    """Registered by another account and transferred to the publisher, listed as the publisher's."""
    published = publish_execution(attacker, states=2)
    transfer(published, attacker, target)
    publishing.register_certificate(published.tracker, target, published.server.fingerprint)
    for entry in published.protocol.instance_protocol:
        entry.client_address = address_of(target)
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    tx = published.protocol.instance_protocol[0].transaction_hash
    reason = f"client_address 0x{address_of(target)} is not 0x{address_of(attacker)}, who sent transaction {tx[:10]}…"
    assert outcome.failing() == [(0, reason), (1, reason)]


def test_an_instance_verified_under_the_owner_it_was_transferred_away_from(
    verify_command, publish_execution, victim, target
):
    published = publish_execution(victim, states=2)
    block = transfer(published, victim, target)
    published.protocol.owner = address_of(victim)
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.check("states")["reason"] == (
        f"0x{address_of(victim)} transferred the instance to 0x{address_of(target)} in block {block}: "
        "its record now lives under the new owner"
    )
    assert outcome.data["status"] == "moved"


def test_a_proposed_but_unaccepted_transfer_changes_nothing(verify_command, publish_execution, victim, target):
    published = publish_execution(victim, states=2)
    published.tracker.contract.proposeTransfer(
        id_to_bytes32(published.execution.execution_id), target.address, sender=victim
    )
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_INCOMPLETE and outcome.failed_checks == []


# ------------------------------------------------------------------ the contract


def test_a_protocol_naming_another_contract(verify_command, publish_execution, victim, project):
    """The protocol names a contract of its own; the verifier uses the one it was given and says why it fails."""
    published = publish_execution(victim)
    decoy = victim.deploy(project.InstanceTracker)
    published.protocol.contract_address = str(decoy.address).lower()[2:]
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == ["states"]
    assert outcome.check("states")["reason"] == (
        f"protocol names contract 0x{published.protocol.contract_address}, verified against "
        f"0x{published.tracker.address.lower()[2:]}"
    )
    assert (
        outcome.data["contract"] == published.tracker.address.lower()[2:] and outcome.data["contract_source"] == "given"
    )


def test_a_protocol_registered_only_in_the_contract_it_names(
    verify_command, publish_execution, victim, project, tmp_path, serve
):
    """Everything registered in a decoy deployment the protocol names: the contract verified
    against holds nothing, and the decoy is never read."""
    genuine = publish_execution(victim, states=0)
    decoy = TrackerContract(victim.deploy(project.InstanceTracker), victim)
    root = tmp_path / "decoy"
    root.mkdir()
    server = serve(root)
    publishing.register_certificate(decoy, victim, server.fingerprint)
    published = publishing.publish(root, server, decoy, victim, publishing.make_execution("decoy", 2))
    outcome = verify(verify_command, published, contract=genuine.tracker.address)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.check("states")["reason"] == (
        f"protocol names contract 0x{decoy.address.lower()[2:]}, verified against 0x{genuine.tracker.address.lower()[2:]}; "
        f"execution {published.execution.execution_id[:10]}… is not registered under the owner 0x{address_of(victim)}"
    )


def test_a_protocol_naming_another_chain(verify_command, published):
    published.protocol.chain_id = 11155111
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == ["states"]
    assert (
        outcome.check("states")["reason"]
        == f"protocol names chain id 11155111, verified on chain id {outcome.data['chain_id']}"
    )


# ------------------------------------------------------------------ a real front-run (anvil's mempool)

GWEI = 10**9


def _send_raw(anvil, account, to: str, data: bytes, nonce: int, tip: int) -> bytes:
    from eth_account import Account
    from hexbytes import HexBytes

    transaction = {
        "type": 2,
        "chainId": anvil.chain_id,
        "nonce": nonce,
        "to": to,
        "data": HexBytes(data),
        "value": 0,
        "gas": 1_000_000,
        "maxPriorityFeePerGas": tip,
        "maxFeePerGas": 100 * GWEI + tip,
    }
    signed = Account.sign_transaction(transaction, account.private_key)
    raw = getattr(signed, "raw_transaction", None) or signed.rawTransaction
    return bytes(anvil.web3.eth.send_raw_transaction(raw))


@pytest.mark.anvil
def test_a_front_run_copy_from_the_mempool_is_never_read_as_the_victims(
    verify_command, publish_execution, victim, attacker, anvil, tmp_path, serve
):
    """A bot reads the victim's pending registration from anvil's txpool and has its own copy,
    with forged states, mined first. The victim's protocol verifies against the victim's record;
    a protocol listing the bot's registration under the victim's name fails."""
    from hexbytes import HexBytes

    from tracker.chain.contract import SentTransaction

    contract = publish_execution(victim).tracker.contract  # the deployment the victim uses
    execution = publishing.make_execution("front-run", 3)
    root = tmp_path / "front-run"
    (root / "documents").mkdir(parents=True)
    server = serve(root)
    publishing.register_certificate(TrackerContract(contract, victim), victim, server.fingerprint)
    ids = execution.state_ids
    x, model, instance = execution.execution_id, execution.model_id, execution.instance_id
    web3 = anvil.web3
    calldata = contract.registerExecution.encode_input(
        victim.address, *(id_to_bytes32(i) for i in (x, model, instance)), [id_to_bytes32(i) for i in ids]
    )
    anvil.make_request("evm_setAutomine", [False])
    try:
        victim_hash = _send_raw(
            anvil, victim, contract.address, calldata, web3.eth.get_transaction_count(victim.address, "pending"), GWEI
        )
        pool = anvil.make_request("txpool_content", [])
        [seen] = next(
            by_nonce for sender, by_nonce in pool["pending"].items() if sender.lower() == victim.address.lower()
        ).values()
        _, arguments = contract.registerExecution.decode_input(HexBytes(seen["input"]))
        forged = [publishing.state_document(instance, 0, "", name="forged")]
        copy = contract.registerExecution.encode_input(
            attacker.address,
            arguments["execution"],
            arguments["model"],
            arguments["instanceDocument"],
            [id_to_bytes32(forged[0].id)],
        )
        bot_hash = _send_raw(
            anvil,
            attacker,
            contract.address,
            copy,
            web3.eth.get_transaction_count(attacker.address, "pending"),
            10 * GWEI,
        )
        anvil.make_request("evm_mine", [])
    finally:
        anvil.make_request("evm_setAutomine", [True])
    victim_receipt, bot_receipt = (
        web3.eth.get_transaction_receipt(victim_hash),
        web3.eth.get_transaction_receipt(bot_hash),
    )
    assert bot_receipt["transactionIndex"] < victim_receipt["transactionIndex"] and victim_receipt["status"] == 1
    published = publishing.Published(
        root,
        server,
        TrackerContract(contract, victim),
        execution,
        publishing.InstanceProtocol(
            model,
            instance,
            server.url(f"documents/{model}.json"),
            server.url(f"documents/{instance}.json"),
            execution_id=x,
            owner=address_of(victim),
            mode="direct",
            chain_id=anvil.chain_id,
            contract_address=str(contract.address).lower()[2:],
        ),
        victim,
    )
    for document in [execution.model, execution.instance, *execution.states, *forged]:
        published.write_document(document.content)
    sent = SentTransaction(bytes(victim_hash).hex(), int(victim_receipt["blockNumber"]), int(victim_receipt["gasUsed"]))
    published.protocol.instance_protocol = published.entries_for(sent, 0, 3, victim)
    published.refresh()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_INCOMPLETE and outcome.failed_checks == []  # only ENS is not checked
    # The bot's registration listed as the victim's:
    bot = SentTransaction(bytes(bot_hash).hex(), int(bot_receipt["blockNumber"]), int(bot_receipt["gasUsed"]))
    [entry] = published.entries_for(bot, 0, 1, attacker)
    published.protocol.instance_protocol = [
        dataclasses.replace(entry, state_hash=forged[0].id, state_data=published.document_url(forged[0].id))
    ]
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.failing() == [(0, f"not registered for this instance at seq 0 (seq 0 on chain is {ids[0][:10]}…)")]
