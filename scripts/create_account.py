"""ape run create_account CLIENT_ID: a new account in ape's encrypted keystore, which registers
CLIENT_ID on the contract when it has funds (otherwise says how much it needs)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import click

from tracker.chain.contract import TrackerContract
from tracker.cli.boundary import command_boundary
from tracker.cli.options import connected, contract_option, json_option, network_option
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

    The passphrase is prompted for, or read from APE_ACCOUNTS_<ALIAS>_PASSPHRASE.
    """
    if as_json:
        from ape.logging import LogLevel, logger

        logger.set_level(LogLevel.ERROR)  # ape logs to stdout; --json leaves only the document there
    alias = alias or client_id
    check_client_id(client_id)
    with connected(network_choice):
        tracker = TrackerContract.at(contract_address)
        check_new_alias(alias)
        passphrase = os.environ.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE") or click.prompt(
            f"Passphrase to encrypt account '{alias}'", hide_input=True, confirmation_prompt=True
        )
        account = create_keyfile_account(alias, passphrase)
        if not as_json:
            click.echo(f"created account '{alias}': {account.address}")
        funding = register_client_id_when_funded(TrackerContract(tracker.contract, account), account, client_id)
    if as_json:
        click.echo(json.dumps({"alias": alias, **asdict(funding), "cost": funding.cost, "missing": funding.missing}))
    elif funding.step is not None:
        click.echo(f"client id {client_id!r}: {funding.step.status} ({funding.step.transaction_hash or 'already set'})")
    else:
        click.echo(
            f"client id {client_id!r} not registered: the account has {funding.balance} wei and needs "
            f"{funding.cost} wei ({funding.gas} gas x {funding.gas_price} wei per gas at most); send it "
            f"{funding.missing} wei, then run `ape run deploy --account {alias} --client-id {client_id}`"
        )
