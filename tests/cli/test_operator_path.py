"""What a new operator hits first, each a single line with a non-zero exit, soon after the cause is
knowable: AWS unreachable or without credentials, a chain that is not there, an in-process chain
for work that must persist, an unfunded account, a publish URL that is not https, a passphrase
that cannot be asked for, and an AWS endpoint that does not run state machines.

The commands run as an operator runs them (`ape run ...` in a process of its own); the bounds on
time are generous (a process of ours needs a few seconds to import ape), and the in-library
checks bound the time after the cause itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracker.dev.services import free_port

ROOT = Path(__file__).resolve().parents[2]
APE = str(Path(sys.executable).parent / "ape")
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback


def run(*arguments: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    environment["PATH"] = f"{Path(sys.executable).parent}:{environment['PATH']}"
    return subprocess.run(
        [APE, "run", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


AWS_UNREACHABLE = {
    "AWS_ENDPOINT_URL": UNREACHABLE,
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
}


def test_an_unreachable_aws_endpoint_is_one_line_within_seconds_in_the_library(monkeypatch):
    import boto3

    from tracker.aws.errors import AwsUnreachableError
    from tracker.aws.executions import Selection
    from tracker.aws.history import HistorySource

    for name, value in AWS_UNREACHABLE.items():
        monkeypatch.setenv(name, value)
    source = HistorySource(boto3.session.Session(region_name="us-east-1"), Selection())
    started = time.monotonic()
    with pytest.raises(AwsUnreachableError) as error:
        source.list_executions()
    assert time.monotonic() - started < 5
    assert str(error.value).startswith(f"cannot reach {UNREACHABLE}/ for region us-east-1: ")
    assert str(error.value).endswith("(check AWS_ENDPOINT_URL, the region and the network)")


@pytest.mark.parametrize(
    "command",
    [
        ["track_execution", "--network", "ethereum:local:foundry"],
        ["deploy_model", "examples/etl-pipeline.asl.json", "--name", "x", "--network", "ethereum:local:foundry"],
        ["start_execution", "etl", "--network", "ethereum:local:foundry"],
    ],
    ids=["track_execution", "deploy_model", "start_execution"],
)
def test_an_unreachable_aws_endpoint_is_one_line(command, anvil_host):
    started = time.monotonic()
    result = run(*command, env={**AWS_UNREACHABLE, "APE_FOUNDRY_HOST": anvil_host})
    assert result.returncode == 1, result.stderr
    assert last_line(result).startswith(f"Error: cannot reach {UNREACHABLE}/")
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("command", ["deploy_model", "start_execution"])
def test_no_aws_credentials_is_one_line(command, anvil_host, tmp_path):
    env = {
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": UNREACHABLE,
        "APE_FOUNDRY_HOST": anvil_host,
    }
    arguments = ["examples/etl-pipeline.asl.json", "--name", "x"] if command == "deploy_model" else ["etl"]
    result = run(command, *arguments, "--network", "ethereum:local:foundry", env=env)
    assert result.returncode == 1
    assert last_line(result) == (
        "Error: no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )
    assert "Traceback" not in result.stderr


def test_an_unreachable_configured_node_is_an_error_not_a_fresh_node():
    env = {"APE_FOUNDRY_HOST": UNREACHABLE, "AWS_REGION": "us-east-1"}
    result = run("track_execution", "--network", "ethereum:local:foundry", env=env)
    assert result.returncode == 1
    assert last_line(result) == (
        f"Error: the node at {UNREACHABLE} (APE_FOUNDRY_HOST) does not answer: start it (bin/stack) or unset "
        "APE_FOUNDRY_HOST to let ape start a throw-away one"
    )


@pytest.mark.parametrize("command", ["deploy", "track_execution", "index"])
def test_apes_in_process_chain_is_refused_for_work_that_must_persist(command):
    result = run(command, "--network", "ethereum:local:test", env={"AWS_REGION": "us-east-1"})
    assert result.returncode == 1
    assert last_line(result) == (
        "Error: ethereum:local:test is ape's in-process chain, which is gone when this command ends: run "
        "bin/stack and use --network ethereum:local:foundry (or a public network)"
    )


def test_a_publish_url_that_is_not_https_is_refused():
    result = run("track_execution", "--base-url", "ftp://x", "--network", "ethereum:local:foundry")
    assert result.returncode == 2
    assert (
        last_line(result) == "Error: Invalid value for '--base-url': must be an https:// URL with a host, got 'ftp://x'"
    )


def test_create_account_without_a_terminal_or_a_passphrase_says_which_variable(anvil_host, tmp_path):
    env = {"APE_FOUNDRY_HOST": anvil_host, "APE_DATA_FOLDER": str(tmp_path / "ape")}
    result = run("create_account", "acme", "--alias", "acmeops", "--network", "ethereum:local:foundry", env=env)
    assert result.returncode == 1
    assert last_line(result) == (
        "Error: no passphrase for account 'acmeops': set APE_ACCOUNTS_ACMEOPS_PASSPHRASE "
        "(there is no terminal to ask on)"
    )


def test_create_account_reads_the_upper_case_variable_and_prints_a_next_step_that_works(anvil_host, tmp_path):
    env = {
        "APE_FOUNDRY_HOST": anvil_host,
        "APE_DATA_FOLDER": str(tmp_path / "ape"),
        "APE_ACCOUNTS_ACMEOPS_PASSPHRASE": "correct horse",
    }
    result = run("create_account", "acme", "--alias", "acmeops", "--network", "ethereum:local:foundry", env=env)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.strip().splitlines() if not line.startswith("WARNING:")]
    assert lines[0].startswith("created account 'acmeops': 0x")
    # a new account has no funds: the next step is printed whole, network included
    assert lines[-1].endswith(
        "then run `ape run deploy --network ethereum:local:foundry --account acmeops --client-id acme`"
    )


@pytest.fixture(scope="module")
def anvil_host(project):
    """An anvil of its own: what APE_FOUNDRY_HOST points at for these commands."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "anvil"), "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    for _ in range(300):
        try:
            urllib.request.urlopen(urllib.request.Request(url, body, {"Content-Type": "application/json"}), timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    # the canonical InstanceTracker, as `ape run deploy` puts it there (anvil has the proxy)
    from web3 import Web3

    from tracker.chain import canonical

    web3 = Web3(Web3.HTTPProvider(url))
    sent = web3.eth.send_transaction(
        {"from": web3.eth.accounts[0], "to": canonical.PROXY_ADDRESS, "data": canonical.deployment_data()}
    )
    web3.eth.wait_for_transaction_receipt(sent, timeout=30)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def drop_schema(database: str, schema: str) -> None:
    """A schema of these tests, new for each run (another run's anvil is another chain)."""
    import psycopg

    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_index_from_a_block_past_the_head_is_refused(anvil_host):
    database = os.environ["TEST_DATABASE_URL"]
    env = {"APE_FOUNDRY_HOST": anvil_host, "DATABASE_URL": database}
    schema = "operator_past_head"
    drop_schema(database, schema)
    result = run("index", "--network", "ethereum:local:foundry", "--schema", schema, "--from-block", "999999", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert last_line(result).startswith("Error: --from-block 999999 is past the chain's head (block ")

    import psycopg

    with psycopg.connect(database) as connection:  # nothing stored: not even the schema
        found = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    assert found is None


def test_index_without_a_database_says_which_to_give(anvil_host):
    env = {"APE_FOUNDRY_HOST": anvil_host}
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    environment.pop("DATABASE_URL", None)
    environment.update(env)
    environment["PATH"] = f"{Path(sys.executable).parent}:{environment['PATH']}"
    result = subprocess.run(
        [APE, "run", "index", "--network", "ethereum:local:foundry"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert last_line(result) == (
        "Error: no database given: pass --database URL or set DATABASE_URL (or libpq's PGHOST/PGDATABASE); "
        "bin/stack prints one"
    )


def test_index_names_the_database_it_wrote_into(anvil_host):
    database = os.environ["TEST_DATABASE_URL"]
    drop_schema(database, "operator_named")
    env = {"APE_FOUNDRY_HOST": anvil_host, "DATABASE_URL": database}
    result = run("index", "--network", "ethereum:local:foundry", "--schema", "operator_named", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "into 127.0.0.1:5432/test, schema operator_named" in result.stdout


def test_index_report_fits_80_columns_without_cutting_values(anvil_host):
    from web3 import Web3

    from tracker.chain import canonical

    web3 = Web3(Web3.HTTPProvider(anvil_host))
    abi = [
        {"type": "function", "name": "registerClientId", "stateMutability": "nonpayable", "outputs": [],
         "inputs": [{"name": "clientId", "type": "string"}]},
        {"type": "function", "name": "registerModel", "stateMutability": "nonpayable", "outputs": [],
         "inputs": [{"name": "owner", "type": "address"}, {"name": "model", "type": "bytes32"}]},
    ]  # fmt: skip
    tracker = web3.eth.contract(address=Web3.to_checksum_address(canonical.address()), abi=abi)
    sender = web3.eth.accounts[0]
    for call in (
        tracker.functions.registerClientId("operator-report"),
        tracker.functions.registerModel(sender, b"m" * 32),
    ):
        web3.eth.wait_for_transaction_receipt(call.transact({"from": sender}), timeout=30)
    database = os.environ["TEST_DATABASE_URL"]
    drop_schema(database, "operator_report")
    env = {"APE_FOUNDRY_HOST": anvil_host, "DATABASE_URL": database, "COLUMNS": "80"}
    result = run("index", "--network", "ethereum:local:foundry", "--schema", "operator_report", "--report", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    tables = result.stdout.splitlines()[1:]  # after the summary line (a sentence the terminal wraps)
    assert max(len(line) for line in tables) <= 80, result.stdout
    assert "…" not in result.stdout  # nothing truncated: wide tables are printed as records
    # the client's row: its address and client id whole, each on one line
    assert sender.lower()[2:] in result.stdout.lower()
    assert "operator-report" in result.stdout
    assert "reorgs" not in result.stdout


def test_poll_options_have_one_name():
    for command in ("track_execution", "start_execution", "index", "verify"):
        result = run(command, "--help")
        assert "--poll-interval" in result.stdout, command
