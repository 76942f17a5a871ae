"""`--follow` picks up new blocks; the command's --report/--json output carries the views."""

from __future__ import annotations

import json
import subprocess
import threading
import time

from tracker.indexer.engine import BatchReport, IndexConfig, index


def test_follow_indexes_blocks_mined_while_polling(
    anvil, deployed, register_execution, database_url, schema, db, label_id
):
    deployed.send("registerModel", deployed.accounts[0], label_id("model"))
    config = IndexConfig(
        contract_address=deployed.address,
        database_url=database_url,
        schema=schema,
        from_block=deployed.deploy_block,
        follow=True,
        poll_interval=0.2,
        max_polls=15,
    )
    reports: list[BatchReport] = []
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(summary=index(config, anvil.rpc(), reports.append)))
    worker.start()
    deadline = time.monotonic() + 30
    while not reports and time.monotonic() < deadline:
        time.sleep(0.05)
    register_execution(deployed, "follow", 1)
    mined = anvil.web3.eth.block_number
    worker.join(timeout=60)

    assert not worker.is_alive()
    summary = outcome["summary"]
    assert summary.events == 3
    assert any(r.first_block <= mined <= r.last_block and r.events == 2 for r in reports)
    assert db.execute("SELECT count(*) FROM state").fetchone()[0] == 1


def test_command_json_report(anvil, deployed, database_url, schema, label_id):
    execution = label_id("cli-execution")
    states = [label_id(f"cli-state-{i}") for i in range(3)]
    deployed.send("registerExecution", deployed.accounts[0], execution, label_id("cli-model"), label_id("doc"), states)
    deployed.send("registerClientId", "cli-client")
    result = subprocess.run(
        [
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
            "--report",
            "--instance",
            execution.hex(),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # ape itself may log (to standard output) that another script of the project failed to load;
    # the command's own output is the JSON document after that.
    lines = result.stdout.splitlines()
    document = json.loads("\n".join(lines[lines.index("{") :]))
    assert document["summary"]["events"] == 1 + 1 + 3 + 1
    assert [row["state_id"] for row in document["report"]["protocol"]] == [s.hex() for s in states]
    assert document["report"]["protocol"][0]["instance_key"] == deployed.instance_key(0, execution).hex()
    assert document["report"]["models"][0]["instances"] == 1
    client = document["report"]["clients"][0]
    assert (client["client_id"], client["states"], client["transactions"]) == ("cli-client", 3, 2)
    assert sum(day["states"] for day in document["report"]["days"]) == 3


def test_following_prints_one_line_per_batch_once_caught_up(project, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("index_script_display", project.path / "scripts" / "index.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    display = script.Display(enabled=True, follow=True)
    display(BatchReport(first_block=101, last_block=101, target_block=101, events=3, skipped=1, seconds=0.25))
    display(BatchReport(first_block=102, last_block=103, target_block=103, events=0, skipped=0, seconds=0.1))
    assert capsys.readouterr().err.splitlines() == [
        "blocks 101-101: 3 events, 1 skipped in 0.25 s",
        "blocks 102-103: 0 events in 0.10 s",
    ]
