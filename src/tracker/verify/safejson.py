"""JSON from a hostile host, read with the standard library only after cheap scans bounded its cost.

`json.loads` recurses once per nesting level in C; with the recursion limit raised (py_ecc, which
ape loads, sets it to 100,000) 200 KB of `[` overflow the C stack and kill the process, and a
32 MiB document of `{},` builds millions of objects. So before parsing:

* the nesting depth is measured without recursion: strings are cut out (one regular expression,
  its matches taken one at a time), the brackets that remain are reduced pairwise (`[]`, `{}`)
  with `bytes.replace`, one pass per level, at most `max_depth` passes; brackets left over mean
  too deep or unbalanced;
* the number of values is bounded by counting separators and openings in the same string-free
  copy;

and while parsing, integers longer than 40 digits are refused before Python converts them
(the conversion of a long digit string is quadratic, and Python refuses more than 4,300 digits
with a ValueError), and any remaining `ValueError` or `RecursionError` becomes a `JsonRefused`
with a reason instead of a traceback. Floats (also `1e400`, which is infinity) and NaN parse as
floats; the readers of protocols and documents then refuse every number that is not an integer.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_INTEGER_DIGITS = 40
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_TO_PARENTHESES = bytes.maketrans(b"[]{}", b"()()")


class JsonRefused(ValueError):
    """The JSON is malformed (`over_limit` False) or over a limit (True); the message says which."""

    def __init__(self, reason: str, over_limit: bool = False):
        super().__init__(reason)
        self.over_limit = over_limit


def _bounded_integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise JsonRefused(f"has an integer of {digits} digits (at most {MAX_INTEGER_DIGITS} are read)", True)
    return int(text)


def _without_strings(data: bytes) -> bytearray:
    """`data` with every string cut down to `""`, built piece by piece: `re.sub` would first hold
    a list of every piece between two strings (for a 5 MB protocol, about 25 MB of small objects)."""
    structure = bytearray()
    view = memoryview(data)
    end = 0
    for match in _STRING.finditer(data):
        structure += view[end : match.start()]
        structure += b'""'
        end = match.end()
    structure += view[end:]
    view.release()
    return structure


def scan(data: bytes, max_depth: int, max_values: int) -> str | None:
    """Why `data` must not be parsed (too deep, too many values), or None. Costs a few passes of C."""
    structure = _without_strings(data)
    values = structure.count(b",") + structure.count(b"[") + structure.count(b"{") + 1
    if values > max_values:
        return f"has about {values:,} values, over the limit of {max_values:,}"
    brackets = structure.translate(_TO_PARENTHESES, _NOT_BRACKETS)
    del structure
    for _level in range(max_depth):
        if not brackets:
            return None
        reduced = brackets.replace(b"()", b"")
        if len(reduced) == len(brackets):
            return "has unbalanced brackets"
        brackets = reduced
    return None if not brackets else f"nests deeper than {max_depth} levels"


def loads(data: bytes, max_depth: int, max_values: int) -> Any:
    """The JSON value of `data` (UTF-8), or JsonRefused saying why not."""
    refused = scan(data, max_depth, max_values)
    if refused is not None:
        raise JsonRefused(refused, over_limit=refused != "has unbalanced brackets")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonRefused(f"is not UTF-8 ({error.reason} at byte {error.start})") from None
    try:
        return json.loads(text, parse_int=_bounded_integer)
    except JsonRefused:
        raise
    except json.JSONDecodeError as error:
        raise JsonRefused(f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except (ValueError, RecursionError) as error:
        raise JsonRefused(f"is not valid JSON: {str(error)[:120]}") from None
