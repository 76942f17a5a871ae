"""ape run index: load the InstanceTracker contract's logs into Postgres and print the analysis views."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tracker.chain.rpc import DEFAULT_RPC_BATCH, DEFAULT_RPC_RETRY, DEFAULT_TIMEOUT_S
from tracker.cli.boundary import command_boundary
from tracker.cli.options import connected, contract_option, json_option, network_option
from tracker.indexer import DEFAULT_SCHEMA

# `ape run` executes every script to list its commands: the indexer (psycopg, about 12 MB) is
# imported only when this command runs, not by `ape run verify`.
if TYPE_CHECKING:
    from tracker.indexer.engine import BatchReport, IndexSummary
    from tracker.indexer.report import Report

# libpq's variables that name a database server or database (the rest only fill in around them).
LIBPQ_TARGET = ("PGHOST", "PGHOSTADDR", "PGDATABASE", "PGSERVICE")


class Display:
    """A rich progress bar while catching up, then one status line per batch while following."""

    def __init__(self, enabled: bool, follow: bool):
        self.enabled = enabled
        self.follow = follow
        self.progress: Any = None
        self.task: Any = None
        self.start = 0

    def status(self, message: str) -> None:
        """A line about the run itself (a lost connection, a reconnect), on standard error also with --json."""
        self.stop()
        click.echo(message, err=True)

    def __call__(self, batch: BatchReport) -> None:
        if not self.enabled:
            return
        if self.progress is None and batch.last_block >= batch.target_block:
            if self.follow:  # caught up: one line per batch from here on
                click.echo(
                    f"blocks {batch.first_block}-{batch.last_block}: {batch.events} events"
                    + (f", {batch.skipped} skipped" if batch.skipped else "")
                    + f" in {batch.seconds:.2f} s",
                    err=True,
                )
            return
        if self.progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("indexing blocks"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()
            self.start = batch.first_block
            self.task = self.progress.add_task("blocks", total=batch.target_block - batch.first_block + 1)
        self.progress.update(
            self.task, completed=batch.last_block - self.start + 1, total=max(batch.target_block - self.start + 1, 1)
        )
        if batch.last_block >= batch.target_block:
            self.stop()

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _print_summary(summary: IndexSummary, target: str) -> None:
    span = f"blocks {summary.first_block}-{summary.last_block}" if summary.batches else "nothing new"
    click.echo(
        f"indexed {summary.events} events ({span}) of 0x{summary.contract} on chain id {summary.chain_id} "
        f"into {target}, schema {summary.schema} in {summary.seconds:.1f} s ({summary.events_per_s:,.0f} events/s)"
    )
    if summary.skipped_foreign:
        click.echo(f"skipped {summary.skipped_foreign} logs of other contracts")
    if summary.reorgs:
        click.echo(f"reorgs: {summary.reorgs}, rolled back to blocks {summary.rolled_back_to}")
    if summary.rereads:
        click.echo(f"batches read again because the chain moved while they were read: {summary.rereads}")
    if summary.reconnects:
        click.echo(f"reconnects to Postgres or the node: {summary.reconnects}")


def _print_provider(stats: Any, budget: Any) -> None:
    parts = [f"{stats.requests} requests ({stats.compute_units:,} compute units)"]
    if stats.rate_limited:
        parts.append(f"{stats.rate_limited} rate-limited and retried")
    if stats.transient_faults:
        parts.append(f"{stats.transient_faults} failed and retried")
    if stats.batch_cap:
        parts.append(f"batches capped at {stats.batch_cap} calls")
    if stats.batches_refused:
        parts.append("batches refused: single calls")
    line = "provider: " + ", ".join(parts)
    if stats.rate_limited and budget is None:
        line += " (--rpc-budget paces requests under the plan)"
    click.echo(line)


PROTOCOL_COLUMNS = (
    "instance_key",
    "entry",
    "seq",
    "state_id",
    "end_document",
    "block_number",
    "timestamp",
    "transaction_hash",
    "client_address",
)
MODEL_COLUMNS = (
    "model_id",
    "instances",
    "open_instances",
    "final_instances",
    "anchored_instances",
    "states",
    "duration_p50_s",
    "duration_p90_s",
    "gap_p50_s",
)
CLIENT_COLUMNS = (
    "client_address",
    "client_id",
    "transactions",
    "gas_used",
    "gas_per_state",
    "instances",
    "states",
    "terminations",
    "anchors",
    "operators",
)


def _print_report(result: Report, instance_id: str | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()

    def pick(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{key: row[key] for key in columns} for row in rows]

    sections = [
        ("Instances per model", pick(result.models, MODEL_COLUMNS)),
        ("Activity and gas per client", pick(result.clients, CLIENT_COLUMNS)),
        ("States per day", result.days),
        ("Gas per function", result.functions),
        ("Anchors per submitter", result.anchors),
        ("Executions started per state visit (from --documents)", result.children),
    ]
    if instance_id:
        sections.insert(0, (f"Instance protocol of {instance_id}", pick(result.protocol, PROTOCOL_COLUMNS)))
    for title, rows in sections:
        if not rows:
            console.print(f"{title}: no rows")
            continue
        table = Table(title=title)
        for column in rows[0]:
            table.add_column(column, overflow="fold")
        # Values from the chain (client ids above all) are shown, never read as markup.
        cells = [[escape("" if value is None else str(value)) for value in row.values()] for row in rows]
        for row_cells in cells:
            table.add_row(*row_cells)
        widths = [
            max(len(column), *(len(row_cells[index]) for row_cells in cells)) for index, column in enumerate(rows[0])
        ]
        if sum(widths) + 3 * len(widths) + 1 <= console.width:  # cells, padding and borders
            console.print(table)
        else:  # too wide to show whole: one record per row, a column per line (as psql's expanded display)
            _print_records(console, title, list(rows[0]), cells)


def _print_records(console: Any, title: str, columns: list[str], cells: list[list[str]]) -> None:
    from rich.table import Table

    console.print(f"[b]{title}[/b]", justify="center")
    width = max(len(column) for column in columns)
    for number, row_cells in enumerate(cells, start=1):
        console.rule(f"row {number}", characters="-")
        record = Table.grid(padding=(0, 2))
        record.add_column(min_width=width, no_wrap=True)
        record.add_column(overflow="fold")
        for column, cell in zip(columns, row_cells):
            record.add_row(column, cell)
        console.print(record)


def _jsonable(value: Any) -> Any:
    """JSON values: whole decimals (counts, wei) as integers, other decimals and times as strings."""
    from decimal import Decimal

    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


@click.command()
@network_option()
@contract_option()
@click.option(
    "--database",
    "database_url",
    default=None,
    metavar="URL",
    help="Postgres URL (default: DATABASE_URL, else libpq's PG* variables).",
)
@click.option("--schema", default=DEFAULT_SCHEMA, show_default=True, help="Postgres schema of the indexer.")
@click.option(
    "--from-block",
    type=int,
    default=None,
    help="First block of a new index (default: the recorded deployment block, else 0).",
)
@click.option("--to-block", type=int, default=None, help="Last block to index (default: head - confirmations).")
@click.option(
    "--confirmations",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Stay this many blocks behind the head.",
)
@click.option(
    "--follow",
    is_flag=True,
    help="Keep polling for new blocks; when Postgres or the node goes away, reconnect with backoff.",
)
@click.option(
    "--poll-interval", type=click.FloatRange(min=0), default=2.0, show_default=True, help="Seconds between polls."
)
@click.option(
    "--max-polls", type=click.IntRange(min=1), default=None, help="With --follow: stop after this many polls."
)
@click.option(
    "--batch-blocks",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Initial block range per eth_getLogs (it adapts).",
)
@click.option(
    "--max-batch-logs",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Logs per batch above which the block range shrinks.",
)
@click.option(
    "--rpc-budget",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="UNITS",
    help="Pace requests to this many compute units per second (Alchemy's costs: eth_getLogs 60, "
    "eth_getBlockByNumber and eth_getTransactionReceipt 20, eth_blockNumber 10), so that the run stays "
    "under the plan instead of bouncing off its rate limit. Free tiers allow 500 per second at Alchemy "
    "(older keys: 330) and 500 credits per second at Infura, whose credits per method differ from "
    "Alchemy's (there, a lower figure or --rpc-budget-unit requests). Default: no pacing; rate limits "
    "are retried.",
)
@click.option(
    "--rpc-budget-unit",
    type=click.Choice(["compute-units", "requests"]),
    default="compute-units",
    show_default=True,
    help="What --rpc-budget counts: compute units (Alchemy's table) or JSON-RPC calls.",
)
@click.option(
    "--rpc-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for one answer of the provider.",
)
@click.option(
    "--rpc-retry-window",
    type=click.FloatRange(min=0),
    default=DEFAULT_RPC_RETRY.max_wait,
    show_default=True,
    metavar="SECONDS",
    help="How long one request may keep being retried (rate limits, 5xx, dropped connections, timeouts) "
    "before the run stops with the provider's answer.",
)
@click.option(
    "--rpc-batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_RPC_BATCH,
    show_default=True,
    help="Calls per JSON-RPC batch at most (a provider's smaller cap is detected and kept to).",
)
@click.option(
    "--documents",
    "documents_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="After indexing, load from this publish directory's documents what each Task state ran (state_task) "
    "and which execution started which (execution_link).",
)
@click.option("--report", "show_report", is_flag=True, help="After indexing, print the analysis views.")
@click.option(
    "--instance",
    "instance_id",
    default=None,
    metavar="ID",
    help="With --report: the protocol of this instance (its instance key, or its execution id: every owner's).",
)
@json_option()
@command_boundary
def cli(
    network_choice,
    contract_address,
    database_url,
    schema,
    from_block,
    to_block,
    confirmations,
    follow,
    poll_interval,
    max_polls,
    batch_blocks,
    max_batch_logs,
    rpc_budget,
    rpc_budget_unit,
    rpc_timeout,
    rpc_retry_window,
    rpc_batch_size,
    documents_dir,
    show_report,
    instance_id,
    as_json,
):
    """Index InstanceTracker's logs into Postgres (exactly once, reorg-safe)."""
    from dataclasses import asdict, replace

    from tracker.chain import deployments
    from tracker.chain.contract import TrackerContract
    from tracker.chain.rpc import RpcBudget, RpcOptions, rpc_for
    from tracker.documents.ids import normalize_address, normalize_id
    from tracker.indexer.engine import IndexConfig, index, report
    from tracker.indexer.store import describe_target

    instance_id = normalize_id(instance_id, "--instance") if instance_id else None
    budget = RpcBudget(rpc_budget, per_request=rpc_budget_unit == "requests") if rpc_budget else None
    options = RpcOptions(
        budget=budget,
        timeout=rpc_timeout,
        retry=replace(DEFAULT_RPC_RETRY, max_wait=rpc_retry_window),
        batch_size=rpc_batch_size,
    )
    with connected(network_choice) as provider:
        if not (database_url or os.environ.get("DATABASE_URL") or any(os.environ.get(name) for name in LIBPQ_TARGET)):
            raise click.UsageError(
                "no database given: pass --database URL or set DATABASE_URL (or libpq's PGHOST/PGDATABASE); "
                "bin/stack prints one"
            )
        tracker = TrackerContract.at(contract_address)
        if from_block is not None:
            from ape import chain

            head = chain.blocks.height
            if from_block > head:
                raise click.UsageError(
                    f"--from-block {from_block} is past the chain's head (block {head}): nothing could be indexed"
                )
        rpc = rpc_for(provider, options)
        if from_block is None:
            record = deployments.recorded(provider.chain_id)
            matches = record is not None and normalize_address(record.address) == normalize_address(tracker.address)
            from_block = record.block_number if matches else 0
        config = IndexConfig(
            contract_address=tracker.address,
            database_url=database_url,
            schema=schema,
            from_block=from_block,
            to_block=to_block,
            confirmations=confirmations,
            batch_blocks=batch_blocks,
            max_batch_logs=max_batch_logs,
            follow=follow,
            poll_interval=poll_interval,
            max_polls=max_polls,
        )
        display = Display(enabled=not as_json, follow=follow)
        try:
            summary = index(config, rpc, on_batch=display, on_status=display.status)
        finally:
            display.stop()
            rpc.close()
        tasks = links = None
        if documents_dir is not None:
            from tracker.indexer.engine import load_links, load_tasks

            tasks = load_tasks(config, documents_dir)
            links = load_links(config, documents_dir)
        result = None
        if show_report:
            result = report(config, summary.chain_id, instance_id)
    stats = rpc.stats
    if as_json:
        document: dict[str, Any] = {"summary": summary.as_dict(), "rpc": asdict(stats)}
        if tasks is not None:
            document["tasks"] = asdict(tasks)
        if links is not None:
            document["links"] = asdict(links)
        if result is not None:
            document["report"] = _jsonable(result.as_dict())
        click.echo(json.dumps(document, indent=2))
        return
    _print_summary(summary, describe_target(config.database))
    if tasks is not None:
        click.echo(
            f"task documents: {tasks.added} states' code identity added ({tasks.states_with_tasks} states name a task"
            + (f"; {tasks.refused} refused, first: {tasks.first_refusal}" if tasks.refused else "")
            + ")"
        )
    if links is not None:
        click.echo(
            f"execution links: {links.added} added ({links.visits} state visits started executions"
            + (f"; {links.refused} refused, first: {links.first_refusal}" if links.refused else "")
            + ")"
        )
    if stats.rate_limited or stats.transient_faults or stats.batch_cap or stats.batches_refused:
        _print_provider(stats, budget)
    if result is not None:
        _print_report(result, instance_id)
