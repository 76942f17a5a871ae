"""A publish directory handed to `index --documents` may be a copy of someone else's: documents
that hash right can still say anything. Each hostile document is refused with a reason, and the
load goes on; nothing is read by a path a document names."""

from __future__ import annotations

import json

from tracker.documents.ids import sha256_hex
from tracker.indexer.links import LinkLoad, link_rows
from tracker.indexer.tasks import TaskLoad, task_rows

INSTANCE = "ab" * 32


def put(directory, document) -> str:
    """Writes `document` under its own id, as a publisher would, and returns the id."""
    data = json.dumps(document).encode()
    identifier = sha256_hex(data)
    (directory / f"{identifier}.json").write_bytes(data)
    return identifier


def state(**fields):
    return {"kind": "state", "instance_id": INSTANCE, "state_name": "Transform", "event_id": 3, **fields}


def test_task_documents_named_by_a_path_or_malformed_are_refused(tmp_path):
    outside = tmp_path / "secret.json"
    outside.write_text("{}")
    documents = tmp_path / "documents"
    documents.mkdir()
    task = {"kind": "task", "instance_id": INSTANCE, "state_name": "Transform", "event_id": 3}
    put(documents, state(task_id="../secret"))
    load = TaskLoad()
    assert task_rows(documents, load) == []
    assert (load.states_with_tasks, load.refused) == (1, 1)
    assert "'../secret' is not a document id" in str(load.first_refusal)
    put(documents, state(task_id=put(documents, {**task, "code": ["not", "an", "object"]}), seq=1))
    put(documents, state(task_id=put(documents, {**task, "code": {"function_arn": {"x": 1}}}), seq=2))
    put(documents, state(task_id=put(documents, [task]), seq=3))
    put(documents, state(task_id=put(documents, task), seq=4, instance_id="zz"))
    load = TaskLoad()
    assert task_rows(documents, load) == []
    assert (load.states_with_tasks, load.refused) == (5, 5)


def test_children_documents_that_are_malformed_are_refused(tmp_path):
    documents = tmp_path / "documents"
    documents.mkdir()
    visit = {"instance_id": INSTANCE, "event_id": 3, "state_name": "Transform"}
    for instances in (7, "x" * 64, [{"id": 1}]):
        children = put(documents, {"kind": "children", **visit, "instances": instances})
        put(documents, state(children=children, seq=len(str(instances))))
    child = put(documents, {"kind": "instance", "parent_instance_id": INSTANCE, "parent_event_id": "3",
                            "parent_state_name": "Transform", "map_run_arn": None})  # fmt: skip
    children = put(documents, {"kind": "children", **visit, "event_id": "3", "instances": [child]})
    put(documents, state(children=children, event_id="3"))
    put(documents, state(children="../../etc/passwd", seq=9))
    load = LinkLoad()
    assert link_rows(documents, load) == []
    assert load.visits == 5
    assert load.refused == 5
