"""Links between executions into the analysis tables (`execution_link`): which instance started
which, from which visit, in which Map Run.

The contract's events cannot say it: they name instances and states, and the links are in the
published documents. `load_link_documents` reads a publish directory's `documents/` and keeps a
link only when both sides say it: the parent's state document names a children document, that
children document (hashing to its id) names the parent instance and that visit and lists the
child, and the child's instance document (hashing to its id) names the same parent instance,
visit and Map Run back. The views then show a link only between instances the chain holds, from
a state the chain registered for the parent. Loading again replaces nothing that is already there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tracker.documents.ids import ID_PATTERN
from tracker.indexer.published import DocumentLoad, load_documents, read_document

INSERT_LINK = """
INSERT INTO execution_link (child_instance_document, parent_instance_document, parent_state_id, parent_event_id,
    parent_state_name, map_run_arn, children_document)
VALUES (%(child)s, %(parent)s, %(state_id)s, %(event_id)s, %(state_name)s, %(map_run_arn)s, %(children)s)
ON CONFLICT (child_instance_document, parent_state_id) DO NOTHING
"""


@dataclass
class LinkLoad(DocumentLoad):
    """What a load found: visits naming a children document, links added, links refused (and why)."""

    visits: int = 0


def _children_of(directory: Path, state_id: str, state: dict[str, Any], load: LinkLoad) -> list[dict[str, Any]]:
    """The link rows of one visit whose state document names a children document."""
    where = f"state {state_id[:12]}…"
    try:
        listing = read_document(directory, str(state["children"]))
    except (OSError, ValueError) as error:
        load.refuse(f"{where}: children document {str(state['children'])[:12]}…: {error}")
        return []
    visit = (state.get("instance_id"), state.get("event_id"), state.get("state_name"))
    if not isinstance(listing, dict) or listing.get("kind") != "children":
        load.refuse(f"{where}: its children document is not a children document")
        return []
    if (listing.get("instance_id"), listing.get("event_id"), listing.get("state_name")) != visit:
        load.refuse(f"{where}: its children document names another instance or visit")
        return []
    rows = []
    map_run = listing.get("map_run_arn")
    children = listing.get("instances") or []
    if not isinstance(children, list) or not (map_run is None or isinstance(map_run, str)):
        load.refuse(f"{where}: its children document is malformed")
        return []
    for child in children:
        try:
            facts = read_document(directory, str(child))
        except (OSError, ValueError) as error:
            load.refuse(f"{where}: child {str(child)[:12]}…: {error}")
            continue
        named = (
            (facts.get("parent_instance_id"), facts.get("parent_event_id"), facts.get("parent_state_name"))
            + (facts.get("map_run_arn"),)
            if isinstance(facts, dict) and facts.get("kind") == "instance"
            else None
        )
        if named != (*visit, map_run):
            load.refuse(f"{where}: child {str(child)[:12]}… does not name this instance, visit and Map Run back")
            continue
        try:
            rows.append(_link_row(state_id, state, str(child), map_run))
        except (ValueError, TypeError, KeyError) as error:
            load.refuse(f"{where}: malformed state document ({type(error).__name__}: {error})")
    return rows


def _link_row(state_id: str, state: dict[str, Any], child: str, map_run: str | None) -> dict[str, Any]:
    event_id = state["event_id"]
    if not isinstance(event_id, int) or isinstance(event_id, bool):
        raise TypeError("event_id is not an integer")
    return {
        "child": bytes.fromhex(child),
        "parent": bytes.fromhex(str(state["instance_id"])),
        "state_id": bytes.fromhex(state_id),
        "event_id": event_id,
        "state_name": str(state["state_name"]),
        "map_run_arn": map_run,
        "children": bytes.fromhex(str(state["children"])),
    }


def link_rows(directory: Path, load: LinkLoad) -> list[dict[str, Any]]:
    """The `execution_link` rows of every state document in `directory` that names children."""
    rows = []
    for path in sorted(directory.glob("*.json")):
        if not ID_PATTERN.match(path.stem):
            continue
        try:
            state = read_document(directory, path.stem)
        except (OSError, ValueError):
            continue  # the task loader reports documents that do not hash to their names
        if not isinstance(state, dict) or state.get("kind") != "state" or "children" not in state:
            continue
        load.visits += 1
        rows.extend(_children_of(directory, path.stem, state, load))
    return rows


def load_link_documents(connection: psycopg.Connection, publish_dir: Path) -> LinkLoad:
    """Loads the links between the executions published in `publish_dir`."""
    return load_documents(connection, publish_dir, LinkLoad(), link_rows, INSERT_LINK)
