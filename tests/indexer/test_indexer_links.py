"""Which execution started which, in the analysis tables. The contract's events cannot say it (they
name instances and states; the links are in the published documents), so `index --documents`
loads them from a publish directory, each only when both sides agree, and the views show them
only between instances and from states the chain holds.

moto and the emulation run the children (a Distributed Map's Standard children, a nested
`states:startExecution.sync` child): see tests/tracking/test_tracking_children.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tracker.aws.executions import Selection
from tracker.aws.history import HistorySource
from tracker.chain.contract import TrackerContract
from tracker.chain.rpc import rpc_for
from tracker.documents.canonical import canonical_json
from tracker.documents.ids import sha256_hex
from tracker.indexer.engine import IndexConfig, index, load_links
from tracker.publish.targets import DirectoryPublisher
from tracker.tracking.config import TrackConfig
from tracker.tracking.engine import track

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tracking"))
from test_tracking_children import NESTED_CHILD, create, fan_out, nested_parent, run


@pytest.fixture
def in_process(chain):
    if getattr(chain.provider, "http_uri", None):
        pytest.skip("the session runs on a JSON-RPC node, not ape's in-process chain")
    return chain


@pytest.fixture
def tree(aws, in_process, contract, owner, database_url, schema, tmp_path):
    """A parent whose Distributed Map started 3 Standard children and whose last task started a
    nested child, tracked, published and indexed."""
    child_machine = create(aws, "greeter", NESTED_CHILD)
    definition = fan_out("STANDARD")
    definition["States"]["Report"] = nested_parent(child_machine)["States"]["Call"] | {"End": True}
    del definition["States"]["Report"]["Next"]
    machine = create(aws, "fan", definition)
    parent_arn = run(aws, machine, "batch-1", {"items": [1, 2, 3]})
    publish_dir = tmp_path / "protocol"
    track(
        TrackConfig(state_dir=tmp_path / "state"),
        HistorySource(aws, Selection((machine,))),
        TrackerContract(contract, owner),
        DirectoryPublisher(publish_dir, "https://localhost:8443"),
    )
    config = IndexConfig(contract_address=contract.address, database_url=database_url, schema=schema)
    index(config, rpc_for(in_process.provider))
    documents = publish_dir / "documents"
    parent = next(
        path.stem
        for path in publish_dir.glob("*.json")
        if json.loads((documents / path.name).read_text())["execution_arn"] == parent_arn
    )
    return config, publish_dir, parent


def documents_of(publish_dir: Path, kind: str) -> dict[str, dict]:
    found = {}
    for path in (publish_dir / "documents").glob("*.json"):
        value = json.loads(path.read_text())
        if isinstance(value, dict) and value.get("kind") == kind:
            found[path.stem] = value
    return found


def test_the_index_shows_which_execution_started_which(tree, db):
    config, publish_dir, parent = tree
    # before the documents are loaded the index knows five unrelated instances
    assert db.execute("SELECT count(*) FROM execution_tree").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM instance").fetchone()[0] == 5

    loaded = load_links(config, publish_dir)
    assert (loaded.visits, loaded.added, loaded.refused) == (2, 4, 0)
    assert load_links(config, publish_dir).added == 0  # loading again adds nothing

    visits = db.execute(
        "SELECT parent_instance_id, parent_state_name, map_run_arn IS NOT NULL, children, final_children, child_states "
        "FROM children_per_visit ORDER BY parent_event_id"
    ).fetchall()
    assert visits == [(parent, "Fan", True, 3, 3, 6), (parent, "Report", False, 1, 1, 1)]
    children = db.execute("SELECT child_instance_id, parent_state_name FROM execution_tree").fetchall()
    instances = documents_of(publish_dir, "instance")
    for child, state_name in children:
        assert instances[child]["parent_instance_id"] == parent
        assert instances[child]["parent_state_name"] == state_name


def test_a_link_only_one_side_states_is_refused_and_an_unregistered_state_shows_none(tree, db):
    config, publish_dir, _parent = tree
    documents = publish_dir / "documents"
    states = documents_of(publish_dir, "state")
    fan_id, fan = next((i, s) for i, s in states.items() if s["state_name"] == "Fan")
    listing = json.loads((documents / f"{fan['children']}.json").read_text())
    nested = next(i for i, d in documents_of(publish_dir, "instance").items() if d.get("parent_state_name") == "Report")

    def publish(value: dict) -> str:
        text = canonical_json(value)
        identifier = sha256_hex(text)
        (documents / f"{identifier}.json").write_bytes(text)
        return identifier

    # a forged visit of Fan (never registered) listing the nested child, which names Report back
    forged_listing = publish({**listing, "instances": sorted([*listing["instances"], nested])})
    publish({**fan, "children": forged_listing})
    loaded = load_links(config, publish_dir)
    assert loaded.refused == 1
    assert "does not name this instance, visit and Map Run back" in (loaded.first_refusal or "")
    # the three real children were listed by the forged visit too: kept, shown from the real one only
    assert loaded.added == 4 + 3
    assert db.execute("SELECT count(*) FROM execution_link").fetchone()[0] == 7
    rows = db.execute(
        "SELECT parent_state_name, parent_state_id, count(*) FROM execution_tree GROUP BY 1, 2 ORDER BY 1"
    ).fetchall()
    assert [(name, count) for name, _state, count in rows] == [("Fan", 3), ("Report", 1)]
    assert rows[0][1] == fan_id
