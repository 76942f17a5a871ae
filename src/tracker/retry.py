"""The one retry policy: how many attempts, how long in all, and exponential backoff with full jitter.

Who applies it: AWS calls are retried by botocore itself, configured from this policy
(`tracker.aws.session`), so an AWS error that reaches our code is final. JSON-RPC requests are
retried by `tracker.chain.rpc` (rate limits, and transient faults of reads), which raises what it
could not get past as an error marked `already_retried`. The tracker retries a whole poll on a
transient fault of the chain or the network (dropped or reset connections, timeouts, `nonce too
low` when a transaction of ours got mined while we were not looking); a poll starts by re-reading
the chain, so repeating it never registers anything twice. Anything else is permanent and raised
at once.
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
    """How often and how long to retry: delay n is uniform in [0, min(max_delay, base * 2**n)].

    `max_wait` bounds the time one action may take in all, its attempts and the pauses between
    them (None: only `attempts` bounds it); a retry that would end past it is not started.
    """

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_wait: float | None = None

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
    if any(getattr(cause, "already_retried", False) for cause in causes):
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
    retryable: Callable[[BaseException], bool] = is_transient,
    wait_hint: Callable[[BaseException], float | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Runs `action`, retrying what `retryable` accepts per `policy`; the last fault is raised as it is.

    `wait_hint(error)` is the least pause the other side asked for (an HTTP `Retry-After`): the
    pause is the longer of it and the jittered backoff. A pause that would end past the policy's
    `max_wait` is not taken: the fault is raised instead.
    """
    policy = policy or RetryPolicy()
    deadline = None if policy.max_wait is None else clock() + policy.max_wait
    for attempt in range(policy.attempts):
        try:
            return action()
        except Exception as error:
            if attempt + 1 >= policy.attempts or not retryable(error):
                raise
            pause = policy.delay(attempt)
            hint = wait_hint(error) if wait_hint is not None else None
            if hint is not None:
                pause = max(pause, hint)
            if deadline is not None and clock() + pause > deadline:
                raise
            if on_retry is not None:
                on_retry(attempt + 1, error, pause)
            sleep(pause)
    raise AssertionError("unreachable")  # the loop returns or raises
