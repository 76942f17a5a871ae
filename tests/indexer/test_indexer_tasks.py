"""The code identity per state in the analysis tables: which executions ran which version of a
function, and when the code behind a model changed."""

from __future__ import annotations

import json

import pytest
from support.task_services import create_function, machine, publish_new_code, run

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.chain.contract import TrackerContract
from tracker.chain.rpc import rpc_for
from tracker.indexer.engine import IndexConfig, index, load_tasks
from tracker.publish.targets import DirectoryPublisher
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track


@pytest.fixture
def in_process(chain):
    if getattr(chain.provider, "http_uri", None):
        pytest.skip("the session runs on a JSON-RPC node, not ape's in-process chain")
    return chain


def test_which_executions_ran_which_code(aws, in_process, contract, owner, database_url, schema, db, tmp_path):
    first = create_function(aws, "transform")
    lam = aws.client("lambda")
    lam.create_alias(FunctionName="transform", Name="live", FunctionVersion="1")
    arn = machine(aws, "etl", {"StartAt": "Transform", "States": {"Transform": {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "transform:live", "Payload.$": "$"},
        "End": True,
    }}})  # fmt: skip
    run(aws, arn, name="one")
    run(aws, arn, name="two")
    second = publish_new_code(aws, "transform", "def handler(event, context):\n    return 2\n")
    lam.update_alias(FunctionName="transform", Name="live", FunctionVersion=second["Version"])
    run(aws, arn, name="three")
    publish_dir = tmp_path / "protocol"
    track(
        TrackConfig(state_dir=tmp_path / "state"),
        HistorySource(aws, Selection((arn,))),
        TrackerContract(contract, owner),
        DirectoryPublisher(publish_dir, "https://localhost:8443"),
    )
    config = IndexConfig(contract_address=contract.address, database_url=database_url, schema=schema)
    index(config, rpc_for(in_process.provider))

    loaded = load_tasks(config, publish_dir)
    assert (loaded.states_with_tasks, loaded.added, loaded.refused) == (3, 3, 0)
    assert load_tasks(config, publish_dir).added == 0  # loading again adds nothing

    runs = db.execute(
        "SELECT function_arn, function_version, code_sha256, executions, read_after_the_fact "
        "FROM function_version_runs ORDER BY function_version"
    ).fetchall()
    function = "arn:aws:lambda:us-east-1:123456789012:function:transform"
    assert runs == [(function, "1", first["CodeSha256"], 2, False), (function, "2", second["CodeSha256"], 1, False)]
    changes = db.execute(
        "SELECT code_of, code, version, executions, previous_code FROM model_code_changes ORDER BY first_run"
    ).fetchall()
    assert changes == [
        (function, first["CodeSha256"], "1", 2, None),
        (function, second["CodeSha256"], "2", 1, first["CodeSha256"]),
    ]


def test_a_task_document_that_does_not_hash_to_its_id_is_refused(
    aws, in_process, contract, owner, database_url, schema, db, tmp_path
):
    create_function(aws, "transform")
    arn = machine(aws, "etl", {"StartAt": "Transform", "States": {"Transform": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "transform:1", "Payload.$": "$"}, "End": True,
    }}})  # fmt: skip
    run(aws, arn)
    publish_dir = tmp_path / "protocol"
    track(
        TrackConfig(state_dir=tmp_path / "state"),
        HistorySource(aws, Selection((arn,))),
        TrackerContract(contract, owner),
        DirectoryPublisher(publish_dir, "https://localhost:8443"),
    )
    for path in (publish_dir / "documents").glob("*.json"):
        document = json.loads(path.read_text())
        if document.get("kind") == "task":
            document["code"]["code_sha256"] = "B" * 43 + "="
            path.write_text(json.dumps(document))
    config = IndexConfig(contract_address=contract.address, database_url=database_url, schema=schema)
    index(config, rpc_for(in_process.provider))
    loaded = load_tasks(config, publish_dir)
    assert (loaded.added, loaded.refused) == (0, 2)  # the task document itself, and the state naming it
    assert "does not hash to its name" in str(loaded.first_refusal)
    assert db.execute("SELECT count(*) FROM state_task").fetchone()[0] == 0
