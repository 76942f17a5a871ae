"""`ape run verify` and `--follow` as a user runs them, in-process on ape's local chain."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from publishing import address_of, make_execution, publish, register_certificate
from verify_fixtures import network_choice

from tracker.verify.follow import follow_instance
from tracker.verify.locate import ProtocolNotFoundError, locate_protocol
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
    return CliRunner(mix_stderr=False).invoke(cli, [*args, "--network", network_choice()], catch_exceptions=False)


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
    assert data["owner"] == published.owner_address and data["execution"] == published.execution.execution_id
    assert (data["status"], data["mode"], data["contract_source"]) == ("running", "direct", "given")


def test_json_output_lists_attempt_ends(verify_cli, published):
    end = published.end("SUCCEEDED", final=True)
    result = run(verify_cli, published.url, "--contract", published.tracker.address, "--json")
    data = json.loads(result.stdout)
    [attempt] = [item for item in data["results"] if item["check"] == "attempt"]
    assert attempt == {
        "check": "attempt",
        "attempt": 0,
        "end": end.id,
        "final": True,
        "ok": True,
        "reason": attempt["reason"],
    }
    assert data["status"] == "final"


def test_a_tampered_protocol_exits_1_with_the_failing_check_in_the_table(verify_cli, published):
    path = published.root / "documents" / f"{published.execution.state_ids[0]}.json"
    path.write_bytes(path.read_bytes().replace(b"S0", b"S9"))
    result = run(verify_cli, published.url, "--contract", published.tracker.address)
    assert result.exit_code == 1
    assert "2. states registered in order" in result.stdout and "FAIL" in result.stdout
    assert "given with --contract, not the canonical address" in result.stdout
    assert "verdict: FAILED" in result.stdout


def test_url_and_instance_together_are_refused(verify_cli):
    result = run(verify_cli, "https://127.0.0.1:1/x.json", "--instance", "ab" * 32)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: give either a protocol URL or --instance ID"


def test_instance_without_owner_is_refused(verify_cli):
    result = run(verify_cli, "--instance", "ab" * 32)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: --instance needs --owner: records are kept per owner"


def test_plain_http_url_is_refused(verify_cli):
    result = run(verify_cli, "http://127.0.0.1:1/x.json")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: the protocol URL must be https://, got 'http://127.0.0.1:1/x.json'"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--timeout", "-1", "Invalid value for '--timeout': -1.0 is not in the range 0<x<=86400."),
        ("--timeout", "0", "Invalid value for '--timeout': 0.0 is not in the range 0<x<=86400."),
        ("--total-timeout", "nan", "Invalid value for '--total-timeout': 'nan' is not a number of seconds"),
        ("--max-bytes", "0", "Invalid value for '--max-bytes': 0 is not in the range x>=1."),
        ("--max-bytes", "-5", "Invalid value for '--max-bytes': -5 is not in the range x>=1."),
        ("--max-entries", "0", "Invalid value for '--max-entries': 0 is not in the range x>=1."),
        ("--concurrency", "0", "Invalid value for '--concurrency': 0 is not in the range 1<=x<=256."),
        (
            "--poll-interval",
            "-2",
            "Invalid value for '--poll-interval' / '--poll': -2.0 is not in the range 0<x<=86400.",
        ),
    ],
)
def test_option_values_out_of_range_are_refused_by_click(verify_cli, option, value, message):
    result = run(verify_cli, "https://127.0.0.1:1/x.json", option, value)
    assert result.exit_code == 2  # click's usage error
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_instance_on_a_chain_without_ens_is_one_clear_error(verify_cli, published):
    result = run(
        verify_cli,
        "--instance",
        published.execution.instance_id,
        "--owner",
        published.owner_address,
        "--contract",
        published.tracker.address,
    )
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == "Error: no ENS registry on this network: give the protocol URL instead of --instance"
    )


def test_unknown_instance_is_one_clear_error(published, other):
    with pytest.raises(ProtocolNotFoundError) as error:
        locate_protocol(published.tracker, published.execution.instance_id, address_of(other))
    assert str(error.value) == (
        f"no instance with instance document {published.execution.instance_id} is registered under "
        f"0x{address_of(other)} on contract {published.tracker.address}"
    )


def test_malformed_instance_id_is_one_clear_error(verify_cli, published):
    result = run(
        verify_cli, "--instance", "xyz", "--owner", published.owner_address, "--contract", published.tracker.address
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: instance id must be 64 hex characters, got 'xyz'"


def test_follow_verifies_each_new_state_as_it_is_registered(published):
    execution = published.execution
    follower = follow_instance(
        published.url,
        published.tracker,
        published.owner_address,
        execution.execution_id,
        VerifyOptions(timeout=2.0),
        poll_seconds=0.05,
        publish_grace_seconds=0.3,
        max_states=3,
        known_seqs=range(4),
    )
    published.add_states(2)
    published.add_states(1, publish=False)  # registered but never listed
    broken = published.root / "documents" / f"{execution.state_ids[5]}.json"
    broken.write_bytes(broken.read_bytes() + b" ")
    results = list(follower)
    assert [(r.seq, r.ok) for r in results] == [(4, True), (5, False), (6, False)]
    assert results[1].reason.startswith("state document hashes to ")
    assert results[2].reason == "registered on chain but not in the protocol after 0.3 s"


@pytest.fixture
def nothing_recorded(monkeypatch, tmp_path):
    """A project directory with no recorded deployment (TRACKER_PROJECT points the lookup there)."""
    monkeypatch.setenv("TRACKER_PROJECT", str(tmp_path / "empty-project"))


def test_without_a_contract_the_protocols_contract_is_never_used(verify_cli, published, nothing_recorded):
    """No code at the canonical address and no --contract: the contract the protocol names is
    ignored; documents are still checked, the chain checks are not, exit 2."""
    result = run(verify_cli, published.url, "--json", "--timeout", "3")
    data = json.loads(result.stdout)
    assert result.exit_code == 2 and data["verdict"] == "incomplete" and data["contract"] is None
    results = {item["check"]: item for item in data["results"] if item["check"] != "state"}
    assert results["protocol_tls"]["ok"] is True
    assert results["states"]["ok"] is None
    assert results["states"]["reason"].startswith("not checked: no InstanceTracker at the canonical address 0x")
    assert [item["ok"] for item in data["results"] if item["check"] == "state"] == [None] * 4


def test_the_canonical_contract_is_found_without_contract_option(verify_cli, tmp_path, serve, owner, monkeypatch):
    from tracker.identity.deploy import deploy_canonical

    monkeypatch.setenv("TRACKER_PROJECT", str(tmp_path / "project"))
    canonical = deploy_canonical(owner).contract
    root = tmp_path / "canonical"
    root.mkdir()
    server = serve(root)
    register_certificate(canonical, owner, server.fingerprint)
    published = publish(root, server, canonical, owner, make_execution("canonical", 3))
    result = run(verify_cli, published.url, "--json")
    data = json.loads(result.stdout)
    assert data["contract_source"] == "canonical" and data["contract"] == canonical.address.lower()[2:]
    assert [item["ok"] for item in data["results"]][:3] == [True, True, True]
