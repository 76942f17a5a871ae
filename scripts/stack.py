"""ape run stack: a persistent local chain (anvil with ENS), AWS emulation and Postgres for the
step-by-step commands; prints the environment to export."""

from __future__ import annotations

from pathlib import Path

import click

from tracker.cli.boundary import command_boundary


@click.command()
@click.option(
    "--dir",
    "work_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".stack"),
    show_default=True,
    help="Where the chain, the database and the logs are kept.",
)
@click.option("--anvil-port", type=click.IntRange(1, 65535), default=8545, show_default=True)
@click.option("--moto-port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option(
    "--ens-name", default="local.eth", show_default=True, help="A .eth name registered for TEST::0 on a new chain."
)
@command_boundary
def cli(work_dir, anvil_port, moto_port, ens_name):
    """Run anvil (its chain kept across restarts, ENS installed), a moto server and Postgres until Ctrl-C."""
    from rich.console import Console

    from tracker.dev.stack import StackConfig, run

    run(StackConfig(work_dir, anvil_port, moto_port, ens_name), Console(stderr=True))
