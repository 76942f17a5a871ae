"""ape run deploy_model: create or update a Step Functions state machine and register its model id."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tracker.cli.boundary import command_boundary
from tracker.cli.options import account_option, connected, contract_option, json_option, load_account, network_option
from tracker.errors import ConfigurationError


@click.command()
@click.argument("definition_file", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="State machine name (updated, with a new version, when it exists).")
@click.option("--role-arn", default=None, help="Execution role (required to create a state machine).")
@click.option(
    "--log-group",
    default=None,
    metavar="NAME",
    help="Log every event of its executions, with their data, to this CloudWatch Logs group (created if "
    "missing): how Express workflows and a Distributed Map's Express children are tracked.",
)
@click.option("--region", default=None, help="AWS region (default: AWS_REGION / the profile's).")
@click.option(
    "--owner",
    default=None,
    metavar="ADDRESS",
    help="Register the model under this account (default: the sending account, which must then be its operator).",
)
@network_option()
@account_option()
@contract_option()
@json_option()
@command_boundary
def cli(
    definition_file, name, role_arn, log_group, region, owner, network_choice, account_alias, contract_address, as_json
):
    """Deploy DEFINITION_FILE as state machine NAME and register its model on InstanceTracker."""
    from tracker.aws.session import aws_session
    from tracker.chain.contract import TrackerContract
    from tracker.tracking.control import deploy_model

    try:
        definition = definition_file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"cannot read {definition_file}: {error.strerror}") from None
    session = aws_session(region)
    with connected(network_choice) as provider:
        contract = TrackerContract.at(contract_address, load_account(account_alias, provider))
        outcome = deploy_model(session, contract, name, definition, role_arn, owner, log_group)
    if as_json:
        click.echo(json.dumps(outcome.__dict__, indent=2))
        return
    if outcome.change == "changed":
        click.echo(f"model changed: {outcome.previous_model_id} -> {outcome.model_id}")
    else:
        click.echo(f"model {outcome.change}: {outcome.model_id}")
    click.echo(
        f"state machine {outcome.state_machine_arn}"
        + (f" (version {outcome.version_arn})" if outcome.version_arn else "")
    )
    click.echo("model registered on chain" if outcome.registered else "model was already registered on chain")
