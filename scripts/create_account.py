"""ape run create_account CLIENT_ID: a new account in ape's encrypted keystore, which registers
CLIENT_ID on the contract when it has funds (otherwise says how much it needs)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from tracker.chain.contract import TrackerContract
from tracker.cli.boundary import command_boundary
from tracker.cli.options import connected, contract_option, json_option, network_option, passphrase_for
from tracker.errors import ConfigurationError
from tracker.identity.accounts import check_new_alias, create_keyfile_account, register_client_id_when_funded
from tracker.identity.deploy import check_client_id


@click.command()
@click.argument("client_id")
@click.option("--alias", default=None, metavar="ALIAS", help="Alias of the new ape account (default: CLIENT_ID).")
@network_option()
@contract_option()
@json_option()
@command_boundary
def cli(client_id, alias, network_choice, contract_address, as_json):
    """Create an ape keyfile account and register CLIENT_ID for it when it is funded.

    The passphrase is read from APE_ACCOUNTS_<ALIAS>_PASSPHRASE (the alias in upper case), else
    prompted for on a terminal.
    """
    alias = alias or client_id
    check_client_id(client_id)
    with connected(network_choice) as provider:
        network = f"{provider.network.ecosystem.name}:{provider.network.name}:{provider.name}"
        contract = TrackerContract.at(contract_address)
        check_new_alias(alias)
        passphrase = passphrase_for(alias)
        if passphrase is None:
            if not sys.stdin.isatty():
                raise ConfigurationError(
                    f"no passphrase for account {alias!r}: set APE_ACCOUNTS_{alias.upper()}_PASSPHRASE "
                    "(there is no terminal to ask on)"
                )
            passphrase = click.prompt(
                f"Passphrase to encrypt account '{alias}'", hide_input=True, confirmation_prompt=True
            )
        account = create_keyfile_account(alias, passphrase)
        if not as_json:
            click.echo(f"created account '{alias}': {account.address}")
        funding = register_client_id_when_funded(TrackerContract(contract.contract, account), account, client_id)
    if as_json:
        click.echo(json.dumps({"alias": alias, **asdict(funding), "cost": funding.cost, "missing": funding.missing}))
    elif funding.step is not None:
        click.echo(f"client id {client_id!r}: {funding.step.status} ({funding.step.transaction_hash or 'already set'})")
    else:
        click.echo(
            f"client id {client_id!r} not registered: the account has {funding.balance} wei and needs "
            f"{funding.cost} wei ({funding.gas} gas x {funding.gas_price} wei per gas at most); send it "
            f"{funding.missing} wei, then run `ape run deploy --network {network} --account {alias} "
            f"--client-id {client_id}`"
        )
