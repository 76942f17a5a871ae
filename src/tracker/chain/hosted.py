"""What hosted providers charge and what their refusals mean, in one place.

The compute-unit costs are Alchemy's published throughput costs
(https://www.alchemy.com/docs/reference/compute-unit-costs, "Throughput CU" where the table gives
one, else "CU"; a batch costs the sum of its calls). They pace requests client-side
(`tracker.chain.rpc.RpcBudget`). Infura counts credits with other numbers; with a
requests-per-second budget every call counts one.

The answers recognised here, with where their wording comes from:

* rate limits: HTTP 429; JSON-RPC code 429 with Alchemy's "Your app has exceeded its compute
  units per second capacity" (https://www.alchemy.com/docs/reference/throughput); Infura's -32005
  "project ID request rate exceeded" with `data.backoff_seconds` and "daily request count
  exceeded, request rate limited" (https://docs.infura.io/api/networks/ethereum/how-to/avoid-rate-limiting),
  and its newer 429 "Too Many Requests". A used-up daily quota (HTTP 402, "daily credit limit")
  is not a rate limit: waiting seconds does not help.
* eth_getLogs refusals: Alchemy's "Log response size exceeded. ... this block range should work:
  [0x.., 0x..]" (a range wider than 2,000 blocks may return at most 10,000 logs) and, on the free
  tier, "You can make eth_getLogs requests with up to a 500 block range. Based on your parameters,
  this block range should work: [..]"; Infura's -32005 "query returned more than 10000 results.
  Try with this block range [0x.., 0x..]." with `data.from`/`data.to`, and its -32602 "range
  1000000 exceeds limit of 10000"; node software's "query exceeds max block range 100000",
  "exceeds max results 20000, retry with the range 23879634-23879696".
* batch limits: geth's "batch too large" (-32600, as the only entry of the answer), Erigon's
  "batch limit 100 exceeded", jsonrpsee's "The batch request was too large" ("Exceeded max limit
  of 3"); batches refused altogether: "Batch requests are disabled" (Hedera's relay), "batch
  requests are not supported".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Alchemy's throughput cost per method; methods not listed cost DEFAULT_COMPUTE_UNITS.
ALCHEMY_COMPUTE_UNITS: Mapping[str, int] = {
    "net_version": 0,
    "eth_chainId": 0,
    "eth_syncing": 0,
    "eth_blockNumber": 10,
    "eth_feeHistory": 10,
    "eth_maxPriorityFeePerGas": 10,
    "eth_blobBaseFee": 10,
    "eth_createAccessList": 10,
    "eth_getTransactionReceipt": 20,
    "eth_getBlockByNumber": 20,
    "eth_getBlockByHash": 20,
    "eth_getTransactionByHash": 20,
    "eth_getStorageAt": 20,
    "eth_gasPrice": 20,
    "eth_getBalance": 20,
    "eth_getCode": 20,
    "eth_getProof": 20,
    "eth_getTransactionCount": 20,
    "eth_estimateGas": 20,
    "eth_call": 26,
    "eth_getFilterLogs": 60,
    "eth_getLogs": 60,
    "eth_sendRawTransaction": 250,
    "eth_getBlockReceipts": 500,
}
DEFAULT_COMPUTE_UNITS = 20

_RATE_LIMIT_PHRASES = (
    "compute units per second",
    "request rate exceeded",
    "request rate limited",
    "rate limit",
    "too many requests",
    "throughput limit",
    "credits per second",
    "request limit reached",
)
_QUOTA_PHRASES = ("daily credit limit", "monthly capacity", "payment required")
_BLOCK_RANGE = r"(0x[0-9a-fA-F]+|\d+)"
_SUGGESTED_RANGE = (
    re.compile(rf"\[\s*{_BLOCK_RANGE}\s*,\s*{_BLOCK_RANGE}\s*\]"),
    re.compile(r"range\s+(\d+)\s*-\s*(\d+)"),
)
_MAX_RANGE = (
    re.compile(r"up to a (\d[\d,]*) block range(?!.*cap of)", re.IGNORECASE | re.DOTALL),
    re.compile(r"exceeds limit of (\d[\d,]*)", re.IGNORECASE),
    re.compile(r"max(?:imum)? block range (?:is |of )?(\d[\d,]*)", re.IGNORECASE),
    re.compile(r"limited to (?:a )?(\d[\d,]*)[ -](?:block[ -])?range", re.IGNORECASE),
    re.compile(r"ranges over (\d[\d,]*) blocks", re.IGNORECASE),
)
_BATCH_LIMIT = re.compile(r"batch (?:limit|size)[^0-9]{0,20}(\d+)|max(?:imum)? limit of (\d+)", re.IGNORECASE)
_BATCH_TOO_LARGE = (
    "batch too large",
    "batch request was too large",
    "batch limit",
    "batch size",
    "too many requests in batch",
)
_BATCH_REFUSED = (
    "batch requests are disabled",
    "batch requests are not supported",
    "batch requests not supported",
    "batching is not supported",
    "batch not supported",
)
_UNKNOWN_BLOCK = (
    "unknown block",
    "block not found",
    "header not found",
    "beyond current head",
    "beyond the latest block",
)


def compute_units(method: str, costs: Mapping[str, int] = ALCHEMY_COMPUTE_UNITS) -> int:
    return costs.get(method, DEFAULT_COMPUTE_UNITS)


def is_rate_limit(code: int | None, message: str) -> bool:
    """Whether a JSON-RPC error is a rate limit (retry later), not a refusal of the request."""
    text = message.lower()
    if any(phrase in text for phrase in _QUOTA_PHRASES):
        return False
    if code == 429:
        return True
    return any(phrase in text for phrase in _RATE_LIMIT_PHRASES)


def is_quota_exhausted(code: int | None, message: str) -> bool:
    """A used-up daily or monthly quota: retrying within seconds cannot help."""
    return code == 402 or any(phrase in message.lower() for phrase in _QUOTA_PHRASES)


def backoff_hint(data: Any) -> float | None:
    """Seconds a rate-limit answer's `data` asks to wait (Infura's `backoff_seconds`)."""
    if isinstance(data, dict):
        value = data.get("backoff_seconds")
        if isinstance(value, (int, float)) and value >= 0:
            return float(value)
    return None


def is_unknown_block(message: str) -> bool:
    """A node that does not have the block yet (or no longer): a lagging node, or a reorg."""
    text = message.lower()
    return any(phrase in text for phrase in _UNKNOWN_BLOCK)


@dataclass(frozen=True)
class RangeRefusal:
    """What an eth_getLogs refusal says about the range: a range that should work, a hard limit."""

    suggested: tuple[int, int] | None = None
    max_blocks: int | None = None


def _number(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def range_refusal(message: str, data: Any = None) -> RangeRefusal:
    """Reads the range a provider suggests and the block-range limit it states, where it says them."""
    suggested = None
    if isinstance(data, dict) and isinstance(data.get("from"), str) and isinstance(data.get("to"), str):
        try:
            suggested = (_number(data["from"]), _number(data["to"]))
        except ValueError:
            suggested = None
    if suggested is None:
        for pattern in _SUGGESTED_RANGE:
            match = pattern.search(message)
            if match:
                suggested = (_number(match.group(1)), _number(match.group(2)))
                break
    max_blocks = None
    for pattern in _MAX_RANGE:
        match = pattern.search(message)
        if match:
            max_blocks = int(match.group(1).replace(",", ""))
            break
    return RangeRefusal(suggested, max_blocks if max_blocks and max_blocks > 0 else None)


@dataclass(frozen=True)
class BatchRefusal:
    """A refusal of a batch as such: batches refused altogether, or too large (`limit`, when stated)."""

    refused: bool = False
    limit: int | None = None


def batch_refusal(message: str) -> BatchRefusal | None:
    """What a one-error answer to a whole batch says about batches (None: it is about something else)."""
    text = message.lower()
    if any(phrase in text for phrase in _BATCH_REFUSED):
        return BatchRefusal(refused=True)
    if not any(phrase in text for phrase in _BATCH_TOO_LARGE):
        return None
    match = _BATCH_LIMIT.search(message)
    limit = int(match.group(1) or match.group(2)) if match else None
    return BatchRefusal(refused=limit == 0, limit=limit or None)
