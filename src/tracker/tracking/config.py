"""How a tracking run is configured (TrackConfig) and what it reports (TrackSummary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker.errors import TrackerError
from tracker.retry import RetryPolicy

MODES = ("direct", "anchor", "per-state")


@dataclass(frozen=True)
class TrackConfig:
    """How to track: the mode, data inclusion, follow mode, packing, and where progress is kept."""

    mode: str = "direct"
    include_data: bool = False
    follow: bool = False
    poll_interval: float = 5.0
    max_polls: int | None = None
    max_instances_per_tx: int = 100
    max_states_per_tx: int = 2000
    state_dir: Path = Path(".tracker")
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TrackerError(f"unknown mode {self.mode!r} (expected one of {', '.join(MODES)})")


@dataclass
class TrackSummary:
    """What a run did; `to_json()` is the `--json` output."""

    mode: str
    executions: int = 0
    states_registered: int = 0
    states_recovered: int = 0
    instances_registered: int = 0
    instances_terminated: int = 0
    transactions: int = 0
    gas_used: int = 0
    pending_executions: int = 0
    held_events: int = 0
    polls: int = 0
    retries: int = 0
    anchors: list[str] = field(default_factory=list)
    protocols_written: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "executions": self.executions,
            "states_registered": self.states_registered,
            "states_recovered": self.states_recovered,
            "instances_registered": self.instances_registered,
            "instances_terminated": self.instances_terminated,
            "transactions": self.transactions,
            "gas_used": self.gas_used,
            "pending_executions": self.pending_executions,
            "held_events": self.held_events,
            "polls": self.polls,
            "retries": self.retries,
            "anchors": list(self.anchors),
            "protocols_written": sorted(set(self.protocols_written)),
            "elapsed_s": round(self.elapsed_s, 3),
        }
