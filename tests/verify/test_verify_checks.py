"""The five checks against a real execution on ape's local chain, served over real TLS on loopback,
and each tampering detected and named by the check that fails."""

from __future__ import annotations

import dataclasses
import json

from publishing import address_of, state_document

from tracker.documents.ids import sha256_hex
from tracker.verify.report import (
    CHECK_CERTIFICATE,
    CHECK_ENS,
    CHECK_MODEL,
    CHECK_STATES,
    CHECK_TLS,
    STATUS_ENDED,
    STATUS_FINAL,
    STATUS_RUNNING,
    VerifyOptions,
)
from tracker.verify.verifier import verify_protocol

FAST = VerifyOptions(timeout=2.0)


def ok_map(report):
    return {check.check: check.ok for check in report.checks}


def failing(report):
    """The checks that failed, and the failing state rows as (position, reason)."""
    return report.failed_checks, [(s.position, s.reason) for s in report.states if s.ok is False]


def test_untampered_execution_passes_every_chain_check(published):
    report = verify_protocol(published.url, published.tracker, FAST)
    assert ok_map(report)[CHECK_TLS] is True
    assert ok_map(report)[CHECK_STATES] is True, report.check(CHECK_STATES).reason
    assert ok_map(report)[CHECK_MODEL] is True, report.check(CHECK_MODEL).reason
    assert ok_map(report)[CHECK_CERTIFICATE] is True, report.check(CHECK_CERTIFICATE).reason
    assert [state.ok for state in report.states] == [True] * 4
    assert report.owner == published.owner_address
    assert report.execution_id == published.execution.execution_id
    assert (report.status, report.mode) == (STATUS_RUNNING, "direct")
    assert report.contract_source == "given"  # the test contract is not at the canonical address
    # ape's local chain has no ENS: check 4 is "not checked", so the report is incomplete, never passed
    assert report.check(CHECK_ENS).ok is None
    assert report.check(CHECK_ENS).reason == "not checked: no ENS registry on this network"
    assert report.verdict == "incomplete" and not report.passed


def test_state_document_changed_by_one_byte_fails_check_2_for_that_state(published):
    state_id = published.execution.state_ids[2]
    path = published.root / "documents" / f"{state_id}.json"
    content = bytearray(path.read_bytes())
    content[-2] ^= 0x01
    path.write_bytes(bytes(content))
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [(2, f"state document hashes to {sha256_hex(bytes(content))[:10]}…, not to its id {state_id[:10]}…")]


def test_state_missing_on_chain_fails_check_2(publish_execution, owner):
    published = publish_execution(owner, registered=3)
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [(3, f"not registered on chain for this instance of owner 0x{published.owner_address}")]
    assert "chain has 3 registered states, the protocol lists 4" in report.check(CHECK_STATES).reason


def test_two_states_swapped_fail_check_2_as_out_of_order(published):
    entries = published.protocol.instance_protocol
    ids = published.execution.state_ids
    entries[1], entries[2] = (dataclasses.replace(entries[2], seq=1), dataclasses.replace(entries[1], seq=2))
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [
        (
            1,
            f"state document says seq 2, listed at position 1; state document names previous state {ids[1][:10]}…, "
            f"the state listed before it is {ids[0][:10]}…; registered at seq 2, listed at position 1: out of order",
        ),
        (
            2,
            f"state document says seq 1, listed at position 2; state document names previous state {ids[0][:10]}…, "
            f"the state listed before it is {ids[2][:10]}…; registered at seq 1, listed at position 2: out of order",
        ),
        (
            3,
            f"state document names previous state {ids[2][:10]}…, the state listed before it is {ids[1][:10]}…",
        ),
    ]
    assert "do not hash to the contract's head" in report.check(CHECK_STATES).reason


def test_extra_state_in_the_protocol_fails_check_2(published):
    [extra] = published.execution.extend(1)
    published.write_document(extra.content)
    last = published.protocol.instance_protocol[-1]
    published.protocol.instance_protocol.append(
        dataclasses.replace(last, state_hash=extra.id, seq=4, state_data=published.document_url(extra.id))
    )
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [(4, f"not registered on chain for this instance of owner 0x{published.owner_address}")]
    assert "chain has 4 registered states, the protocol lists 5" in report.check(CHECK_STATES).reason


def test_wrong_block_transaction_and_timestamp_fields_fail_check_2(published):
    entries = published.protocol.instance_protocol
    good = entries[0]
    entries[0] = dataclasses.replace(good, block_nr=good.block_nr + 1)
    entries[1] = dataclasses.replace(entries[1], transaction_hash="ab" * 32)
    entries[3] = dataclasses.replace(entries[3], timestamp=good.timestamp - 60)
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [
        (0, f"block_nr {good.block_nr + 1} but registered in block {good.block_nr}"),
        (1, f"transaction_hash {'ab' * 5}… but registered by {good.transaction_hash[:10]}…"),
        (3, f"timestamp {good.timestamp - 60} but block {good.block_nr} has {good.timestamp}"),
    ]


def test_client_address_other_than_the_sender_fails_check_2(published, other):
    entries = published.protocol.instance_protocol
    entries[0] = dataclasses.replace(entries[0], client_address=address_of(other))
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    tx = entries[0].transaction_hash
    assert rows == [
        (0, f"client_address 0x{address_of(other)} is not 0x{published.owner_address}, who sent transaction {tx[:10]}…")
    ]


def test_states_an_approved_operator_registered_pass_and_say_so(published, operator):
    published.tracker.contract.setOperator(operator.address, True, sender=published.owner)
    published.add_states(2, sender=operator)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [], [c.to_json() for c in report.checks]
    assert [s.ok for s in report.states] == [True] * 6
    assert report.states[4].reason.endswith(f"by operator 0x{address_of(operator)} of 0x{published.owner_address}")


def test_instance_claimed_for_another_model_fails_checks_2_and_3(published):
    other_model = b'{"StartAt":"Other","States":{"Other":{"Type":"Succeed"}}}'
    other_id = published.write_document(other_model)
    published.tracker.send([published.tracker.register_model_call(published.owner_address, other_id)])
    published.protocol.model_hash = other_id
    published.protocol.model_data = published.document_url(other_id)
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_STATES, CHECK_MODEL]
    model_id = published.execution.model_id
    assert (
        report.check(CHECK_STATES).reason
        == "the listed states do not hash to the contract's head (order or content differs)"
    )
    assert report.check(CHECK_MODEL).reason == (
        f"instance document names model {model_id[:10]}…, the protocol {other_id[:10]}…; "
        f"the instance was registered with model {model_id[:10]}…, not {other_id[:10]}…"
    )


def test_model_document_changed_fails_check_3(published):
    path = published.root / "documents" / f"{published.execution.model_id}.json"
    path.write_bytes(path.read_bytes() + b" ")
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_MODEL]
    assert report.check(CHECK_MODEL).reason.startswith("model document hashes to ")


def test_certificate_other_than_the_registered_one_fails_check_5(published, serve):
    impostor = serve(published.root, tls_name="impostor-tls")
    assert impostor.fingerprint != published.server.fingerprint
    # The documents stay on the first server, another loopback origin: allowed only on request.
    options = VerifyOptions(timeout=2.0, allow_private_hosts=True)
    report = verify_protocol(impostor.url(f"{published.execution.instance_id}.json"), published.tracker, options)
    assert report.failed_checks == [CHECK_CERTIFICATE]
    assert report.check(CHECK_CERTIFICATE).reason == (
        f"server presented certificate sha256 {impostor.fingerprint[:10]}…, "
        f"0x{published.owner_address} registered {published.server.fingerprint[:10]}…"
    )


def test_no_certificate_registered_fails_check_5(publish_execution, other):
    published = publish_execution(other, certificate=False)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_CERTIFICATE]
    assert report.check(CHECK_CERTIFICATE).reason == f"0x{address_of(other)} has registered no certificate fingerprint"


def test_server_down_fails_check_1_and_nothing_else_is_checked(published):
    url = published.url
    published.server.stop()
    report = verify_protocol(url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_TLS]
    assert report.check(CHECK_TLS).reason == f"cannot fetch {url}: Connection refused"
    assert [c.ok for c in report.checks[1:]] == [None, None, None, None]
    assert report.check(CHECK_STATES).reason == "not checked: the protocol could not be read"
    assert report.verdict == "failed"


def test_server_too_slow_fails_check_1_with_a_timeout(stalled_origin, tracker):
    url = f"{stalled_origin}/{'a' * 64}.json"
    report = verify_protocol(url, tracker, VerifyOptions(timeout=0.5))
    assert report.failed_checks == [CHECK_TLS]
    assert report.check(CHECK_TLS).reason == f"timed out after 0.5 s fetching {url}"
    assert report.seconds < 5


def test_document_over_the_size_limit_fails_its_state(published):
    state_id = published.execution.state_ids[1]
    size = len(published.execution.states[1].content)
    report = verify_protocol(published.url, published.tracker, VerifyOptions(timeout=2.0, max_document_bytes=size - 1))
    over = [(s.position, s.reason) for s in report.states if s.ok is False]
    assert CHECK_STATES in report.failed_checks
    expected = f"state document: {published.document_url(state_id)} is {size} bytes, over the size limit of {size - 1}"
    assert (1, expected) in over


def test_protocol_over_the_size_limit_fails_check_1(published):
    size = len(published.protocol.to_bytes())
    report = verify_protocol(published.url, published.tracker, VerifyOptions(timeout=2.0, max_protocol_bytes=100))
    assert report.failed_checks == [CHECK_TLS]
    assert report.check(CHECK_TLS).reason == f"{published.url} is {size} bytes, over the size limit of 100"


def test_malformed_json_protocol_fails_check_1(published):
    published.write_protocol(b'{"model_hash": "00", "instance_protocol": [,]}')
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_TLS]
    assert report.check(CHECK_TLS).reason == "the protocol is not valid JSON: Expecting value at line 1 column 44"


def test_protocol_missing_a_field_fails_check_1(published):
    data = published.protocol.to_json()
    del data["instance_hash"]
    published.write_protocol(data)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.check(CHECK_TLS).reason == "instance protocol lacks the field 'instance_hash'"


def test_missing_state_document_fails_its_state(published):
    state_id = published.execution.state_ids[0]
    (published.root / "documents" / f"{state_id}.json").unlink()
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.states[0].reason == f"state document: HTTP 404 Not Found for {published.document_url(state_id)}"


def test_plain_http_url_fails_check_1(tracker):
    report = verify_protocol("http://127.0.0.1:9/x.json", tracker, FAST)
    assert report.check(CHECK_TLS).ok is False
    assert report.check(CHECK_TLS).reason == "not an https URL: http://127.0.0.1:9/x.json"


PROTOTYPE_ENTRY_FIELDS = (
    "event_type",
    "state_hash",
    "timestamp",
    "block_nr",
    "client_address",
    "transaction_hash",
    "state_data",
)


def test_prototype_protocol_format_without_additions_is_read_as_is(published):
    """A protocol as the published prototype wrote it: only its seven entry fields, no owner, no
    execution id (the owner is the one client address, the execution id comes from the instance document)."""
    data = published.protocol.to_json()
    prototype = {key: data[key] for key in ("model_hash", "instance_hash", "model_data", "instance_data")}
    prototype["instance_protocol"] = [
        {key: entry[key] for key in PROTOTYPE_ENTRY_FIELDS} for entry in data["instance_protocol"]
    ]
    published.write_protocol(json.dumps(prototype, indent=1).encode())
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == []
    assert [s.seq for s in report.states] == [0, 1, 2, 3] and all(s.ok for s in report.states)
    assert report.execution_id == published.execution.execution_id and report.owner == published.owner_address


def test_state_documents_in_the_prototypes_format_are_read_but_their_content_not_checked(publish_execution, owner):
    """Documents without this project's fields hash right and are registered, but what they say
    cannot be compared with their position: each row is "not checked", never passed."""
    published = publish_execution(owner, states=0)
    documents = [json.dumps({"state": f"S{i}", "entered": 1678443257 + i}).encode() for i in range(2)]
    ids = [published.write_document(content) for content in documents]
    client = published.tracker
    sent = client.send([client.register_states_call(published.owner_address, published.execution.execution_id, 0, ids)])
    from tracker.documents.facts import Document

    published.execution.states = [Document(content) for content in documents]
    published.protocol.instance_protocol = published.entries_for(sent, 0, 2, owner)
    published.refresh()
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == []
    assert report.check(CHECK_STATES).ok is True
    assert [s.ok for s in report.states] == [None, None]
    assert report.states[0].reason == (
        f'document ok, seq 0, block {sent.block_number}; content not checked: not in this project\'s format (no "kind")'
    )
    assert report.verdict == "incomplete"


def test_without_a_chain_documents_are_checked_and_chain_checks_are_not(published):
    report = verify_protocol(published.url, None, FAST, connected=False)
    assert report.check(CHECK_TLS).ok is True
    assert [c.ok for c in report.checks[1:]] == [None, None, None, None]
    assert report.check(CHECK_ENS).reason == "not checked: no chain reachable"
    assert report.check(CHECK_CERTIFICATE).reason == (
        f"not checked: no chain reachable (presented sha256 {published.server.fingerprint})"
    )
    assert all(s.ok is None for s in report.states) and report.verdict == "incomplete"


def test_without_a_contract_documents_and_their_content_are_still_checked(published):
    """Connected, but no contract known: every document against its id and what it says, per state."""
    entries = published.protocol.instance_protocol
    entries[1], entries[2] = entries[2], entries[1]
    published.write_protocol()
    report = verify_protocol(published.url, None, FAST, no_contract="no InstanceTracker here")
    assert report.check(CHECK_STATES).ok is False
    assert [s.ok for s in report.states] == [None, False, False, False]
    assert report.states[0].reason == "document ok; on-chain registration not checked"
    assert (
        report.check(CHECK_MODEL).reason
        == "not checked on chain: no InstanceTracker here (documents hash to their ids)"
    )
    assert report.check(CHECK_CERTIFICATE).ok is None


def test_one_call_per_state_mode_gives_the_same_verdicts(published):
    entries = published.protocol.instance_protocol
    entries[1], entries[2] = dataclasses.replace(entries[2], seq=1), dataclasses.replace(entries[1], seq=2)
    published.write_protocol()
    batched = verify_protocol(published.url, published.tracker, FAST)
    single = verify_protocol(published.url, published.tracker, VerifyOptions(timeout=2.0, batched=False))
    assert [c.to_json() for c in batched.checks] == [c.to_json() for c in single.checks]
    assert [s.to_json() for s in batched.states] == [s.to_json() for s in single.states]


# ------------------------------------------------------------------ anchored mode


def test_anchored_states_are_in_progress_until_an_end_pins_them(publish_execution, owner):
    published = publish_execution(owner, anchored=True)
    report = verify_protocol(published.url, published.tracker, FAST)
    root = published.protocol.instance_protocol[0].merkle_root
    assert [s.ok for s in report.states] == [True] * 4
    assert report.states[0].reason.startswith(f"document ok, anchored under {root[:10]}…, block ")
    assert report.check(CHECK_STATES).ok is None
    assert report.check(CHECK_STATES).reason.startswith("in progress: 4 anchored states, 0 of them pinned")
    assert (report.status, report.mode, report.verdict) == (STATUS_RUNNING, "anchored", "incomplete")
    published.end("SUCCEEDED", final=True)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [] and report.check(CHECK_STATES).ok is True
    assert report.check(CHECK_STATES).reason.startswith("4 anchored states in order, all pinned: count 4")
    assert report.status == STATUS_FINAL and [a.ok for a in report.attempts] == [True]


def test_a_merkle_proof_that_does_not_lead_to_the_root_fails_check_2(publish_execution, owner):
    published = publish_execution(owner, anchored=True)
    entry = published.protocol.instance_protocol[1]
    published.protocol.instance_protocol[1] = dataclasses.replace(
        entry, merkle_proof=list(reversed(entry.merkle_proof))
    )
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [(1, f"Merkle proof does not lead from (execution, state, seq 1) to root {entry.merkle_root[:10]}…")]


# ------------------------------------------------------------------ attempts, redrives, ends


def test_a_terminated_instance_passes_with_its_end_document(published):
    published.end("SUCCEEDED", final=True)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == []
    assert report.status == STATUS_FINAL
    assert report.check(CHECK_MODEL).reason.endswith("final (attempt 0, 4 states)")
    [attempt] = report.attempts
    assert (attempt.ok, attempt.final) == (True, True)
    assert attempt.reason.startswith("final: attempt 0 ended SUCCEEDED after 4 states, termination in block ")


def test_a_failed_attempt_then_a_redrive_then_the_final_end(published):
    """endAttempt keeps the instance open (ended, still redrivable); a redrive adds states of
    attempt 1; terminate makes it final. Every stage verifies, each with its status."""
    published.end("FAILED", final=False)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [], [c.to_json() for c in report.checks]
    assert (report.status, report.status_text) == (STATUS_ENDED, "ended, attempt 0, still redrivable")
    assert report.attempts[0].reason.startswith("not final: attempt 0 ended FAILED after 4 states")
    published.add_states(2, attempt=1)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [] and report.status == STATUS_RUNNING
    published.end("SUCCEEDED", final=True)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [] and report.status == STATUS_FINAL
    assert [(a.attempt, a.final, a.ok) for a in report.attempts] == [(0, False, True), (1, True, True)]


def test_a_state_of_the_wrong_attempt_fails(published):
    """After attempt 0 ended with 4 states, a state claiming attempt 0 cannot follow it."""
    published.end("FAILED", final=False)
    published.add_states(1, attempt=0)
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [
        (4, "state document says attempt 0, but by the chain's attempt ends seq 4 belongs to attempt 1 or later")
    ]


def test_an_end_document_changed_after_termination_fails_check_3(published):
    end = published.end("SUCCEEDED", final=True)
    (published.root / "documents" / f"{end.id}.json").write_bytes(end.content.replace(b"SUCCEEDED", b"FAILED"))
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_MODEL]
    assert report.check(CHECK_MODEL).reason == "1 of 1 attempt ends failed"
    assert report.attempts[0].reason.startswith("end document hashes to ")


def test_an_end_claimed_for_a_running_instance_fails_check_3(published):
    from publishing import end_document

    end = end_document(published.execution, 0, "SUCCEEDED", 4)
    published.write_document(end.content)
    listed = dataclasses.replace(published.protocol.instance_protocol[0])
    from tracker.documents.protocol import AttemptEntry

    published.protocol.attempts.append(
        AttemptEntry(
            0,
            end.id,
            published.document_url(end.id),
            4,
            published.execution.head(),
            listed.block_nr,
            listed.transaction_hash,
            listed.timestamp,
            True,
        )
    )
    published.protocol.final = True
    published.refresh()
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_MODEL]
    assert report.check(CHECK_MODEL).reason == (
        "1 of 1 attempt ends failed; the protocol says the instance is final, but it is open on chain"
    )
    assert report.attempts[0].reason == "the protocol lists the end of attempt 0, which the chain never recorded"


def test_a_state_document_listed_for_the_instance_it_names_passes_its_content_checks(published):
    """The content checks compare with the position: a correct document at its place passes them."""
    report = verify_protocol(published.url, published.tracker, FAST)
    assert all(row.reason.startswith("document ok, seq") for row in report.states)
    document = state_document(published.execution.instance_id, 0, "")
    assert document.id == published.execution.state_ids[0]
