"""How a tracking run is configured (TrackConfig) and what it reports (TrackSummary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from tracker.errors import ConfigurationError
from tracker.retry import RetryPolicy

Mode = Literal["direct", "anchor", "per-state"]
MODES: tuple[str, ...] = get_args(Mode)
# Well under the 30M (Sepolia, mainnet: 36M) block gas limit, so a transaction of ours never
# competes for a whole block; a huge execution is spread over several.
DEFAULT_MAX_GAS_PER_TX = 8_000_000
DEFAULT_MAX_STATES_PER_CALL = 1_000


@dataclass(frozen=True)
class TrackConfig:
    """How to track: the mode, whose namespace, data inclusion, follow mode, packing, progress.

    `owner` is the account the instances are registered under (default: the sending account);
    the sender must then be the owner or an operator the owner approved on the contract.
    """

    mode: Mode = "direct"
    owner: str | None = None
    include_data: bool = False
    follow: bool = False
    poll_interval: float = 5.0
    max_polls: int | None = None
    max_instances_per_tx: int = 100
    max_states_per_call: int = DEFAULT_MAX_STATES_PER_CALL
    max_gas_per_tx: int = DEFAULT_MAX_GAS_PER_TX
    max_in_flight: int = 4
    replace_after_s: float = 60.0
    confirmations: int = 0
    state_dir: Path = Path(".tracker")
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigurationError(f"unknown mode {self.mode!r} (expected one of {', '.join(MODES)})")
        for name in ("max_instances_per_tx", "max_states_per_call"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_gas_per_tx < 200_000:
            raise ConfigurationError(f"max_gas_per_tx must be at least 200,000, got {self.max_gas_per_tx:,}")
        if self.max_in_flight < 1 or self.confirmations < 0 or self.replace_after_s <= 0:
            raise ConfigurationError(
                "max_in_flight must be at least 1, confirmations at least 0 and replace_after_s positive"
            )
        if self.poll_interval < 0:
            raise ConfigurationError(f"poll_interval must not be negative, got {self.poll_interval}")


@dataclass(frozen=True)
class SkippedExecution:
    """An execution this poll could not register, and why (the others were registered)."""

    execution_arn: str
    reason: str


@dataclass
class TrackSummary:
    """What a run did; `to_json()` is the `--json` output."""

    mode: str
    executions: int = 0
    # executions another execution started (Map Run children, nested starts), not in `executions`
    child_executions: int = 0
    states_registered: int = 0
    states_recovered: int = 0
    instances_registered: int = 0
    attempts_ended: int = 0
    instances_terminated: int = 0
    transactions: int = 0
    gas_used: int = 0
    pending_executions: int = 0
    held_events: int = 0
    polls: int = 0
    retries: int = 0
    anchors: list[str] = field(default_factory=list)
    protocols_written: list[str] = field(default_factory=list)
    skipped: list[SkippedExecution] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "executions": self.executions,
            "child_executions": self.child_executions,
            "states_registered": self.states_registered,
            "states_recovered": self.states_recovered,
            "instances_registered": self.instances_registered,
            "attempts_ended": self.attempts_ended,
            "instances_terminated": self.instances_terminated,
            "transactions": self.transactions,
            "gas_used": self.gas_used,
            "pending_executions": self.pending_executions,
            "held_events": self.held_events,
            "polls": self.polls,
            "retries": self.retries,
            "anchors": list(self.anchors),
            "protocols_written": sorted(set(self.protocols_written)),
            "skipped": [{"execution_arn": s.execution_arn, "reason": s.reason} for s in self.skipped],
            "warnings": list(self.warnings),
            "elapsed_s": round(self.elapsed_s, 3),
        }
