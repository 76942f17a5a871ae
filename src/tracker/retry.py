"""The one retry policy: how many attempts, and exponential backoff with full jitter between them.

Who applies it: AWS calls are retried by botocore itself, configured from this policy
(`tracker.aws.session`), so an AWS error that reaches our code is final. The tracker retries a
whole poll on a transient fault of the chain or the network (dropped or reset connections,
timeouts, `nonce too low` when a transaction of ours got mined while we were not looking); a poll
starts by re-reading the chain, so repeating it never registers anything twice. Anything else is
permanent and raised at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

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
# Errors from these modules were retried where they were raised (botocore's own retries).
ALREADY_RETRIED_MODULES = ("botocore", "boto3", "tracker.aws")


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
    """Whether `error` (or what caused it) is a chain or network fault that a later attempt may not meet."""
    causes = _causes(error)
    if any(type(cause).__module__.startswith(ALREADY_RETRIED_MODULES) for cause in causes):
        return False
    for cause in causes:
        if isinstance(cause, (ConnectionError, TimeoutError)):
            return True
        text = str(cause).lower()
        if any(phrase in text for phrase in TRANSIENT_PHRASES):
            return True
    return False


def with_retry(
    action: Callable[[], T],
    policy: RetryPolicy | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Runs `action`, retrying transient faults per `policy`; the last fault is raised as it is."""
    policy = policy or RetryPolicy()
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
