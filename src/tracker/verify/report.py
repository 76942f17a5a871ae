"""What verify reports: each check and each state as passed, failed or not checked, with its reason; and the verifier's limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHECK_TLS = "protocol_tls"
CHECK_STATES = "states"
CHECK_MODEL = "model_instance"
CHECK_ENS = "ens"
CHECK_CERTIFICATE = "certificate"
CHECK_STATE = "state"
CHECK_TITLES = {
    CHECK_TLS: "1. protocol fetched over TLS",
    CHECK_STATES: "2. states registered in order",
    CHECK_MODEL: "3. model and instance",
    CHECK_ENS: "4. ENS name and url",
    CHECK_CERTIFICATE: "5. certificate fingerprint",
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


@dataclass(frozen=True)
class StateResult:
    """The verdict on one listed state (`position` in the list, `seq` it claims on chain)."""

    position: int
    seq: int
    state_id: str
    ok: bool | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "check": CHECK_STATE,
            "position": self.position,
            "seq": self.seq,
            "state": self.state_id,
            "ok": self.ok,
            "reason": self.reason,
        }


@dataclass
class VerificationReport:
    """Everything `verify` found: the five checks and a row per listed state."""

    url: str
    checks: list[CheckResult]
    states: list[StateResult] = field(default_factory=list)
    instance_id: str | None = None
    owner: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True only when every check and every state passed (nothing failed, nothing unchecked)."""
        results: list[CheckResult | StateResult] = [*self.checks, *self.states]
        return all(item.ok is True for item in results)

    @property
    def verdict(self) -> str:
        if self.passed:
            return "passed"
        results: list[CheckResult | StateResult] = [*self.checks, *self.states]
        if any(item.ok is False for item in results):
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

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "instance": self.instance_id,
            "owner": self.owner,
            "verdict": self.verdict,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "results": [result.to_json() for result in self.checks] + [state.to_json() for state in self.states],
        }


@dataclass(frozen=True)
class VerifyOptions:
    """Limits and strategy: per-document timeout (s) and size limit (bytes), download concurrency."""

    timeout: float = 10.0
    max_document_bytes: int = 4 * 1024 * 1024
    max_protocol_bytes: int = 32 * 1024 * 1024
    concurrency: int = 16
    batched: bool = True
