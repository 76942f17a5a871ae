"""Attacks on what the verifier believes of documents: each one hashes right and is registered on
chain, so a verifier that only hashed them passed it. Each test plays it through `ape run verify
--json` and asserts the check and the reason that fail, and the exit status.

(ape's local chain has no ENS, so an honest protocol ends "incomplete", exit 2, with only check 4
not checked; a detected attack ends "failed", exit 1.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VERIFY_SUITE = Path(__file__).resolve().parent.parent / "verify"
if str(VERIFY_SUITE) not in sys.path:
    sys.path.insert(0, str(VERIFY_SUITE))

import publishing  # noqa: E402
from publishing import address_of, state_document  # noqa: E402
from verify_fixtures import *  # noqa: E402, F403  (the fixtures: pytest finds them by name)

from tracker.documents.canonical import canonical_json  # noqa: E402
from tracker.documents.facts import Document  # noqa: E402

EXIT_FAILED, EXIT_INCOMPLETE = 1, 2


def verify(verify_command, published, *options):
    return verify_command(published.url, "--contract", published.tracker.address, "--timeout", "3", *options)


def test_the_honest_protocol_passes_every_check_it_can_make(verify_command, publish_execution, victim):
    """The baseline the attacks below start from."""
    outcome = verify(verify_command, publish_execution(victim))
    assert outcome.exit_code == EXIT_INCOMPLETE and outcome.failed_checks == []
    assert [item["check"] for item in outcome.data["results"] if item["ok"] is None] == ["ens"]


def test_a_new_instance_registered_with_another_instances_state_documents(
    verify_command, publish_execution, victim, tmp_path, serve
):
    """Z is registered (by the same owner) with V's state ids: every document hashes right and is
    registered, at the right seq, for Z. Each says it belongs to V."""
    v = publish_execution(victim)
    z_documents = publishing.make_execution("instance-z", 0)
    z_documents.states = list(v.execution.states)
    root = tmp_path / "z"
    root.mkdir()
    z = publishing.publish(root, serve(root), v.tracker, victim, z_documents)
    outcome = verify(verify_command, z)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == ["states"]
    says = f"state document names instance {v.execution.instance_id[:10]}…, not the protocol's {z.execution.instance_id[:10]}…"
    assert outcome.failing() == [(position, says) for position in range(4)]
    assert outcome.check("states")["reason"] == "4 of 4 states failed (positions 0, 1, 2, 3)"


def test_a_state_document_that_says_another_seq(verify_command, publish_execution, victim):
    published = publish_execution(victim, states=2)
    instance = published.execution.instance_id
    seventh = state_document(instance, 7, published.execution.state_ids[1])
    published.add_documents([seventh])
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == ["states"]
    assert outcome.failing() == [(2, "state document says seq 7, listed at position 2")]


def test_a_state_document_with_a_wrong_previous_state(verify_command, publish_execution, victim):
    published = publish_execution(victim, states=2)
    ids = published.execution.state_ids
    skipping = state_document(published.execution.instance_id, 2, ids[0])  # names state 0, not state 1
    published.add_documents([skipping])
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.failing() == [
        (2, f"state document names previous state {ids[0][:10]}…, the state listed before it is {ids[1][:10]}…")
    ]


def test_a_state_listed_twice(verify_command, publish_execution, victim):
    """The same registered document at positions 0 and 2 (the chain registered it twice, too)."""
    published = publish_execution(victim, states=2)
    first = published.execution.states[0]
    published.add_documents([first])
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == ["states"]
    [(position, reason)] = outcome.failing()
    assert position == 2
    assert reason.startswith("state document says seq 0, listed at position 2; ")
    assert reason.endswith("; listed twice (also at position 0)")


def test_a_state_document_that_is_not_canonical(verify_command, publish_execution, victim):
    """The same facts pretty-printed: another id, so nothing our tracker would publish."""
    published = publish_execution(victim, states=1)
    facts = json.loads(state_document(published.execution.instance_id, 1, published.execution.state_ids[0]).content)
    published.add_documents([Document(json.dumps(facts, indent=1, sort_keys=True).encode())])
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.failing() == [(1, "state document is not in canonical JSON (re-encoding it gives other bytes)")]


def test_a_state_document_of_another_kind(verify_command, publish_execution, victim):
    published = publish_execution(victim, states=0)
    end = publishing.end_document(published.execution, 0, "SUCCEEDED", 0)
    published.add_documents([end])
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.failing() == [(0, "state document is a document of kind 'end', listed as the state document")]


def test_a_terminated_failed_instance_whose_protocol_leaves_the_end_out(verify_command, publish_execution, victim):
    published = publish_execution(victim)
    end = published.end("FAILED", final=True, listed=False)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == ["model_instance"]
    block = outcome.data["results"][-1]["reason"].split(" in block ")[1].split(" ")[0]
    assert outcome.check("model_instance")["reason"] == (
        "1 of 1 attempt ends failed; the instance is final on chain "
        f"(terminated in block {block} with end document {end.id[:10]}…), but the protocol lists no final end document"
    )
    assert outcome.failing("attempt") == [
        (
            0,
            f"the chain recorded the termination in block {block} with end document {end.id[:10]}…; the protocol does not list it",
        )
    ]
    assert outcome.data["status"] == "final"


def test_an_attempt_end_the_protocol_leaves_out(verify_command, publish_execution, victim):
    """A failed attempt hidden, the redrive's success shown: the chain has both ends."""
    published = publish_execution(victim)
    published.end("FAILED", final=False, listed=False)
    published.add_states(1, attempt=1)
    published.end("SUCCEEDED", final=True, attempt=1)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == ["model_instance"]
    ended = outcome.rows("attempt")[0]
    assert outcome.failing("attempt") == [
        (
            0,
            f"the chain recorded the end of attempt 0 in block {ended['reason'].split(' in block ')[1].split(' ')[0]} "
            f"with end document {ended['end'][:10]}…; the protocol does not list it",
        )
    ]
    assert [(row["attempt"], row["final"], row["ok"]) for row in outcome.rows("attempt")] == [
        (0, False, False),
        (1, True, True),
    ]


def test_an_end_document_that_disagrees_with_the_chain(verify_command, publish_execution, victim):
    """Registered and listed, but it claims 3 states and another last state where the end pinned 4."""
    published = publish_execution(victim)
    lying = publishing.end_document(published.execution, 0, "SUCCEEDED", 3)
    published.end("SUCCEEDED", final=True, document=lying)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == ["model_instance"]
    assert outcome.failing("attempt") == [(0, "end document says 3 states, the end pinned 4")]


def test_a_success_reported_as_a_redrivable_end(verify_command, publish_execution, victim):
    """endAttempt with a SUCCEEDED end document: the chain keeps it open, which only a failure allows."""
    published = publish_execution(victim)
    published.end("SUCCEEDED", final=False)
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.failing("attempt") == [
        (
            0,
            "end document says SUCCEEDED, but the chain records this end as not final (only a failed, timed out "
            "or aborted execution can be redriven)",
        )
    ]


def test_a_protocol_naming_an_execution_its_instance_document_does_not_describe(
    verify_command, publish_execution, victim
):
    """The execution id the chain is read at must be the one the instance document gives."""
    published = publish_execution(victim)
    other = publish_execution(victim, label="another run")
    published.protocol.execution_id = other.execution.execution_id
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    assert "model_instance" in outcome.failed_checks
    assert outcome.check("model_instance")["reason"].startswith(
        f"protocol names execution {other.execution.execution_id[:10]}…, the instance document's ARN and start "
        f"date give {published.execution.execution_id[:10]}…"
    )


def test_documents_in_the_prototypes_format_are_never_passed(verify_command, publish_execution, victim):
    """Readable, hashing right and registered, but with no instance, seq or previous state to
    compare: "not checked", exit 2, never passed."""
    published = publish_execution(victim, states=0)
    published.add_documents([Document(canonical_json({"state": "Hello", "time": 1678443257}))])
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_INCOMPLETE and outcome.failed_checks == []
    [row] = outcome.rows()
    assert row["ok"] is None and row["reason"].endswith(
        'content not checked: not in this project\'s format (no "kind")'
    )


def test_states_listed_as_the_publishers_that_another_account_registered(
    verify_command, publish_execution, victim, attacker
):
    """The attacker's operator key registered them; the protocol says the owner did."""
    published = publish_execution(victim, states=1)
    published.tracker.contract.setOperator(attacker.address, True, sender=victim)
    published.add_states(1, sender=attacker)
    published.protocol.instance_protocol[1].client_address = address_of(victim)
    published.write_protocol()
    outcome = verify(verify_command, published)
    assert outcome.exit_code == EXIT_FAILED
    tx = published.protocol.instance_protocol[1].transaction_hash
    assert outcome.failing() == [
        (1, f"client_address 0x{address_of(victim)} is not 0x{address_of(attacker)}, who sent transaction {tx[:10]}…")
    ]
