"""Bad input: one clear line each (and a non-zero exit from the command); foreign logs are counted."""

from __future__ import annotations

import os
import subprocess

import pytest
from eth_utils import keccak

from tracker.chain.events import EventDecoder, UndecodableLogError
from tracker.chain.reader import ChainReader
from tracker.chain.rpc import JsonRpc
from tracker.errors import ChainError, ConfigurationError, ContractNotFoundError, one_line
from tracker.indexer.engine import IndexConfig, index
from tracker.indexer.store import DatabaseError, DatabaseLoginError, DatabaseUnreachableError

STATE_REGISTERED = keccak(text="StateRegistered(bytes32,bytes32,uint256)")
UNKNOWN_EVENT = keccak(text="Unknown()")


def _emitter_initcode() -> bytes:
    """Creation code that emits three logs InstanceTracker's ABI cannot decode and leaves one byte
    of code: an unknown event, StateRegistered with a topic missing, StateRegistered with 5 data bytes."""
    push32 = lambda word: b"\x7f" + word  # noqa: E731
    push1 = lambda byte: bytes([0x60, byte])  # noqa: E731
    a, b = b"\x11" * 32, b"\x22" * 32
    code = push32(UNKNOWN_EVENT) + push1(0) + push1(0) + b"\xa1"
    code += push32(a) + push32(STATE_REGISTERED) + push1(0) + push1(0) + b"\xa2"
    code += push32(b) + push32(a) + push32(STATE_REGISTERED) + push1(5) + push1(0) + b"\xa3"
    code += push1(1) + push1(0) + b"\xf3"  # return one zero byte of memory as the runtime code
    return code


@pytest.fixture
def emitter(anvil) -> str:
    sender = anvil.web3.eth.accounts[3]
    tx_hash = anvil.web3.eth.send_transaction({"from": sender, "data": _emitter_initcode(), "gas": 200_000})
    return anvil.web3.eth.wait_for_transaction_receipt(tx_hash).contractAddress


def _run_index(*arguments: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ape", "run", "index", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **environment},
    )


def _error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("INFO")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _config(deployed, database_url: str, schema: str, **overrides) -> IndexConfig:
    return IndexConfig(contract_address=deployed.address, database_url=database_url, schema=schema, **overrides)


def test_unreachable_database(anvil, deployed, schema, closed_port):
    url = f"postgresql://postgres@127.0.0.1:{closed_port}/test"
    with pytest.raises(DatabaseUnreachableError) as raised:
        index(_config(deployed, url, schema), anvil.rpc())
    assert str(raised.value) == f"cannot reach Postgres at 127.0.0.1:{closed_port}/test: Connection refused"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://nobody@127.0.0.1:5432/test", 'role "nobody" does not exist'),
        ("postgresql://postgres@127.0.0.1:5432/no_such_db", 'database "no_such_db" does not exist'),
    ],
)
def test_refused_login(anvil, deployed, schema, url, reason):
    target = url.split("@", 1)[1]
    with pytest.raises(DatabaseLoginError) as raised:
        index(_config(deployed, url, schema), anvil.rpc())
    assert str(raised.value) == f"Postgres at {target} refused the login: {reason}"


def test_command_prints_one_line_and_fails(anvil, deployed, schema, closed_port):
    url = f"postgresql://postgres@127.0.0.1:{closed_port}/test"
    result = _run_index("--network", anvil.url, "--contract", deployed.address, "--database", url, "--schema", schema)
    assert result.returncode == 1
    assert _error_line(result) == f"Error: cannot reach Postgres at 127.0.0.1:{closed_port}/test: Connection refused"


def test_address_without_code(anvil, database_url, schema):
    address = "0x" + "ab" * 20
    config = IndexConfig(contract_address=address, database_url=database_url, schema=schema)
    with pytest.raises(ContractNotFoundError) as raised:
        index(config, anvil.rpc())
    assert str(raised.value) == f"no contract code at 0x{'ab' * 20} on chain id 31337"


def test_network_without_the_contract(anvil, database_url, schema, tmp_path):
    # A project directory with no recorded deployment: nothing to index on this chain.
    result = _run_index(
        "--network", anvil.url, "--database", database_url, "--schema", schema, TRACKER_PROJECT=str(tmp_path)
    )
    assert result.returncode == 1
    line = _error_line(result)
    assert line.startswith("Error: no InstanceTracker at the canonical address 0x") and line.endswith(
        "on chain id 31337: run `ape run deploy` on this network (or pass --contract ADDRESS for a private deployment)"
    )


def test_in_process_chain_has_no_json_rpc(chain):
    if getattr(chain.provider, "http_uri", None):
        pytest.skip("the session runs on a JSON-RPC node, not ape's in-process chain")
    with pytest.raises(ConfigurationError) as raised:
        JsonRpc.from_provider(chain.provider)
    assert str(raised.value) == (
        "the indexer reads logs over JSON-RPC and this provider has no HTTP endpoint "
        "(ape's in-process test chain): use --network ethereum:local:foundry, a node or Alchemy"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"from_block": 10, "to_block": 5}, "--to-block 5 is before --from-block 10"),
        ({"from_block": -1}, "--from-block must be >= 0, got -1"),
        (
            {"schema": "Bad-Name"},
            "invalid schema name 'Bad-Name': use lowercase letters, digits and _, starting with a letter or _",
        ),
    ],
)
def test_bad_options(anvil, deployed, database_url, schema, overrides, message):
    settings = {"schema": schema, **overrides}
    config = IndexConfig(contract_address=deployed.address, database_url=database_url, **settings)
    with pytest.raises(ConfigurationError) as raised:
        index(config, anvil.rpc())
    assert str(raised.value) == message


def _emitter_block(anvil, emitter: str) -> tuple[int, str]:
    logs = anvil.web3.eth.get_logs({"address": emitter, "fromBlock": 0, "toBlock": "latest"})
    return logs[0]["blockNumber"], logs[0]["transactionHash"].hex().removeprefix("0x")


def test_a_log_that_does_not_decode_stops_the_run(anvil, emitter, database_url, schema, db):
    # The indexed contract's logs are decoded with its own ABI: one that does not decode is a bug
    # to fix, never a row to skip silently (the cursor must not move past it).
    block, tx_hash = _emitter_block(anvil, emitter)
    with pytest.raises(UndecodableLogError) as raised:
        index(IndexConfig(contract_address=emitter, database_url=database_url, schema=schema), anvil.rpc())
    assert str(raised.value) == (
        f"log 0 of block {block} (transaction 0x{tx_hash}) of {emitter.lower()} does not decode with "
        "InstanceTracker's ABI: its first topic is no event of the ABI; indexing stops rather than skip it"
    )
    assert db.execute("SELECT count(*) FROM event_log").fetchone()[0] == 0
    assert db.execute("SELECT block_number FROM cursor").fetchone()[0] < block


def test_command_stops_on_a_log_that_does_not_decode(anvil, emitter, database_url, schema):
    block, _ = _emitter_block(anvil, emitter)
    result = _run_index("--network", anvil.url, "--contract", emitter, "--database", database_url, "--schema", schema)
    assert result.returncode == 1
    line = _error_line(result)
    assert line.startswith(f"Error: log 0 of block {block} ") and line.endswith("indexing stops rather than skip it")


@pytest.mark.parametrize(
    ("index_of_log", "reason"),
    [
        (1, "StateRegistered has 2 indexed inputs, the log 1 topics after the first"),
        (2, "StateRegistered has 32 data bytes, the log 5"),
    ],
)
def test_each_malformed_log_is_named(anvil, emitter, index_of_log, reason):
    logs = ChainReader(anvil.rpc(), bytes.fromhex(emitter[2:])).logs(0, anvil.web3.eth.block_number)[1]
    with pytest.raises(UndecodableLogError) as raised:
        EventDecoder.for_tracker(bytes.fromhex(emitter[2:].lower())).decode(logs[index_of_log:])
    assert f"InstanceTracker's ABI: {reason};" in str(raised.value)


def test_logs_of_another_contract_are_counted_as_foreign(anvil, deployed, emitter):
    rpc = anvil.rpc()
    emitter_logs = ChainReader(rpc, bytes.fromhex(emitter[2:])).logs(0, anvil.web3.eth.block_number)[1]
    outcome = EventDecoder.for_tracker(bytes.fromhex(deployed.address[2:].lower())).decode(emitter_logs)
    assert (len(outcome.events), outcome.foreign) == (0, 3)


def test_bad_instance_id_is_refused_before_connecting(project):
    import importlib.util

    from click.testing import CliRunner

    spec = importlib.util.spec_from_file_location("index_script", project.path / "scripts" / "index.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    result = CliRunner(mix_stderr=False).invoke(script.cli, ["--report", "--instance", "xyz"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: --instance must be 64 hex characters, got 'xyz'"


def test_unreachable_node(database_url, schema, closed_port):
    config = IndexConfig(contract_address="0x" + "ab" * 20, database_url=database_url, schema=schema)
    with pytest.raises(ChainError) as raised:
        index(config, JsonRpc.from_uri(f"http://127.0.0.1:{closed_port}"))
    message = str(raised.value)
    assert message.startswith("eth_chainId failed: ") and "Connection refused" in message
    assert one_line(message) == message


def test_schema_with_a_conflicting_table(anvil, deployed, database_url, schema):
    # A schema where another application already has a table the migrations need: one line.
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
        admin.execute(psycopg.sql.SQL("CREATE TABLE {}.contract (x int)").format(psycopg.sql.Identifier(schema)))
    config = IndexConfig(contract_address=deployed.address, database_url=database_url, schema=schema)
    with pytest.raises(DatabaseError) as raised:
        index(config, anvil.rpc())
    assert str(raised.value) == 'Postgres failed: relation "contract" already exists'


def test_batch_blocks_beyond_the_largest_range(anvil, deployed, database_url, schema):
    config = IndexConfig(
        contract_address=deployed.address, database_url=database_url, schema=schema, batch_blocks=1_000_000
    )
    with pytest.raises(ConfigurationError) as raised:
        index(config, anvil.rpc())
    assert str(raised.value) == "--batch-blocks must be between 1 and 100000, got 1000000"
