"""Prints every benchmark figure beside its target and the measured baseline, from bench/results/*.json.

Run by bin/bench after the benchmarks; `python bench/report.py` alone reprints the last results.
A missing results file is shown as "not run", never as a figure.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    bench: str
    key: str
    label: str
    target: str
    meets: object  # a predicate on the measured value, or None when there is no target
    baseline_key: str | None = None
    baseline_label: str = ""


FIGURES = (
    Figure(
        "gas",
        "paper_execution_gas",
        "13-state execution, gas",
        "<= 130,000",
        lambda v: v <= 130_000,
        "prototype_paper_execution_gas",
        "prototype",
    ),
    Figure(
        "gas",
        "paper_execution_txs",
        "13-state execution, transactions",
        "<= 1",
        lambda v: v <= 1,
        "prototype_paper_execution_txs",
        "prototype",
    ),
    Figure(
        "gas",
        "marginal_state_gas",
        "each further state in a batch, gas",
        "<= 2,600",
        lambda v: v <= 2_600,
        "prototype_register_state_gas",
        "prototype, one tx per state",
    ),
    Figure("gas", "anchor_gas", "one anchored Merkle root, gas", "<= 50,000", lambda v: v <= 50_000),
    Figure(
        "gas", "anchored_terminate_gas", "anchored termination (closeAnchored), gas", "<= 35,000", lambda v: v <= 35_000
    ),
    Figure(
        "tracker",
        "states_per_s_direct",
        "tracker backlog, states/s (direct)",
        ">= 500",
        lambda v: v >= 500,
        "states_per_s_one_tx_per_state",
        "one tx per state",
    ),
    Figure(
        "tracker",
        "states_per_s_anchor",
        "tracker backlog, states/s (anchor)",
        ">= 500",
        lambda v: v >= 500,
        "states_per_s_one_tx_per_state",
        "one tx per state",
    ),
    Figure(
        "indexer",
        "events_per_s",
        "indexer, events/s into an empty schema",
        ">= 20,000",
        lambda v: v >= 20_000,
        "events_per_s_per_event_baseline",
        "per-event fetch + INSERT",
    ),
    Figure("indexer", "events_per_s_at_5m", "indexer, events/s into 5M state rows", ">= 15,000", lambda v: v >= 15_000),
    Figure("indexer", "rollback_1_block_ms_at_5m", "1-block rollback at 5M rows, ms", "<= 100", lambda v: v <= 100),
    Figure("indexer", "report_seconds_at_5m", "every report view at 5M rows, s", "<= 1", lambda v: v <= 1),
    Figure(
        "indexer", "instance_protocol_ms_at_5m", "one instance's protocol at 5M rows, ms", "<= 10", lambda v: v <= 10
    ),
    Figure("indexer", "peak_rss_mb", "indexer peak RSS, 100k events, MB", "<= 300", lambda v: v <= 300),
    Figure("indexer", "bytes_per_state_row", "bytes per state row at 5M (all tables)", "", None),
    Figure("indexer", "speedup", "indexer speed-up over per-event", ">= 20x", lambda v: v >= 20),
    Figure(
        "provider",
        "floor_ratio",
        "indexer through a hosted provider (60 ms, 330 CU/s), x budget floor",
        "<= 1.3",
        lambda v: v <= 1.3,
    ),
    Figure("provider", "exact", "indexer through a hosted provider, tables exact", "True", lambda v: v is True),
    Figure(
        "provider",
        "verify_round_trips",
        "verify 1,000 states through a hosted provider, round trips",
        "<= 15",
        lambda v: v <= 15,
    ),
    Figure(
        "provider",
        "verify_seconds",
        "verify 1,000 states through a hosted provider, s",
        "<= 2",
        lambda v: v <= 2,
        "verify_direct_seconds",
        "straight to the node",
    ),
    Figure(
        "provider",
        "track_floor_share",
        "tracker through a hosted provider at 12 s blocks, share of the floor",
        ">= 0.6",
        lambda v: v >= 0.6,
        "track_states_per_s",
        "states/s",
    ),
    Figure(
        "provider",
        "track_registered_twice",
        "tracker through drops and fee rises, states registered twice",
        "0",
        lambda v: v == 0,
    ),
    Figure(
        "provider",
        "deploy_all_done",
        "deploy with ENS and certificate through a hosted provider",
        "True",
        lambda v: v is True,
        "deploy_round_trips",
        "round trips",
    ),
    Figure(
        "verify",
        "seconds_batched",
        "verify a 1,000-state protocol, s",
        "<= 1.5",
        lambda v: v <= 1.5,
        "seconds_one_call_per_state",
        "one call per state, sequential",
    ),
    Figure(
        "verify",
        "peak_rss_mb_10k",
        "ape run verify, 10,000 states, peak RSS MB",
        "<= 200",
        lambda v: v <= 200,
        "peak_rss_mb_1",
        "the same command on 1 state",
    ),
    Figure(
        "explorer",
        "page_seconds_1000",
        "explorer in headless Chromium, 1,000 states, s to the verdict",
        "",
        None,
        "verify_protocol_seconds_1000",
        "verify_protocol, same protocol",
    ),
    Figure("explorer", "bundle_gzip_kb", "explorer page, gzipped KB", "<= 300", lambda v: v <= 300),
)


def load_results(directory: Path = RESULTS) -> dict[str, dict]:
    results = {}
    for path in sorted(directory.glob("*.json")):
        try:
            results[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            print(f"warning: {path} is not valid JSON ({error})", file=sys.stderr)
    return results


def _format(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def build_table(results: dict[str, dict]) -> tuple[Table, int]:
    table = Table(title="Benchmarks (bench/results/*.json)")
    for column in ("figure", "measured", "target", "meets", "baseline"):
        table.add_column(column)
    misses = 0
    for figure in FIGURES:
        data = results.get(figure.bench)
        if data is None or figure.key not in data:
            table.add_row(figure.label, "not run", figure.target, "-", "")
            continue
        value = data[figure.key]
        ok = figure.meets(value) if callable(figure.meets) else None
        misses += 0 if ok is not False else 1
        baseline = ""
        if figure.baseline_key and figure.baseline_key in data:
            baseline = f"{_format(data[figure.baseline_key])} ({figure.baseline_label})"
        meets = "-" if ok is None else "yes" if ok else "NO"
        table.add_row(figure.label, _format(value), figure.target or "-", meets, baseline)
    return table, misses


def main() -> int:
    results = load_results()
    table, misses = build_table(results)
    Console().print(table)
    if misses:
        Console().print(f"{misses} figure(s) miss their target.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
