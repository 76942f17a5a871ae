"""`ape run deploy_model` and `ape run start_execution --wait` as the demo runs them: a moto
server process through AWS_ENDPOINT_URL and an anvil the commands connect to by URL."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests
from web3 import Web3

from tracker.dev.services import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
DEFINITION = {
    "StartAt": "Split",
    "States": {
        "Split": {"Type": "Pass", "Result": [1, 2], "ResultPath": "$.xs", "Next": "Each"},
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.xs",
            "ResultPath": "$.each",
            "Iterator": {"StartAt": "One", "States": {"One": {"Type": "Pass", "End": True}}},
            "Next": "Both",
        },
        "Both": {
            "Type": "Parallel",
            "ResultPath": "$.both",
            "Next": "Done",
            "Branches": [
                {"StartAt": "L", "States": {"L": {"Type": "Pass", "End": True}}},
                {"StartAt": "R", "States": {"R": {"Type": "Pass", "End": True}}},
            ],
        },
        "Done": {"Type": "Succeed"},
    },
}


def started(command: list[str], ready, what: str) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if ready():
                return process
        except (requests.ConnectionError, OSError):
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"{what} did not start")


@pytest.fixture
def services(project, tmp_path):
    moto_url, anvil_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    moto = started(
        [
            str(VENV_BIN / "python"),
            "-m",
            "tracker.dev.sfn_emulation",
            "-H",
            "127.0.0.1",
            "-p",
            moto_url.rsplit(":", 1)[1],
        ],
        lambda: requests.get(f"{moto_url}/moto-api/").ok,
        "moto server",
    )
    web3 = Web3(Web3.HTTPProvider(anvil_url))
    anvil = started(
        [str(VENV_BIN / "anvil"), "--port", anvil_url.rsplit(":", 1)[1], "--silent"], web3.is_connected, "anvil"
    )
    try:
        requests.post(
            f"{moto_url}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}
        ).raise_for_status()
        contract_type = project.InstanceTracker.contract_type
        tx = web3.eth.send_transaction(
            {"from": web3.eth.accounts[0], "data": contract_type.deployment_bytecode.bytecode}
        )
        address = web3.eth.wait_for_transaction_receipt(tx, timeout=30)["contractAddress"]
        abi = [item.model_dump(mode="json", by_alias=True) for item in contract_type.abi]
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "TRACKER_NETWORK": anvil_url,
            "TRACKER_ACCOUNT": "TEST::0",
            "TRACKER_CONTRACT": address,
        }
        yield env, web3.eth.contract(address=address, abi=abi)
    finally:
        for process in (moto, anvil):
            process.terminate()
            process.wait(timeout=10)


def ape_run(env: dict, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "ape"), "run", *arguments], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def test_deploy_then_start_with_expect_model_and_wait(services, tmp_path):
    env, contract = services
    definition = tmp_path / "flow.json"
    definition.write_text(json.dumps(DEFINITION, indent=2))
    deployed = ape_run(
        env,
        "deploy_model",
        str(definition),
        "--name",
        "flow",
        "--role-arn",
        "arn:aws:iam::123456789012:role/flow",
        "--json",
    )
    assert deployed.returncode == 0, deployed.stderr
    model = json.loads(deployed.stdout)
    assert model["change"] == "new" and model["registered"]

    run = ape_run(
        env,
        "start_execution",
        "flow",
        "--input",
        '{"order": 7}',
        "--name",
        "order-7",
        "--expect-model",
        model["model_id"],
        "--wait",
        "--poll-interval",
        "0.3",
        "--publish",
        str(tmp_path / "protocol"),
        "--state-dir",
        str(tmp_path / "state"),
        "--json",
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == "SUCCEEDED" and result["final"] and result["states_registered"] == 8
    count, attempts, status, _mode, _head = contract.functions.instanceOf(
        contract.w3.eth.accounts[0], bytes.fromhex(result["execution_id"])
    ).call()
    assert (count, attempts, status) == (8, 1, 2)  # Final
    assert result["model_id"] == model["model_id"]
    # the instance was registered in its own transaction, before any state
    registered = contract.events.InstanceRegistered.get_logs(from_block=0)
    first_state = contract.events.StateRegistered.get_logs(from_block=0)[0]
    assert registered[0]["blockNumber"] < first_state["blockNumber"]

    stale = ape_run(env, "start_execution", "flow", "--name", "order-8", "--expect-model", "ab" * 32)
    assert stale.returncode == 1
    assert stale.stderr.strip().splitlines() == [
        f"Error: state machine {model['version_arn']} runs model {model['model_id']}, "
        f"not the expected {'ab' * 32}: refusing to start"
    ]
