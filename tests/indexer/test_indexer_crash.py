"""`ape run index` killed with SIGKILL in the middle of a batch, then restarted: exact row counts."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psycopg
from psycopg import sql

EXECUTIONS = 40
STATES_PER_EXECUTION = 30


def _index_command(anvil, deployed, database_url, schema) -> list[str]:
    return [
        "ape",
        "run",
        "index",
        "--network",
        anvil.url,
        "--contract",
        deployed.address,
        "--database",
        database_url,
        "--schema",
        schema,
        "--from-block",
        str(deployed.deploy_block),
        "--batch-blocks",
        "1",
        "--max-batch-logs",
        "1",
        "--json",
    ]


def _open_batch(monitor: psycopg.Connection, schema: str, first_block: int) -> bool:
    """Whether a batch is being written after at least one batch committed (so past the migrations)."""
    if monitor.execute("SELECT to_regclass(%s)", [f"{schema}.cursor"]).fetchone()[0] is None:
        return False
    moved = monitor.execute(
        sql.SQL("SELECT count(*) FROM {}.cursor WHERE block_number >= %s").format(sql.Identifier(schema)),
        [first_block],
    ).fetchone()[0]
    if not moved:
        return False
    row = monitor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND backend_xid IS NOT NULL",
        [f"tracker-indexer:{schema}"],
    ).fetchone()
    return row[0] > 0


def test_sigkill_mid_batch_then_restart_gives_exact_rows(anvil, deployed, register_execution, database_url, schema, db):
    for number in range(EXECUTIONS):
        register_execution(deployed, f"crash-{number}", STATES_PER_EXECUTION)
    expected_states = EXECUTIONS * STATES_PER_EXECUTION
    command = _index_command(anvil, deployed, database_url, schema)
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)
    killed_mid_batch = False
    with psycopg.connect(database_url, autocommit=True) as monitor:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if _open_batch(monitor, schema, deployed.deploy_block + 1):
                process.send_signal(signal.SIGKILL)
                killed_mid_batch = True
                break
    process.wait(timeout=30)
    assert killed_mid_batch, "the indexer finished before a batch could be caught open"
    assert process.returncode == -signal.SIGKILL

    # What was committed before the kill is exactly the blocks up to the cursor, nothing more.
    (cursor,) = db.execute("SELECT block_number FROM cursor").fetchone()
    assert deployed.deploy_block < cursor < anvil.web3.eth.block_number
    stored, last_stored = db.execute("SELECT count(*), max(block_number) FROM event_log").fetchone()
    assert last_stored == cursor
    assert stored == (cursor - deployed.deploy_block) * (STATES_PER_EXECUTION + 1) + 1

    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=180)
    assert finished.returncode == 0, finished.stderr
    counts = dict(db.execute("SELECT event, count(*) FROM event_log GROUP BY event").fetchall())
    assert counts == {"ModelRegistered": 1, "InstanceRegistered": EXECUTIONS, "StateRegistered": expected_states}
    assert db.execute("SELECT count(*), count(DISTINCT state_id) FROM state").fetchone() == (
        expected_states,
        expected_states,
    )
    assert db.execute("SELECT count(*) FROM transaction").fetchone()[0] == EXECUTIONS
    assert db.execute("SELECT instances, direct_states FROM model").fetchone() == (EXECUTIONS, expected_states)
    assert db.execute("SELECT sum(direct_states) FROM day_stats").fetchone()[0] == expected_states
    assert db.execute("SELECT block_number FROM cursor").fetchone()[0] == anvil.web3.eth.block_number
