"""Canonical JSON: the one encoding of every document other than the model document.

* UTF-8, object keys sorted by code point, no insignificant whitespace (`,` and `:` separators);
* strings escaped as JSON requires and nothing more (non-ASCII characters are kept as they are);
* no floats: numbers are integers, timestamps are integer milliseconds since the Unix epoch;
* absent optional facts are left out, never written as null."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tracker.documents.ids import DocumentError


def canonical_json(value: Any) -> bytes:
    """The one canonical JSON encoding of the project (see the module docstring)."""
    _reject_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise DocumentError(f"canonical JSON has no floats (got {value!r}); use integers")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DocumentError(f"canonical JSON keys must be strings (got {key!r})")
            _reject_floats(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _reject_floats(item)


def without_absent(facts: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in facts.items() if value is not None}
