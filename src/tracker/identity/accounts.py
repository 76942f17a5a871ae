"""New accounts: an encrypted keyfile account, and its client id registered once it is funded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracker.chain.contract import TrackerContract
from tracker.chain.revert import describe_revert
from tracker.chain.steps import StepResult, send_or_estimate, skipped
from tracker.errors import ChainError, ConfigurationError, one_line
from tracker.identity.deploy import FEE_HEADROOM, GAS_HEADROOM_PERCENT, check_client_id


class AccountCreationError(ConfigurationError):
    """A new keyfile account cannot be created (alias taken or invalid, no passphrase)."""


@dataclass(frozen=True)
class ClientIdFunding:
    """Whether a new account could register its client id, and what it lacked if not.

    `gas` is the gas limit sent (the estimate plus headroom) and `gas_price` the maximum fee per
    gas sent, so `cost` is exactly what the account must hold for the transaction to be accepted.
    """

    address: str
    client_id: str
    balance: int
    gas: int
    gas_price: int
    step: StepResult | None

    @property
    def cost(self) -> int:
        return self.gas * self.gas_price

    @property
    def missing(self) -> int:
        return max(self.cost - self.balance, 0)


def check_new_alias(alias: str) -> str:
    """Raises `AccountCreationError` when an ape account already has this alias."""
    from ape import accounts

    if alias in accounts.aliases:
        raise AccountCreationError(f"an ape account named {alias!r} already exists (see `ape accounts list`)")
    return alias


def create_keyfile_account(alias: str, passphrase: str) -> Any:
    """A new account in ape's encrypted keystore, unlocked for this run.

    Raises `AccountCreationError` when the alias is taken or invalid or the passphrase is empty.
    """
    from ape.exceptions import AccountsError
    from ape_accounts import generate_account

    check_new_alias(alias)
    if not passphrase:
        raise AccountCreationError(f"a passphrase is needed to encrypt account {alias!r}")
    try:
        account, _mnemonic = generate_account(alias, passphrase)
    except AccountsError as error:
        raise AccountCreationError(f"cannot create account {alias!r}: {one_line(error)}") from error
    account.set_autosign(True, passphrase=passphrase)
    return account


def register_client_id_when_funded(contract: TrackerContract, account: Any, client_id: str) -> ClientIdFunding:
    """Registers the client id when the account's balance covers the gas (estimate x gas price)."""
    from ape import chain

    check_client_id(client_id)
    address = str(account.address)
    method = contract.contract.registerClientId
    # Estimated without a gas price, so that an account without funds gets an estimate too.
    call = {"from": address, "to": contract.address, "data": "0x" + bytes(method.encode_input(client_id)).hex()}
    try:
        estimate = int(chain.provider.make_request("eth_estimateGas", [call]), 16)
        priority_fee = int(chain.provider.priority_fee)
        base_fee = int(chain.provider.base_fee)
    except Exception as error:  # the provider's own estimate errors
        raise ChainError(f"registerClientId estimate failed: {describe_revert(error)}") from error
    # Headroom: estimates can be tight, and the base fee may double before the transaction is mined.
    gas = estimate * GAS_HEADROOM_PERCENT // 100
    gas_price = FEE_HEADROOM * base_fee + priority_fee
    balance = int(chain.provider.get_balance(address))
    funding = ClientIdFunding(address, client_id, balance, gas, gas_price, None)
    if funding.missing:
        return funding
    if contract.client_id(address) == client_id:
        return ClientIdFunding(address, client_id, balance, gas, gas_price, skipped("client id", client_id))
    step = send_or_estimate(
        "client id",
        f"{address} -> {client_id!r}",
        method,
        (client_id,),
        account,
        False,
        describe_revert,
        gas=gas,
        max_fee=gas_price,
        max_priority_fee=priority_fee,
    )
    return ClientIdFunding(address, client_id, balance, gas, gas_price, step)
