"""ape run deploy: deploy InstanceTracker (or reuse the recorded deployment) and set up the
account's identity: client id, ENS link and certificate fingerprint, each step idempotent."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from tracker.cli.boundary import command_boundary
from tracker.cli.options import account_option, connected, json_option, load_account, network_option
from tracker.identity.deploy import IdentityReport, IdentityRequest, set_up_identity


@click.command()
@network_option()
@account_option()
@click.option("--client-id", default=None, metavar="ID", help="Register this client id for the account.")
@click.option("--ens-name", default=None, metavar="NAME", help="ENS name the account controls, linked to it.")
@click.option("--uri", default=None, metavar="https://HOST", help="Protocol server URL: the name's url record.")
@click.option(
    "--cert",
    "certificate_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PEM",
    help="Server certificate (PEM or DER); default: the one the --uri host presents over TLS.",
)
@click.option("--dry-run", is_flag=True, help="Print what would change with gas estimates; send nothing.")
@json_option()
@command_boundary
def cli(network_choice, account_alias, client_id, ens_name, uri, certificate_path, dry_run, as_json):
    """Deploy InstanceTracker and link the account's identity (client id, ENS, certificate)."""
    request = IdentityRequest(
        client_id=client_id,
        ens_name=ens_name,
        uri=uri,
        certificate_path=certificate_path,
        dry_run=dry_run,
    )
    with connected(network_choice) as provider:
        sender = load_account(account_alias, provider)
        report = set_up_identity(sender, request)
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
    else:
        print_report(report, dry_run)


def print_report(report: IdentityReport, dry_run: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if report.contract:
        console.print(f"InstanceTracker at {report.contract} (chain id {report.chain_id})")
    if report.explorer_url:
        console.print(f"explorer: {report.explorer_url}")
    title = "deploy (dry run: nothing sent)" if dry_run else "deploy"
    table = Table(title=title)
    for column in ("step", "status", "detail", "gas", "transaction"):
        table.add_column(column)
    for step in report.steps:
        table.add_row(
            step.step,
            step.status,
            step.detail,
            "" if step.gas is None else f"{step.gas:,}",
            step.transaction_hash or "",
        )
    console.print(table)
