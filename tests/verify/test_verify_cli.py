"""`ape run verify` and `--follow` as a user runs them, in-process on ape's local chain."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker.documents.facts import StateFacts
from tracker.documents.ids import sha256_hex
from tracker.verify.follow import follow_instance
from tracker.verify.locate import locate_protocol
from tracker.verify.report import VerifyOptions

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"verify_tests_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cli


@pytest.fixture(scope="module")
def verify_cli():
    return load_script("verify")


def run(cli, *args: str):
    return CliRunner(mix_stderr=False).invoke(cli, list(args), catch_exceptions=False)


def test_json_output_has_one_object_per_check_and_state(verify_cli, published):
    result = run(verify_cli, published.url, "--contract", published.tracker.address, "--json", "--timeout", "3")
    data = json.loads(result.stdout)
    assert data["verdict"] == "incomplete" and result.exit_code == 2  # no ENS on ape's local chain
    checks = [(item["check"], item["ok"]) for item in data["results"]]
    assert checks == [
        ("protocol_tls", True),
        ("states", True),
        ("model_instance", True),
        ("ens", None),
        ("certificate", True),
        *[("state", True)] * 4,
    ]
    assert all(set(item) >= {"check", "ok", "reason"} for item in data["results"])


def test_a_tampered_protocol_exits_1_with_the_failing_check_in_the_table(verify_cli, published):
    path = published.root / "documents" / f"{published.execution.state_ids[0]}.json"
    path.write_bytes(path.read_bytes().replace(b"S0", b"S9"))
    result = run(verify_cli, published.url, "--contract", published.tracker.address)
    assert result.exit_code == 1
    assert "2. states registered in order" in result.stdout and "FAIL" in result.stdout
    assert "verdict: FAILED" in result.stdout


def test_url_and_instance_together_are_refused(verify_cli):
    result = run(verify_cli, "https://127.0.0.1:1/x.json", "--instance", "ab" * 32)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: give either a protocol URL or --instance ID"


def test_plain_http_url_is_refused(verify_cli):
    result = run(verify_cli, "http://127.0.0.1:1/x.json")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: the protocol URL must be https://, got 'http://127.0.0.1:1/x.json'"


def test_instance_on_a_chain_without_ens_is_one_clear_error(verify_cli, published):
    result = run(verify_cli, "--instance", published.execution.instance_id, "--contract", published.tracker.address)
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == "Error: no ENS registry on this network: give the protocol URL instead of --instance"
    )


def test_unknown_instance_is_one_clear_error(published):
    from tracker.verify.locate import ProtocolNotFoundError

    with pytest.raises(ProtocolNotFoundError) as error:
        locate_protocol(published.tracker, "cd" * 32)
    assert str(error.value) == f"instance {'cd' * 32} is not registered on contract {published.tracker.address}"


def _next_states(published, count: int) -> list[bytes]:
    previous = published.execution.state_ids[-1]
    documents = []
    for offset in range(count):
        seq = len(published.execution.states) + offset
        document = StateFacts(
            published.execution.instance_id,
            seq,
            previous,
            seq + 2,
            "PassStateEntered",
            f"S{seq}",
            1_700_000_000_000 + seq,
        ).document()
        documents.append(document.content)
        previous = document.id
    return documents


def test_follow_verifies_each_new_state_as_it_is_registered(published):
    from ape import chain

    execution = published.execution
    follower = follow_instance(
        published.url,
        published.tracker,
        execution.instance_id,
        VerifyOptions(timeout=2.0),
        poll_seconds=0.05,
        publish_grace_seconds=0.3,
        max_states=3,
        known_seqs=range(4),
    )
    new = _next_states(published, 3)
    new_ids = [sha256_hex(content) for content in new]
    receipt = published.tracker.send_batch([published.tracker.register_states_call(execution.instance_id, 4, new_ids)])
    timestamp = int(chain.blocks[receipt.block_number].timestamp)
    template = published.protocol.instance_protocol[0]
    for seq, content in zip((4, 5), new[:2]):  # the third is registered but never published
        state_id = published.write_document(content if seq == 4 else content + b" ")
        published.protocol.instance_protocol.append(
            dataclasses.replace(
                template,
                state_hash=sha256_hex(content),
                seq=seq,
                block_nr=int(receipt.block_number),
                timestamp=timestamp,
                transaction_hash=str(receipt.txn_hash).lower()[2:],
                state_data=published.document_url(state_id),
            )
        )
    published.write_protocol()
    results = list(follower)
    assert [(r.seq, r.ok) for r in results] == [(4, True), (5, False), (6, False)]
    assert results[1].reason.startswith("state document hashes to ")
    assert results[2].reason == "registered on chain but not in the protocol after 0.3 s"


@pytest.fixture
def nothing_recorded(monkeypatch, tmp_path):
    """A project directory with no recorded deployment (TRACKER_PROJECT points the lookup there)."""
    monkeypatch.setenv("TRACKER_PROJECT", str(tmp_path / "empty-project"))


def test_without_a_recorded_contract_the_protocols_contract_is_used(verify_cli, published, nothing_recorded):
    result = run(verify_cli, published.url, "--json", "--timeout", "3")
    data = json.loads(result.stdout)
    assert [item["ok"] for item in data["results"][:3]] == [True, True, True]


def test_without_a_contract_and_an_unreachable_protocol_is_one_clear_error(verify_cli, published, nothing_recorded):
    url = published.url
    published.server.stop()
    result = run(verify_cli, url)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: no InstanceTracker recorded for this chain, and the protocol cannot be read to find one "
        f"(cannot fetch {url}: Connection refused): pass --contract ADDRESS"
    )


def test_malformed_instance_id_is_one_clear_error(verify_cli, published):
    result = run(verify_cli, "--instance", "xyz", "--contract", published.tracker.address)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: instance id must be 64 hex characters, got 'xyz'"
