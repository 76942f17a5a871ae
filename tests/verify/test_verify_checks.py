"""The five checks against a real execution on ape's local chain, served over real TLS on loopback,
and each tampering detected and named by the check that fails."""

from __future__ import annotations

import dataclasses
import json

from tracker.documents.ids import sha256_hex
from tracker.verify.report import CHECK_CERTIFICATE, CHECK_ENS, CHECK_MODEL, CHECK_STATES, CHECK_TLS, VerifyOptions
from tracker.verify.verifier import verify_protocol

FAST = VerifyOptions(timeout=2.0)


def ok_map(report):
    return {check.check: check.ok for check in report.checks}


def test_untampered_execution_passes_every_chain_check(published):
    report = verify_protocol(published.url, published.tracker, FAST)
    assert ok_map(report)[CHECK_TLS] is True
    assert ok_map(report)[CHECK_STATES] is True, report.check(CHECK_STATES).reason
    assert ok_map(report)[CHECK_MODEL] is True, report.check(CHECK_MODEL).reason
    assert ok_map(report)[CHECK_CERTIFICATE] is not False, report.check(CHECK_CERTIFICATE).reason
    assert [state.ok for state in report.states] == [True] * 4
    assert report.owner == str(published.owner.address).lower()[2:]
    # ape's local chain has no ENS: check 4 is "not checked", so the report is incomplete, never passed
    assert report.check(CHECK_ENS).ok is None
    assert report.check(CHECK_ENS).reason == "not checked: no ENS registry on this network"
    assert report.verdict == "incomplete" and not report.passed


def failing(report):
    """The checks that failed, and the failing state rows as (position, reason)."""
    return report.failed_checks, [(s.position, s.reason) for s in report.states if s.ok is False]


def test_state_document_changed_by_one_byte_fails_check_2_for_that_state(published):
    state_id = published.execution.state_ids[2]
    path = published.root / "documents" / f"{state_id}.json"
    content = bytearray(path.read_bytes())
    content[-2] ^= 0x01
    path.write_bytes(bytes(content))
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert len(rows) == 1 and rows[0][0] == 2
    assert rows[0][1] == f"state document hashes to {sha256_hex(bytes(content))[:10]}…, not to its id {state_id[:10]}…"


def test_state_missing_on_chain_fails_check_2(publish, owner):
    published = publish(owner, registered=3)
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [(3, "not registered on chain for this instance")]
    assert "chain has 3 registered states, the protocol lists 4" in report.check(CHECK_STATES).reason


def test_two_states_swapped_fail_check_2_as_out_of_order(published):
    entries = published.protocol.instance_protocol
    entries[1], entries[2] = (
        dataclasses.replace(entries[2], seq=1),
        dataclasses.replace(entries[1], seq=2),
    )
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [
        (1, "registered at seq 2, listed at seq 1: out of order"),
        (2, "registered at seq 1, listed at seq 2: out of order"),
    ]
    assert "do not hash to the contract's head" in report.check(CHECK_STATES).reason


def test_extra_state_in_the_protocol_fails_check_2(published):
    extra_content = b'{"kind":"state","note":"never registered"}'
    extra_id = published.write_document(extra_content)
    last = published.protocol.instance_protocol[-1]
    published.protocol.instance_protocol.append(
        dataclasses.replace(last, state_hash=extra_id, seq=4, state_data=published.document_url(extra_id))
    )
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [(4, "not registered on chain for this instance")]
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


def test_client_address_other_than_the_owner_fails_check_2(published, other):
    entries = published.protocol.instance_protocol
    entries[0] = dataclasses.replace(entries[0], client_address=str(other.address).lower()[2:])
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [
        (
            0,
            f"client_address {str(other.address).lower()} is neither the instance owner {str(published.owner.address).lower()} nor its operator",
        )
    ]


def test_client_address_of_an_approved_operator_passes(published, operator):
    published.tracker.contract.setOperator(operator.address, True, sender=published.owner)
    entries = published.protocol.instance_protocol
    entries[0] = dataclasses.replace(entries[0], client_address=str(operator.address).lower()[2:])
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [] and report.states[0].ok is True


def test_instance_claimed_for_another_model_fails_check_3(published):
    other_model = b'{"StartAt":"Other","States":{"Other":{"Type":"Succeed"}}}'
    other_id = published.write_document(other_model)
    published.tracker.send_batch([published.tracker.register_model_call(other_id)])
    published.protocol.model_hash = other_id
    published.protocol.model_data = published.document_url(other_id)
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_MODEL]
    model_id = published.execution.model_id
    assert report.check(CHECK_MODEL).reason == (
        f"instance document names model {model_id[:10]}…, the protocol {other_id[:10]}…; "
        f"instance belongs to model {model_id[:10]}… on chain, not to {other_id[:10]}…"
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
    report = verify_protocol(impostor.url(f"{published.execution.instance_id}.json"), published.tracker, FAST)
    assert report.failed_checks == [CHECK_CERTIFICATE]
    owner = str(published.owner.address).lower()
    assert report.check(CHECK_CERTIFICATE).reason == (
        f"server presented certificate sha256 {impostor.fingerprint[:10]}…, "
        f"{owner} registered {published.server.fingerprint[:10]}…"
    )


def test_no_certificate_registered_fails_check_5(publish, other):
    published = publish(other, register_certificate=False)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_CERTIFICATE]
    assert (
        report.check(CHECK_CERTIFICATE).reason
        == f"{str(other.address).lower()} has registered no certificate fingerprint"
    )


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
    size = len(published.execution.states[1])
    report = verify_protocol(published.url, published.tracker, VerifyOptions(timeout=2.0, max_document_bytes=size - 1))
    over = [(s.position, s.reason) for s in report.states if s.ok is False]
    assert CHECK_STATES in report.failed_checks
    limit = size - 1
    expected = f"state document: {published.document_url(state_id)} is {size} bytes, over the limit of {limit}"
    assert (1, expected) in over


def test_protocol_over_the_size_limit_fails_check_1(published):
    size = len(published.protocol.to_bytes())
    report = verify_protocol(published.url, published.tracker, VerifyOptions(timeout=2.0, max_protocol_bytes=100))
    assert report.failed_checks == [CHECK_TLS]
    assert report.check(CHECK_TLS).reason == f"{published.url} is {size} bytes, over the limit of 100"


def test_malformed_json_protocol_fails_check_1(published):
    published.write_protocol(b'{"model_hash": "00", "instance_protocol": [')
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_TLS]
    assert report.check(CHECK_TLS).reason.startswith("protocol is not valid JSON: Expecting value: line 1")


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


def test_prototype_format_without_seq_or_additions_is_read_as_is(published):
    """A protocol as the published prototype wrote it: only its seven entry fields, no additions."""
    data = published.protocol.to_json()
    prototype = {key: data[key] for key in ("model_hash", "instance_hash", "model_data", "instance_data")}
    prototype["instance_protocol"] = [
        {
            key: entry[key]
            for key in (
                "event_type",
                "state_hash",
                "timestamp",
                "block_nr",
                "client_address",
                "transaction_hash",
                "state_data",
            )
        }
        for entry in data["instance_protocol"]
    ]
    published.write_protocol(json.dumps(prototype, indent=1).encode())
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == []
    assert [s.seq for s in report.states] == [0, 1, 2, 3] and all(s.ok for s in report.states)


def test_without_a_chain_documents_are_checked_and_chain_checks_are_not(published):
    report = verify_protocol(published.url, None, FAST)
    assert report.check(CHECK_TLS).ok is True
    assert [c.ok for c in report.checks[1:]] == [None, None, None, None]
    assert report.check(CHECK_ENS).reason == "not checked: no chain reachable"
    assert report.check(CHECK_CERTIFICATE).reason == (
        f"not checked: no chain reachable (presented sha256 {published.server.fingerprint})"
    )
    assert all(s.ok is None for s in report.states) and report.verdict == "incomplete"


def test_one_call_per_state_mode_gives_the_same_verdicts(published):
    entries = published.protocol.instance_protocol
    entries[1], entries[2] = dataclasses.replace(entries[2], seq=1), dataclasses.replace(entries[1], seq=2)
    published.write_protocol()
    batched = verify_protocol(published.url, published.tracker, FAST)
    single = verify_protocol(published.url, published.tracker, VerifyOptions(timeout=2.0, batched=False))
    assert [c.to_json() for c in batched.checks] == [c.to_json() for c in single.checks]
    assert [s.to_json() for s in batched.states] == [s.to_json() for s in single.states]


def test_anchored_states_pass_with_their_merkle_proofs(publish, owner):
    published = publish(owner, anchored_by=owner)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == []
    root = published.protocol.instance_protocol[0].merkle_root
    assert [s.reason.split(",")[1].strip() for s in report.states] == [f"anchored under {root[:10]}…"] * 4


def test_a_merkle_proof_that_does_not_lead_to_the_root_fails_check_2(publish, owner):
    published = publish(owner, anchored_by=owner)
    entry = published.protocol.instance_protocol[1]
    published.protocol.instance_protocol[1] = dataclasses.replace(
        entry, merkle_proof=list(reversed(entry.merkle_proof))
    )
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    assert checks == [CHECK_STATES]
    assert rows == [(1, f"Merkle proof does not lead from (instance, state, seq 1) to root {entry.merkle_root[:10]}…")]


def test_a_root_anchored_by_a_stranger_fails_check_2(publish, owner, other):
    published = publish(owner, anchored_by=other)
    report = verify_protocol(published.url, published.tracker, FAST)
    checks, rows = failing(report)
    root = published.protocol.instance_protocol[0].merkle_root
    assert checks == [CHECK_STATES]
    reason = (
        f"root {root[:10]}… was anchored by {str(other.address).lower()}, "
        f"neither the owner {str(owner.address).lower()} nor its operator"
    )
    assert rows == [(position, reason) for position in range(4)]


def _terminate(published, end_content: bytes, on_chain: bool = True) -> str:
    end_id = published.write_document(end_content)
    if on_chain:
        tracker = published.tracker
        tracker.send_batch([tracker.register_states_and_terminate_call(published.execution.instance_id, 4, [], end_id)])
    published.protocol.end_hash = end_id
    published.protocol.end_data = published.document_url(end_id)
    published.write_protocol()
    return end_id


def test_a_terminated_instance_passes_with_its_end_document(published):
    _terminate(published, b'{"kind":"end","status":"SUCCEEDED"}')
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == []
    assert report.check(CHECK_MODEL).reason.endswith("instance of that model, ended with that end document")


def test_an_end_document_changed_after_termination_fails_check_3(published):
    end_id = _terminate(published, b'{"kind":"end","status":"SUCCEEDED"}')
    (published.root / "documents" / f"{end_id}.json").write_bytes(b'{"kind":"end","status":"FAILED"}')
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_MODEL]
    assert report.check(CHECK_MODEL).reason.startswith("end document hashes to ")


def test_an_end_claimed_for_a_running_instance_fails_check_3(published):
    _terminate(published, b'{"kind":"end","status":"SUCCEEDED"}', on_chain=False)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_MODEL]
    assert (
        report.check(CHECK_MODEL).reason
        == "the protocol has an end document but the instance is not terminated on chain"
    )
