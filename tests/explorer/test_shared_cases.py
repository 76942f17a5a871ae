"""The Python verifier on the cases the explorer's JavaScript runs too (verify_cases.json, see
shared_cases.py): each case's hand-written expectation holds, and every verdict and reason is the
one recorded in the table, which web/test/shared-cases.test.mjs holds the JavaScript to."""

from __future__ import annotations

from typing import Any

import pytest
import shared_cases

CASES = shared_cases.load()


def assert_expected(expect: dict[str, Any], results: dict[str, Any]) -> None:
    """The same rules as assertExpected in web/test/shared-cases.test.mjs."""
    if expect.get("rows") == "all true":
        assert all(row["ok"] is True for row in results["rows"])
    for check in ("states", "model_instance"):
        if check in expect:
            assert results[check]["ok"] is expect[check]
            if "contains" in expect and "row" not in expect and "attempt" not in expect:
                assert expect["contains"] in results[check]["reason"]
    if "row" in expect:
        row = results["rows"][expect["row"]]
        assert row["ok"] is expect["ok"] and expect["contains"] in row["reason"], row
    if "attempt" in expect:
        attempt = next(a for a in results["attempts"] if a["attempt"] == expect["attempt"])
        assert attempt["ok"] is expect["ok"] and expect["contains"] in attempt["reason"], attempt


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_python_verdicts_on_the_shared_case(case):
    results = shared_cases.judge(case)
    assert_expected(case["expect"], results)
    assert results == case["results"]


def test_the_table_is_what_the_cases_make():
    """verify_cases.json is current: regenerated from shared_cases.py, it holds the same cases."""
    made = {case["name"]: case for case in shared_cases.cases()}
    assert sorted(made) == sorted(case["name"] for case in CASES)
    for case in CASES:
        fresh = made[case["name"]]
        assert (fresh["protocol"], fresh["documents"], fresh["chain"], fresh["expect"]) == (
            case["protocol"],
            case["documents"],
            case["chain"],
            case["expect"],
        ), case["name"]
