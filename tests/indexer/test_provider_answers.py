"""What the chain-access layer reads from providers' answers, in the providers' own words."""

from __future__ import annotations

import pytest
from support.hosted_provider import ALCHEMY_LOG_RANGE, ALCHEMY_LOG_SIZE, ALCHEMY_RATE_LIMIT, INFURA_LOG_RESULTS

from tracker.chain.hosted import (
    BatchRefusal,
    RangeRefusal,
    batch_refusal,
    is_quota_exhausted,
    is_rate_limit,
    range_refusal,
)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (429, ALCHEMY_RATE_LIMIT, True),
        (-32005, "project ID request rate exceeded", True),
        (-32005, "daily request count exceeded, request rate limited", True),
        (429, "Too Many Requests", True),
        # The same code, but a refusal of the range: narrowing helps, waiting does not.
        (-32005, "query returned more than 10000 results. Try with this block range [0x1, 0x2].", False),
        (-32602, ALCHEMY_LOG_SIZE.format(first="0x0", last="0x1"), False),
        # A used-up daily quota: not a rate limit (seconds of backoff cannot help).
        (402, "Payment Required", False),
        (-32000, "execution reverted", False),
    ],
)
def test_rate_limits_are_told_from_refusals(code, message, expected):
    assert is_rate_limit(code, message) is expected


def test_a_used_up_quota():
    assert is_quota_exhausted(402, "Payment Required")
    assert is_quota_exhausted(-33000, "You have reached your daily credit limit")
    assert not is_quota_exhausted(429, ALCHEMY_RATE_LIMIT)


@pytest.mark.parametrize(
    ("message", "data", "expected"),
    [
        # Alchemy's density rule suggests a range; its "2K block range" is no hard limit.
        (ALCHEMY_LOG_SIZE.format(first="0x10", last="0x7cf"), None, RangeRefusal((16, 1999), None)),
        (ALCHEMY_LOG_RANGE.format(limit=500, first="0x1be4213", last="0x1be4406"), None,
         RangeRefusal((0x1BE4213, 0x1BE4406), 500)),
        (INFURA_LOG_RESULTS.format(limit=10000, first="0xbde5f8", last="0x102dbcc"),
         {"from": "0xbde5f8", "to": "0x102dbcc", "limit": 10000}, RangeRefusal((0xBDE5F8, 0x102DBCC), None)),
        ("range 1000000 exceeds limit of 10000", None, RangeRefusal(None, 10000)),
        ("query exceeds max block range 100000", None, RangeRefusal(None, 100000)),
        ("eth_getLogs is limited to a 1,024 block range", None, RangeRefusal(None, 1024)),
        ("query exceeds max results 20000, retry with the range 23879634-23879696", None,
         RangeRefusal((23879634, 23879696), None)),
        ("the range is too large", None, RangeRefusal(None, None)),
        ("up to a 0 block range", None, RangeRefusal(None, None)),
    ],
)  # fmt: skip
def test_range_refusals(message, data, expected):
    assert range_refusal(message, data) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("batch too large", BatchRefusal(limit=None)),
        ("batch limit 100 exceeded (can increase by --rpc.batch.limit). Requested batch of size: 401",
         BatchRefusal(limit=100)),
        ("The batch request was too large Exceeded max limit of 3", BatchRefusal(limit=3)),
        ("Batch requests are disabled", BatchRefusal(refused=True)),
        ("batch requests are not supported", BatchRefusal(refused=True)),
        ("execution reverted", None),
        (ALCHEMY_RATE_LIMIT, None),
    ],
)  # fmt: skip
def test_batch_refusals(message, expected):
    assert batch_refusal(message) == expected
