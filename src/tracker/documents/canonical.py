"""Canonical JSON: the one encoding of every document other than the model document.

It is the JSON Canonicalization Scheme (RFC 8785, through the `rfc8785` package), so a verifier
in any language can reproduce it, with two rules of ours on top:

* UTF-8, object keys sorted (by UTF-16 code units, as RFC 8785 says; our keys are ASCII), no
  insignificant whitespace, strings escaped as JSON requires and nothing more;
* no floats: numbers are integers (within +-2**53), timestamps integer milliseconds since the
  Unix epoch;
* absent optional facts are left out, never written as null."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import rfc8785

from tracker.documents.ids import DocumentError


def canonical_json(value: Any) -> bytes:
    """The one canonical JSON encoding of the project (see the module docstring)."""
    _reject_floats(value)
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as error:
        raise DocumentError(f"not canonical JSON: {error}") from None


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
