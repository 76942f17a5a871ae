"""Retrying transient faults with exponential backoff and full jitter.

Transient: AWS throttling and 5xx answers, dropped or reset connections, timeouts (AWS or the RPC
node), and `nonce too low` (a transaction of ours got mined while we were not looking). Anything
else is permanent and raised at once. What is retried must be idempotent: the tracker retries a
whole poll, which re-reads the chain before it sends anything.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

TRANSIENT_AWS_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
TRANSIENT_PHRASES = (
    "nonce too low",
    "connection reset",
    "connection aborted",
    "connection refused",
    "remote end closed connection",
    "timed out",
    "timeout",
    "too many requests",
    "replacement transaction underpriced",
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: delay n is uniform in [0, min(max_delay, base * 2**n)]."""

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return (rng or random).uniform(0, ceiling)


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_transient(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is a fault that a later attempt may not meet."""
    for cause in _causes(error):
        if isinstance(cause, (ConnectionError, TimeoutError)):
            return True
        response = getattr(cause, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in TRANSIENT_AWS_CODES or (isinstance(status, int) and (status == 429 or status >= 500)):
                return True
        name = type(cause).__name__
        if name in {"EndpointConnectionError", "ReadTimeoutError", "ConnectTimeoutError", "ConnectionClosedError"}:
            return True
        text = str(cause).lower()
        if any(phrase in text for phrase in TRANSIENT_PHRASES):
            return True
    return False


def with_retry(
    action: Callable[[], T],
    policy: RetryPolicy = RetryPolicy(),
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Runs `action`, retrying transient faults per `policy`; the last fault is raised as it is."""
    for attempt in range(policy.attempts):
        try:
            return action()
        except Exception as error:
            if attempt + 1 >= policy.attempts or not is_transient(error):
                raise
            pause = policy.delay(attempt)
            if on_retry is not None:
                on_retry(attempt + 1, error, pause)
            sleep(pause)
    raise AssertionError("unreachable")  # the loop returns or raises
