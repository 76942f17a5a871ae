"""Task documents into the analysis tables: the code identity of each state (`state_task`).

The chain holds state ids only; what a state ran is in its published state and task documents.
`load_task_documents` reads a publish directory's `documents/` (the tracker's own output, or a
copy of a publisher's), keeps a document only when its bytes hash to the id it is named by, and
a task document only when its state document names it and it names that state (instance, state
name, entered event). Loading again replaces nothing that is already there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tracker.documents.ids import ID_PATTERN
from tracker.indexer.published import DocumentLoad, load_documents, read_document

INSERT_STATE_TASK = """
INSERT INTO state_task (state_id, task_id, instance_document, state_name, entered_at, state_type, service, integration,
    code_identity, function_arn, function_version, code_sha256, image_digest, task_definition_arn, containers, data)
VALUES (%(state_id)s, %(task_id)s, %(instance)s, %(state_name)s, to_timestamp(%(entered_ms)s / 1000.0), %(state_type)s, %(service)s, %(integration)s,
    %(code_identity)s, %(function_arn)s, %(function_version)s, %(code_sha256)s, %(image_digest)s,
    %(task_definition_arn)s, %(containers)s, %(data)s)
ON CONFLICT (state_id) DO NOTHING
"""


@dataclass
class TaskLoad(DocumentLoad):
    """What a load found: state documents naming a task, rows added, documents refused (and why)."""

    states_with_tasks: int = 0


def task_rows(directory: Path, load: TaskLoad) -> list[dict[str, Any]]:
    """The `state_task` rows of every state document in `directory` that names a task document."""
    rows = []
    for path in sorted(directory.glob("*.json")):
        identifier = path.stem
        if not ID_PATTERN.match(identifier):
            continue
        try:
            state = read_document(directory, identifier)
        except (OSError, ValueError) as error:
            load.refuse(str(error))
            continue
        if not isinstance(state, dict) or state.get("kind") != "state" or "task_id" not in state:
            continue
        load.states_with_tasks += 1
        try:
            task = read_document(directory, str(state["task_id"]))
        except (OSError, ValueError) as error:
            load.refuse(f"state {identifier[:12]}…: task document {str(state['task_id'])[:12]}…: {error}")
            continue
        same_state = isinstance(task, dict) and all(
            task.get(key) == state.get(key) for key in ("instance_id", "state_name", "event_id")
        )
        if not same_state or task.get("kind") != "task":
            load.refuse(f"state {identifier[:12]}…: its task document is not of that state")
            continue
        try:
            rows.append(_task_row(identifier, state, task))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            load.refuse(f"state {identifier[:12]}…: malformed task or state document ({type(error).__name__}: {error})")
    return rows


def _text(value: Any) -> str | None:
    """A text field as published: a string or absent, never another JSON type."""
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{type(value).__name__} where text belongs")


def _task_row(identifier: str, state: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """The `state_task` row of one state and its task document (TypeError/ValueError when a field
    is not of its published type)."""
    code = task.get("code") or {}
    if not isinstance(code, dict):
        raise TypeError("code is not an object")
    entered_ms = state.get("timestamp_ms") or 0
    if not isinstance(entered_ms, int) or isinstance(entered_ms, bool):
        raise TypeError("timestamp_ms is not an integer")
    return {
        "state_id": bytes.fromhex(identifier),
        "task_id": bytes.fromhex(str(state["task_id"])),
        "instance": bytes.fromhex(_text(state["instance_id"]) or ""),
        "state_name": str(task["state_name"]),
        "entered_ms": entered_ms,
        "state_type": str(task.get("state_type")),
        "service": str(task.get("service")),
        "integration": _text(task.get("integration")),
        "code_identity": str(task.get("code_identity")),
        "function_arn": _text(code.get("function_arn")),
        "function_version": _text(code.get("version")),
        "code_sha256": _text(code.get("code_sha256")),
        "image_digest": _text(code.get("image_digest")),
        "task_definition_arn": _text(code.get("task_definition_arn")),
        "containers": json.dumps(code["containers"]) if "containers" in code else None,
        "data": json.dumps(task.get("data") or []),
    }


def load_task_documents(connection: psycopg.Connection, publish_dir: Path) -> TaskLoad:
    """Loads the code identity of every state in `publish_dir`."""
    return load_documents(connection, publish_dir, TaskLoad(), task_rows, INSERT_STATE_TASK)
