"""`ape run track_execution` as the demo runs it: a moto server process reached through
AWS_ENDPOINT_URL, an anvil that outlives the tracker, and a tracker killed between batches."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from tracking_helpers import FAILING_STATES, SUCCEEDING_STATES, create_machine, run_execution
from web3 import Web3

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.chain.contract import instance_key
from tracker.dev.services import free_port
from tracker.tracking.build import build_documents
from tracker.tracking.checkpoints import store_path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
EXECUTIONS = 8


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.ConnectionError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout}s")


@pytest.fixture(scope="module")
def moto_server():
    port = free_port()
    process = subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "tracker.dev.sfn_emulation", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{url}/moto-api/").ok, 30, "moto server start")
        # the server-side switch for what mock_aws(config=...) does in-process
        requests.post(
            f"{url}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}
        ).raise_for_status()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def anvil(project):
    port = free_port()
    # one block per second, so that a run spans several blocks and can be killed between batches
    process = subprocess.Popen(
        [str(VENV_BIN / "anvil"), "--port", str(port), "--block-time", "1", "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        web3 = Web3(Web3.HTTPProvider(url))
        wait_until(web3.is_connected, 30, "anvil start")
        contract_type = project.InstanceTracker.contract_type
        tx = web3.eth.send_transaction(
            {"from": web3.eth.accounts[0], "data": contract_type.deployment_bytecode.bytecode}
        )
        address = web3.eth.wait_for_transaction_receipt(tx, timeout=30)["contractAddress"]
        abi = [item.model_dump(mode="json", by_alias=True) for item in contract_type.abi]
        yield url, web3.eth.contract(address=address, abi=abi)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def aws_server(moto_server, monkeypatch):
    for key, value in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    requests.post(f"{moto_server}/moto-api/reset").raise_for_status()
    return boto3.session.Session(region_name="us-east-1")


def tracker_command(anvil_url: str, address: str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        str(VENV_BIN / "ape"),
        "run",
        "track_execution",
        "--network",
        anvil_url,
        "--account",
        "TEST::0",
        "--contract",
        address,
        "--publish",
        str(tmp_path / "protocol"),
        "--state-dir",
        str(tmp_path / "state"),
        *extra,
    ]


def tracker_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}


def test_killed_between_batches_then_rerun_registers_exactly_once(aws_server, anvil, tmp_path):
    anvil_url, contract = anvil
    machine = create_machine(aws_server, "orders-cli")
    arns = [run_execution(aws_server, machine, f"cli-{i}", {"ok": i % 4 != 3}) for i in range(EXECUTIONS)]
    expected = {arn: (FAILING_STATES if i % 4 == 3 else SUCCEEDING_STATES) for i, arn in enumerate(arns)}
    # one transaction in flight at a time, so that the kill can land between two of them
    command = tracker_command(
        anvil_url, contract.address, tmp_path, machine, "--max-instances-per-tx", "2", "--max-in-flight", "1"
    )
    store = store_path(tmp_path / "state", 31337, contract.address)

    def checkpoints() -> int:
        if not store.exists():
            return 0
        with sqlite3.connect(store) as db:
            try:
                return db.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
            except sqlite3.OperationalError:  # the tracker created the file but not yet its tables
                return 0

    def checkpointed_states() -> int:
        with sqlite3.connect(store) as db:
            return sum(len(json.loads(body)["states"]) for (body,) in db.execute("SELECT body FROM checkpoints"))

    first = subprocess.Popen(command, cwd=ROOT, env=tracker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: checkpoints() >= 2, 90, "the first confirmed batch")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    done_before, states_before = checkpoints(), checkpointed_states()
    assert 2 <= done_before < EXECUTIONS, "the kill must land between batches"

    rerun = subprocess.run(
        [*command, "--json"], cwd=ROOT, env=tracker_env(), capture_output=True, text=True, timeout=180
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["executions"] == EXECUTIONS
    # a transaction the killed run had sent may have been mined after the kill: its states are
    # recovered from the chain, everything else is registered now, nothing twice
    total = sum(len(names) for names in expected.values())
    assert summary["states_registered"] + summary["states_recovered"] == total - states_before
    assert summary["gas_used"] > 0 or summary["states_registered"] == 0

    source = HistorySource(aws_server, Selection((machine,)))
    refs = {ref.execution_arn: ref for ref in source.list_executions()}
    registered = contract.events.StateRegistered.get_logs(from_block=0)
    seen = sorted((log["args"]["key"].hex(), log["args"]["seq"]) for log in registered)
    assert len(seen) == len(set(seen)), "a state was registered twice"
    wanted = []
    owner = contract.w3.eth.accounts[0]  # TEST::0, the tracker's account
    for arn, names in expected.items():
        docs = build_documents(source.load(refs[arn]))
        count, attempts, _status, _mode, head = contract.functions.instanceOf(
            owner, bytes.fromhex(docs.execution_id)
        ).call()
        assert (count, attempts, head.hex()) == (len(names), 1, docs.head())
        wanted += [(instance_key(owner, docs.execution_id), seq) for seq in range(len(names))]
        protocol = json.loads((tmp_path / "protocol" / f"{docs.instance_id}.json").read_text())
        assert [e["state_hash"] for e in protocol["instance_protocol"]] == docs.state_ids
    assert seen == sorted(wanted)

    again = subprocess.run(
        [*command, "--json"], cwd=ROOT, env=tracker_env(), capture_output=True, text=True, timeout=180
    )
    assert json.loads(again.stdout)["transactions"] == 0


def test_no_contract_at_the_address_is_one_line(aws_server, anvil, tmp_path):
    anvil_url, _ = anvil
    empty = "0x00000000000000000000000000000000000000aA"
    result = subprocess.run(
        tracker_command(anvil_url, empty, tmp_path),
        cwd=ROOT,
        env=tracker_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: no InstanceTracker at 0x00000000000000000000000000000000000000AA on chain id 31337: "
        "run `ape run deploy` on this network"
    ]


def test_a_malformed_arn_is_one_line(aws_server, anvil, tmp_path):
    anvil_url, contract = anvil
    result = subprocess.run(
        tracker_command(anvil_url, contract.address, tmp_path, "orders"),
        cwd=ROOT,
        env=tracker_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: malformed state machine ARN 'orders' (expected arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)"
    ]


def test_follow_picks_up_a_new_execution_and_ctrl_c_ends_after_the_batch(aws_server, anvil, tmp_path):
    anvil_url, contract = anvil
    machine = create_machine(aws_server, "orders-follow")
    run_execution(aws_server, machine, "follow-a", {"ok": True})
    store = store_path(tmp_path / "state", 31337, contract.address)

    def terminated() -> int:
        """Executions whose end (final or an attempt's) is checkpointed."""
        if not store.exists():
            return 0
        with sqlite3.connect(store) as db:
            try:
                bodies = db.execute("SELECT body FROM checkpoints").fetchall()
            except sqlite3.OperationalError:  # the tracker created the file but not yet its tables
                return 0
            return sum(bool(json.loads(body)["ends"]) for (body,) in bodies)

    command = tracker_command(
        anvil_url, contract.address, tmp_path, machine, "--follow", "--poll-interval", "0.5", "--json"
    )
    follower = subprocess.Popen(
        command, cwd=ROOT, env=tracker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: terminated() == 1, 90, "the first execution tracked")
        run_execution(aws_server, machine, "follow-b", {"ok": False})
        wait_until(lambda: terminated() == 2, 60, "the new execution picked up")
        follower.send_signal(signal.SIGINT)
        stdout, stderr = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["executions"] == 2 and summary["instances_terminated"] == 1 and summary["attempts_ended"] == 1
    assert summary["states_registered"] == len(SUCCEEDING_STATES) + len(FAILING_STATES)
    assert summary["polls"] >= 2


def _fresh_anvil(project) -> tuple[subprocess.Popen, str, Any]:
    """An anvil of its own with InstanceTracker deployed by account 0 at nonce 0: the same
    address every time, as after a restart of a local chain and a redeployment."""
    port = free_port()
    process = subprocess.Popen(
        [str(VENV_BIN / "anvil"), "--port", str(port), "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    web3 = Web3(Web3.HTTPProvider(url))
    wait_until(web3.is_connected, 30, "anvil start")
    contract_type = project.InstanceTracker.contract_type
    tx = web3.eth.send_transaction({"from": web3.eth.accounts[0], "data": contract_type.deployment_bytecode.bytecode})
    address = web3.eth.wait_for_transaction_receipt(tx, timeout=30)["contractAddress"]
    return process, url, address


def test_a_restarted_chain_with_the_contract_at_the_same_address_gets_everything_again(aws_server, project, tmp_path):
    machine = create_machine(aws_server, "orders-reset")
    run_execution(aws_server, machine, "reset-1", {"ok": True})
    first, url, address = _fresh_anvil(project)
    try:
        before = subprocess.run(
            [*tracker_command(url, address, tmp_path, machine), "--json"],
            cwd=ROOT, env=tracker_env(), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        first.terminate()
        first.wait(timeout=10)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["states_registered"] == len(SUCCEEDING_STATES)

    second, url, again_address = _fresh_anvil(project)
    try:
        assert again_address == address
        after = subprocess.run(
            [*tracker_command(url, address, tmp_path, machine), "--json"],
            cwd=ROOT, env=tracker_env(), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        second.terminate()
        second.wait(timeout=10)
    assert after.returncode == 0, after.stderr
    summary = json.loads(after.stdout)
    # the checkpoints described the old chain: dropped with one warning, and everything registered again
    assert summary["states_registered"] == len(SUCCEEDING_STATES) and summary["instances_terminated"] == 1
    warnings = [line for line in after.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1 and "described another chain or contract" in warnings[0]


def test_through_a_hosted_provider_with_dropped_transactions_every_state_once(aws_server, anvil, tmp_path):
    """`ape run track_execution` through the hosted-provider emulator at a free tier's limits
    (60 ms a request, 330 compute units per second, HTTP 429 past them) while transactions are
    dropped from anvil's pool as a public network drops them: everything registered, nothing
    twice. (The drops are made straight on anvil, which the emulator stands in front of.)"""
    import threading

    from support.hosted_provider import HostedProvider, Rules

    anvil_url, contract = anvil
    machine = create_machine(aws_server, "orders-hosted")
    arns = [run_execution(aws_server, machine, f"hosted-{i}", {"ok": True}) for i in range(4)]
    stopping, dropped = threading.Event(), []

    def drop_some() -> None:
        while not stopping.wait(0.05) and len(dropped) < 2:
            answer = requests.post(anvil_url, json={"jsonrpc": "2.0", "id": 1, "method": "txpool_content"}, timeout=5)
            pending = [tx["hash"] for by in answer.json()["result"]["pending"].values() for tx in by.values()]
            for tx_hash in pending[:1]:
                requests.post(
                    anvil_url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "anvil_dropTransaction", "params": [tx_hash]},
                    timeout=5,
                ).raise_for_status()
                dropped.append(tx_hash)

    rules = Rules(latency=0.06, compute_units_per_second=330, log_rules=True, max_batch=1000)
    dropper = threading.Thread(target=drop_some, daemon=True)
    first_block = contract.w3.eth.block_number + 1  # the module's other tests register on this chain too
    with HostedProvider(anvil_url, rules) as provider:
        command = tracker_command(
            provider.url, contract.address, tmp_path, machine, "--max-instances-per-tx", "1", "--json"
        )
        dropper.start()
        try:
            result = subprocess.run(command, cwd=ROOT, env=tracker_env(), capture_output=True, text=True, timeout=300)
        finally:
            stopping.set()
            dropper.join(timeout=10)
        counters = provider.counters
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["executions"] == len(arns)
    assert summary["states_registered"] == len(arns) * len(SUCCEEDING_STATES)
    assert dropped, "no transaction was pending long enough to be dropped"
    assert counters.calls["eth_sendRawTransaction"] > summary["transactions"]  # the dropped ones went out again
    registered = contract.events.StateRegistered.get_logs(from_block=first_block)
    seen = [(log["args"]["key"].hex(), log["args"]["seq"]) for log in registered]
    assert len(seen) == len(set(seen)) == len(arns) * len(SUCCEEDING_STATES)


@pytest.mark.parametrize("execution_type", ["STANDARD", "EXPRESS"])
def test_a_distributed_maps_children_through_the_command(aws_server, anvil, tmp_path, execution_type):
    """`ape run track_execution` on the parent's machine tracks its Map Run's children too, against
    the emulating moto server (Express children come from the parent's log group)."""
    from test_tracking_children import create, fan_out, run

    anvil_url, contract = anvil
    machine = create(aws_server, f"fan-{execution_type.lower()}", fan_out(execution_type), logged=True)
    parent_arn = run(aws_server, machine, "batch-1", {"items": list(range(20))})
    command = tracker_command(anvil_url, contract.address, tmp_path, machine, "--json")
    result = subprocess.run(command, cwd=ROOT, env=tracker_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["instances_terminated"], summary["states_registered"]) == (21, 3 + 20 * 2)
    documents = tmp_path / "protocol" / "documents"
    protocols = [json.loads(p.read_text()) for p in (tmp_path / "protocol").glob("*.json")]
    facts = {p["instance_hash"]: json.loads((documents / f"{p['instance_hash']}.json").read_text()) for p in protocols}
    (parent,) = [i for i, f in facts.items() if f["execution_arn"] == parent_arn]
    children = {i for i, f in facts.items() if f.get("parent_instance_id") == parent}
    fan = next(
        json.loads((documents / f"{e['state_hash']}.json").read_text())
        for p in protocols
        if p["instance_hash"] == parent
        for e in p["instance_protocol"]
        if json.loads((documents / f"{e['state_hash']}.json").read_text())["state_name"] == "Fan"
    )
    listing = json.loads((documents / f"{fan['children']}.json").read_text())
    assert set(listing["instances"]) == children and len(children) == 20
    assert all(p["final"] for p in protocols)
