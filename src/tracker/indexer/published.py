"""What the document loaders (`tasks`, `links`) share: reading a publish directory's documents
only by their ids, and counting what a load refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from tracker.documents.ids import ID_PATTERN, sha256_hex
from tracker.errors import ConfigurationError


@dataclass
class DocumentLoad:
    """Rows added and documents refused by a load, with the first refusal's reason."""

    added: int = 0
    refused: int = 0
    first_refusal: str | None = None

    def refuse(self, reason: str) -> None:
        self.refused += 1
        self.first_refusal = self.first_refusal or reason


Load = TypeVar("Load", bound=DocumentLoad)


def load_documents(
    connection: psycopg.Connection,
    publish_dir: Path,
    load: Load,
    rows_of: Callable[[Path, Load], list[dict[str, Any]]],
    insert: str,
) -> Load:
    """Inserts `rows_of(documents directory, load)` with `insert` in one transaction, counting
    into `load` the rows that were not there yet (the schema must be migrated and on the
    connection's search path)."""
    directory = Path(publish_dir) / "documents"
    if not directory.is_dir():
        raise ConfigurationError(f"--documents {publish_dir}: no documents/ directory (a tracker's publish directory)")
    rows = rows_of(directory, load)
    with connection.transaction(), connection.cursor() as cursor:
        for row in rows:
            cursor.execute(insert, row)
            load.added += cursor.rowcount
    return load


def read_document(directory: Path, identifier: str) -> Any:
    """The parsed document named `identifier` in `directory`: an id, never a path, and the
    bytes must hash to it and parse as JSON (ValueError otherwise, OSError when it is not
    there)."""
    if not ID_PATTERN.match(identifier):
        raise ValueError(f"{identifier[:20]!r} is not a document id")
    path = directory / f"{identifier}.json"
    data = path.read_bytes()
    if sha256_hex(data) != identifier:
        raise ValueError(f"{path.name} does not hash to its name")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError(f"{path.name} is nested too deeply to read") from None
