"""ape run deploy: deploy InstanceTracker (or reuse the deployment recorded for the chain)."""

from __future__ import annotations

import click

from tracker.cli import account_option, connected, load_account, network_option
from tracker.errors import command_boundary
from tracker.identity import deploy_or_reuse


@click.command()
@network_option()
@account_option()
@click.option("--redeploy", is_flag=True, help="Deploy a new contract even when one is recorded.")
@command_boundary
def cli(network_choice, account_alias, redeploy):
    """Deploy InstanceTracker and print its address."""
    with connected(network_choice) as provider:
        sender = load_account(account_alias, provider)
        outcome = deploy_or_reuse(sender, redeploy=redeploy)
        verb = "deployed" if outcome.deployed else "reusing"
        click.echo(f"InstanceTracker {verb} at {outcome.tracker.address} (chain id {provider.chain_id})")
        if outcome.explorer_url:
            click.echo(f"explorer: {outcome.explorer_url}")
