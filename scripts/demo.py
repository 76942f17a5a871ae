"""ape run demo: the whole loop on embedded defaults (local chain, emulated AWS, embedded Postgres)."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tracker.cli.boundary import command_boundary
from tracker.dev.demo import DemoConfig, run


@click.command()
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    default=Path(".demo"),
    show_default=True,
    help="Where the demo keeps logs, the publish directory, checkpoints and the embedded database.",
)
@click.option(
    "--executions",
    type=click.IntRange(2, 50),
    default=4,
    show_default=True,
    help="Executions of the ETL state machine to run (the last one fails).",
)
@command_boundary
def cli(work_dir, executions):
    """Run the whole loop locally: deploy, link ENS, run executions, track, index, serve, verify."""
    console = Console()
    started = time.monotonic()
    config = DemoConfig(project_root=Path.cwd(), work_dir=work_dir.resolve(), executions=executions)
    result = run(config, console)
    table = Table(title="Demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in result.figures.items():
        table.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    table.add_row("verification verdict", result.verdict)
    table.add_row("elapsed", f"{time.monotonic() - started:.0f} s")
    console.print(table)
    console.print(result.sql_hint)
    console.print(f"Logs of every step: {config.work_dir / 'logs'}")
    # Whole, unwrapped, so it can be copied into a browser (it also verifies there).
    if "explorer" in result.figures:
        console.print(f"Explorer: {result.figures['explorer']}", soft_wrap=True)
        console.print(f"Screenshot: {result.figures.get('explorer screenshot')}", soft_wrap=True)
    if result.verdict != "passed":
        raise SystemExit(1)
