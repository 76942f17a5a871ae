"""What `verify` found, and the limits it works within."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tracker.errors import ConfigurationError

CHECK_TLS = "protocol_tls"
CHECK_STATES = "states"
CHECK_MODEL = "model_instance"
CHECK_ENS = "ens"
CHECK_CERTIFICATE = "certificate"
CHECK_STATE = "state"
CHECK_ATTEMPT = "attempt"
CHECK_CHILDREN = "children"
CHECK_TITLES = {
    CHECK_TLS: "1. protocol fetched over TLS",
    CHECK_STATES: "2. states registered in order",
    CHECK_MODEL: "3. model, instance and ends",
    CHECK_ENS: "4. ENS name and url",
    CHECK_CERTIFICATE: "5. certificate fingerprint",
    CHECK_CHILDREN: "executions it started",
}


@dataclass(frozen=True)
class CheckResult:
    """One of the five checks: ok True (passed), False (failed) or None (not checked), and why."""

    check: str
    ok: bool | None
    reason: str

    @property
    def title(self) -> str:
        return CHECK_TITLES.get(self.check, self.check)

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class StateResult:
    """The verdict on one listed state (`position` in the list, `seq` it claims on chain)."""

    position: int
    seq: int
    state_id: str
    ok: bool | None
    reason: str
    ran: str | None = None  # what the state's task ran, from its checked task document

    def to_json(self) -> dict[str, Any]:
        data = {
            "check": CHECK_STATE,
            "position": self.position,
            "seq": self.seq,
            "state": self.state_id,
            "ok": self.ok,
            "reason": self.reason,
        }
        if self.ran is not None:
            data["ran"] = self.ran
        return data


@dataclass(frozen=True)
class AttemptResult:
    """The verdict on one attempt end, as the chain recorded it and as the protocol lists it."""

    attempt: int | None
    end_id: str | None
    final: bool
    ok: bool | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "check": CHECK_ATTEMPT,
            "attempt": self.attempt,
            "end": self.end_id,
            "final": self.final,
            "ok": self.ok,
            "reason": self.reason,
        }


# What the chain says of the instance, for the report's status line.
STATUS_FINAL = "final"
STATUS_ENDED = "ended"
STATUS_RUNNING = "running"
STATUS_MOVED = "moved"
STATUS_UNREGISTERED = "unregistered"


@dataclass
class VerificationReport:
    """Everything `verify` found: the five checks, a row per listed state and per attempt end,
    and what the chain says of the instance (`status`: final, ended, running, moved, unregistered,
    or None when the chain was not read)."""

    url: str
    checks: list[CheckResult]
    states: list[StateResult] = field(default_factory=list)
    instance_id: str | None = None
    owner: str | None = None
    seconds: float = 0.0
    attempts: list[AttemptResult] = field(default_factory=list)
    execution_id: str | None = None
    status: str | None = None
    status_text: str | None = None
    mode: str | None = None
    chain_id: int | None = None
    contract: str | None = None
    contract_is_canonical: bool | None = None
    # `verify --aws`: each recorded code identity against the services today (never in the verdict)
    code_today: list[Any] = field(default_factory=list)
    # the execution that started this one, as the instance document (hashed to its id) names it: a
    # `tracker.verify.content.ParentLink`; verifying the parent checks the link from its side
    parent: Any = None

    def _items(self) -> list[CheckResult | StateResult | AttemptResult]:
        return [*self.checks, *self.states, *self.attempts]

    @property
    def passed(self) -> bool:
        """True only when every check, state and attempt passed (nothing failed, nothing unchecked)."""
        return all(item.ok is True for item in self._items())

    @property
    def verdict(self) -> str:
        if self.passed:
            return "passed"
        if any(item.ok is False for item in self._items()):
            return "failed"
        return "incomplete"

    def check(self, name: str) -> CheckResult:
        for result in self.checks:
            if result.check == name:
                return result
        raise KeyError(name)

    @property
    def failed_checks(self) -> list[str]:
        return [result.check for result in self.checks if result.ok is False]

    @property
    def contract_source(self) -> str | None:
        if self.contract is None:
            return None
        return "canonical" if self.contract_is_canonical else "given"

    def to_json(self) -> dict[str, Any]:
        data = {**self._summary(), "results": [item.to_json() for item in self._items()]}
        if self.code_today:
            data["code_today"] = [drift.to_json() for drift in self.code_today]
        return data

    def json_chunks(self) -> Iterator[str]:
        """`to_json()` as indented JSON text, a result at a time: a report of thousands of states
        is never one big string."""
        summary = json.dumps(self._summary(), indent=2)
        yield summary[:-2] + ',\n  "results": ['
        for index, item in enumerate(self._items()):
            text = json.dumps(item.to_json(), indent=2).replace("\n", "\n    ")
            yield ("," if index else "") + "\n    " + text
        if self.code_today:
            yield '\n  ],\n  "code_today": ['
            for index, drift in enumerate(self.code_today):
                yield ("," if index else "") + "\n    " + json.dumps(drift.to_json())
        yield "\n  ]\n}\n"

    def _summary(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "instance": self.instance_id,
            "execution": self.execution_id,
            "owner": self.owner,
            "chain_id": self.chain_id,
            "contract": self.contract,
            "contract_source": self.contract_source,
            "mode": self.mode,
            "status": self.status,
            "status_text": self.status_text,
            "verdict": self.verdict,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "parent": None
            if self.parent is None
            else {
                "instance": self.parent.instance_id,
                "execution_arn": self.parent.execution_arn,
                "event_id": self.parent.event_id,
                "state_name": self.parent.state_name,
                "map_run_arn": self.parent.map_run_arn,
            },
        }


@dataclass(frozen=True)
class VerifyOptions:
    """Limits and strategy (see docs/commands/verify.md, "Limits").

    `timeout`: seconds per download; `total_timeout`: seconds for every download of the run
    together; `max_document_bytes`: per document; `max_content_bytes`: per document whose content
    is read (instance, state and end documents); `max_protocol_bytes`, `max_entries` (listed
    states) and `max_depth` (JSON nesting) bound the protocol before it is parsed;
    `allow_private_hosts`: fetch documents from loopback and private addresses too.
    """

    timeout: float = 10.0
    total_timeout: float = 300.0
    max_document_bytes: int = 4 * 1024 * 1024
    max_content_bytes: int = 1024 * 1024
    max_protocol_bytes: int = 32 * 1024 * 1024
    max_entries: int = 25_000
    max_depth: int = 64
    concurrency: int = 16
    batched: bool = True
    allow_private_hosts: bool = False

    def __post_init__(self) -> None:
        for name in ("timeout", "total_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0 or value != value:
                raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
        for name in ("max_document_bytes", "max_content_bytes", "max_protocol_bytes", "max_entries", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer of at least 1, got {value!r}")
        if (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or not 1 <= self.concurrency <= 256
        ):
            raise ConfigurationError(f"concurrency must be an integer from 1 to 256, got {self.concurrency!r}")

    @property
    def max_values(self) -> int:
        """The number of JSON values a protocol may have: generous for `max_entries` entries with
        Merkle proofs, and a bound on the memory that parsing it takes."""
        return 64 * self.max_entries + 4096

    @property
    def content_limit(self) -> int:
        return min(self.max_content_bytes, self.max_document_bytes)


def short(identifier: str | None) -> str:
    """An id as reports show it: its first ten hex characters."""
    return f"{identifier[:10]}…" if identifier else "none"
