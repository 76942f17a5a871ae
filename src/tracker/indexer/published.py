"""What the document loaders (`tasks`, `links`) share: reading a publish directory's documents
only by their ids, and counting what a load refused."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.documents.ids import ID_PATTERN, sha256_hex


@dataclass
class DocumentLoad:
    """Rows added and documents refused by a load, with the first refusal's reason."""

    added: int = 0
    refused: int = 0
    first_refusal: str | None = None

    def refuse(self, reason: str) -> None:
        self.refused += 1
        self.first_refusal = self.first_refusal or reason


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
