"""New keyfile accounts: created in ape's keystore, registering their client id once funded."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tracker.identity.accounts import AccountCreationError, create_keyfile_account, register_client_id_when_funded

PROJECT = Path(__file__).resolve().parents[2]
PASSPHRASE = "a passphrase 42"


@pytest.fixture
def alias():
    name = f"deploy-test-{uuid.uuid4().hex[:8]}"
    yield name
    from ape import accounts

    keyfile = accounts.containers["accounts"].data_folder / f"{name}.json"
    keyfile.unlink(missing_ok=True)


@pytest.fixture
def anvil_uri(chain) -> str:
    # ape's in-process chain refuses to estimate gas for an account without funds; nodes do not.
    if chain.provider.name != "foundry":
        pytest.skip("needs a node that estimates gas for unfunded accounts: --network ethereum:local:foundry")
    return chain.provider.uri


def test_unfunded_account_is_told_what_it_needs_then_registers_once_funded(alias, tracker, owner, anvil_uri):
    account = create_keyfile_account(alias, PASSPHRASE)

    unfunded = register_client_id_when_funded(tracker, account, "acme")

    assert unfunded.step is None
    assert unfunded.balance == 0
    assert unfunded.missing == unfunded.gas * unfunded.gas_price > 0
    assert tracker.client_id(account.address) == ""

    owner.transfer(account, unfunded.cost * 3)
    funded = register_client_id_when_funded(tracker, account, "acme")

    assert funded.step is not None and funded.step.status == "done"
    assert tracker.client_id(account.address) == "acme"


def test_alias_in_use_is_refused(alias):
    create_keyfile_account(alias, PASSPHRASE)

    with pytest.raises(AccountCreationError) as error:
        create_keyfile_account(alias, PASSPHRASE)

    assert str(error.value) == f"an ape account named {alias!r} already exists (see `ape accounts list`)"


def test_empty_passphrase_is_refused(alias):
    with pytest.raises(AccountCreationError) as error:
        create_keyfile_account(alias, "")

    assert str(error.value) == f"a passphrase is needed to encrypt account {alias!r}"


def test_create_account_command_prints_the_address_and_what_it_needs(alias, tracker, anvil_uri):
    environment = dict(os.environ, **{f"APE_ACCOUNTS_{alias}_PASSPHRASE": PASSPHRASE})

    result = subprocess.run(
        ["ape", "run", "create_account", "acme", "--alias", alias, "--network", anvil_uri,
         "--contract", tracker.address, "--json"],
        cwd=PROJECT, env=environment, capture_output=True, text=True, timeout=180,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    from ape import accounts

    assert accounts.load(alias).address == outcome["address"]
    assert outcome["step"] is None
    assert outcome["missing"] == outcome["gas"] * outcome["gas_price"] > 0
