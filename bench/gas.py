"""Gas of InstanceTracker on anvil, beside the published prototype's figures and the targets.

Run as `.venv/bin/python bench/gas.py` (bin/bench runs it too). It starts its own anvil through
ape's networks API, deploys a fresh contract, measures every figure from transaction receipts,
prints a table and writes bench/results/gas.json. It never fails on a figure: misses are shown.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = ROOT / "bench" / "results" / "gas.json"
NETWORK = "ethereum:local:foundry"

# The published prototype, measured side by side on the same local chain with solc 0.8.28
# (quoted facts: DESIGN.md, issue 2). Its states cost one transaction each.
PROTOTYPE_REGISTER_MODEL_GAS = 137_133
PROTOTYPE_REGISTER_INSTANCE_GAS = 115_905
PROTOTYPE_REGISTER_STATE_GAS = 54_028
PROTOTYPE_PAPER_EXECUTION_GAS = 955_402
PROTOTYPE_PAPER_EXECUTION_TXS = 15

PAPER_EXECUTION_STATES = 13
MARGINAL_SMALL_BATCH = 1
MARGINAL_LARGE_BATCH = 101
ANCHOR_LEAF_COUNTS = (1, 10_000)

TARGET_PAPER_EXECUTION_GAS = 130_000
TARGET_PAPER_EXECUTION_TXS = 1
TARGET_MARGINAL_STATE_GAS = 2_600
TARGET_ANCHOR_GAS = 50_000
TARGET_ANCHORED_TERMINATE_GAS = 35_000


@dataclass(frozen=True)
class GasFigures:
    paper_execution_gas: int
    paper_execution_txs: int
    paper_execution_with_termination_gas: int
    paper_execution_with_termination_txs: int
    marginal_state_gas: float
    batch_of_1_gas: int
    batch_of_101_gas: int
    anchor_gas: int
    anchor_gas_by_leaf_count: dict[str, int]
    register_model_gas: int
    register_instance_gas: int
    register_states_one_gas: int
    terminate_gas: int
    anchored_terminate_gas: int


def ident(label: str) -> bytes:
    """A bytes32 id: SHA-256 of a label, like the ids of real documents."""
    return hashlib.sha256(label.encode("utf-8")).digest()


def labelled_ids(prefix: str, count: int) -> list[bytes]:
    return [ident(f"{prefix}-{n}") for n in range(count)]


def measure(contract: Any, sender: Any) -> GasFigures:
    """Every figure from the receipts of fresh calls on a freshly deployed contract.

    Every write names its owner first; the sender is the owner, so no operator lookup is paid.
    """
    owner = sender.address

    def gas(method: str, *args: Any) -> int:
        return int(getattr(contract, method)(*args, sender=sender).gas_used)

    # The published 13-state execution: new model, instance and all states in one transaction.
    paper = gas(
        "registerExecution",
        owner,
        ident("paper execution"),
        ident("paper model"),
        ident("paper instance document"),
        labelled_ids("paper", PAPER_EXECUTION_STATES),
    )
    terminate = gas("terminate", owner, ident("paper execution"), PAPER_EXECUTION_STATES, [], 0, ident("paper end"))

    # A model alone, an instance of a known model without states, then a single state.
    register_model = gas("registerModel", owner, ident("model"))
    register_instance = gas(
        "registerExecution", owner, ident("execution"), ident("model"), ident("instance document"), []
    )
    register_states_one = gas("registerStates", owner, ident("execution"), 0, [ident("one state")])

    # Marginal cost of a state inside a batch: two empty instances in the same condition.
    for name in ("small", "large"):
        gas("registerExecution", owner, ident(f"{name} batch"), ident("model"), ident(f"{name} document"), [])
    small = gas("registerStates", owner, ident("small batch"), 0, labelled_ids("small", MARGINAL_SMALL_BATCH))
    large = gas("registerStates", owner, ident("large batch"), 0, labelled_ids("large", MARGINAL_LARGE_BATCH))
    marginal = (large - small) / (MARGINAL_LARGE_BATCH - MARGINAL_SMALL_BATCH)

    anchors = {str(count): gas("anchorStates", ident(f"root over {count}"), count) for count in ANCHOR_LEAF_COUNTS}

    # An anchored instance closed for good with the (count, head) of its anchored 13 states.
    gas("registerAnchoredExecution", owner, ident("anchored"), ident("model"), ident("anchored document"))
    anchored_terminate = gas(
        "closeAnchored",
        owner,
        ident("anchored"),
        0,
        PAPER_EXECUTION_STATES,
        ident("anchored head"),
        ident("anchored end"),
        True,
    )

    return GasFigures(
        paper_execution_gas=paper,
        paper_execution_txs=1,
        paper_execution_with_termination_gas=paper + terminate,
        paper_execution_with_termination_txs=2,
        marginal_state_gas=round(marginal, 1),
        batch_of_1_gas=small,
        batch_of_101_gas=large,
        anchor_gas=max(anchors.values()),
        anchor_gas_by_leaf_count=anchors,
        register_model_gas=register_model,
        register_instance_gas=register_instance,
        register_states_one_gas=register_states_one,
        terminate_gas=terminate,
        anchored_terminate_gas=anchored_terminate,
    )


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    target: str
    meets: bool | None
    prototype: str


def rows(figures: GasFigures) -> list[Row]:
    def check(value: float, limit: float) -> bool:
        return value <= limit

    def n(value: float) -> str:
        return f"{value:,}"

    return [
        Row(
            f"{PAPER_EXECUTION_STATES}-state execution",
            f"{n(figures.paper_execution_gas)} / {figures.paper_execution_txs} tx",
            f"<= {n(TARGET_PAPER_EXECUTION_GAS)} / <= {TARGET_PAPER_EXECUTION_TXS} txs",
            check(figures.paper_execution_gas, TARGET_PAPER_EXECUTION_GAS)
            and check(figures.paper_execution_txs, TARGET_PAPER_EXECUTION_TXS),
            f"{n(PROTOTYPE_PAPER_EXECUTION_GAS)} / {PROTOTYPE_PAPER_EXECUTION_TXS} txs",
        ),
        Row(
            "  same, then terminated",
            f"{n(figures.paper_execution_with_termination_gas)} / {figures.paper_execution_with_termination_txs} txs",
            "",
            None,
            "-",
        ),
        Row(
            "each further state",
            n(figures.marginal_state_gas),
            f"<= {n(TARGET_MARGINAL_STATE_GAS)}",
            check(figures.marginal_state_gas, TARGET_MARGINAL_STATE_GAS),
            f"{n(PROTOTYPE_REGISTER_STATE_GAS)} (1 tx each)",
        ),
        *[
            Row(
                f"anchor, leafCount {n(int(count))}",
                n(value),
                f"<= {n(TARGET_ANCHOR_GAS)}",
                check(value, TARGET_ANCHOR_GAS),
                "-",
            )
            for count, value in figures.anchor_gas_by_leaf_count.items()
        ],
        Row(
            "anchored closeAnchored(final)",
            n(figures.anchored_terminate_gas),
            f"<= {n(TARGET_ANCHORED_TERMINATE_GAS)}",
            check(figures.anchored_terminate_gas, TARGET_ANCHORED_TERMINATE_GAS),
            "-",
        ),
        Row("registerModel", n(figures.register_model_gas), "", None, n(PROTOTYPE_REGISTER_MODEL_GAS)),
        Row(
            "registerExecution, known model, no states",
            n(figures.register_instance_gas),
            "",
            None,
            n(PROTOTYPE_REGISTER_INSTANCE_GAS),
        ),
        Row(
            "registerStates, 1 state",
            n(figures.register_states_one_gas),
            "",
            None,
            n(PROTOTYPE_REGISTER_STATE_GAS),
        ),
        Row("terminate, no further states", n(figures.terminate_gas), "", None, "-"),
    ]


def results_document(figures: GasFigures, environment: dict[str, Any]) -> dict[str, Any]:
    return {
        **asdict(figures),
        "prototype_register_model_gas": PROTOTYPE_REGISTER_MODEL_GAS,
        "prototype_register_instance_gas": PROTOTYPE_REGISTER_INSTANCE_GAS,
        "prototype_register_state_gas": PROTOTYPE_REGISTER_STATE_GAS,
        "prototype_paper_execution_gas": PROTOTYPE_PAPER_EXECUTION_GAS,
        "prototype_paper_execution_txs": PROTOTYPE_PAPER_EXECUTION_TXS,
        "targets": {
            "paper_execution_gas": TARGET_PAPER_EXECUTION_GAS,
            "paper_execution_txs": TARGET_PAPER_EXECUTION_TXS,
            "marginal_state_gas": TARGET_MARGINAL_STATE_GAS,
            "anchor_gas": TARGET_ANCHOR_GAS,
            "anchored_terminate_gas": TARGET_ANCHORED_TERMINATE_GAS,
        },
        "meets_targets": {
            "paper_execution_gas": figures.paper_execution_gas <= TARGET_PAPER_EXECUTION_GAS,
            "paper_execution_txs": figures.paper_execution_txs <= TARGET_PAPER_EXECUTION_TXS,
            "marginal_state_gas": figures.marginal_state_gas <= TARGET_MARGINAL_STATE_GAS,
            "anchor_gas": figures.anchor_gas <= TARGET_ANCHOR_GAS,
            "anchored_terminate_gas": figures.anchored_terminate_gas <= TARGET_ANCHORED_TERMINATE_GAS,
        },
        **environment,
    }


def print_table(table_rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"InstanceTracker gas on anvil ({NETWORK})")
    for column in ("figure", "gas (/ txs)", "target", "meets", "prototype"):
        table.add_column(column)
    marks: dict[bool | None, str] = {True: "yes", False: "NO", None: ""}
    for row in table_rows:
        table.add_row(row.figure, row.measured, row.target, marks[row.meets], row.prototype)
    Console(width=None if sys.stdout.isatty() else 110).print(table)


def run(on_status: Callable[[str], None]) -> dict[str, Any]:
    """Starts anvil, deploys, measures and returns the results document."""
    from ape import accounts, networks, project
    from ape.logging import logger

    logger.set_level("WARNING")  # one line per transaction would bury the table
    with networks.parse_network_choice(NETWORK) as provider:
        on_status("deploying InstanceTracker")
        sender = accounts.test_accounts[0]
        contract = sender.deploy(project.InstanceTracker)
        on_status("measuring")
        figures = measure(contract, sender)
        environment = {
            "network": NETWORK,
            "chain_id": int(provider.chain_id),
            "solc_version": str(project.config.solidity.version or ""),
            "optimization_runs": project.config.solidity.optimization_runs,
        }
    return results_document(figures, environment) | {"_figures": figures}


def main() -> int:
    os.chdir(ROOT)  # ape finds the project (contracts, ape-config.yaml) from the working directory
    # ape-foundry looks anvil up on PATH; bin/setup links it beside this interpreter in .venv/bin.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting anvil") as status:
        document = run(lambda message: status.update(message))
    figures = document.pop("_figures")
    print_table(rows(figures))
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    console.print(f"wrote {RESULTS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
