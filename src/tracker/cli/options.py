"""Options every script shares and the one way scripts connect to a chain.

`--network` accepts bare network names (`--network sepolia`), which ape alone reads as an
ecosystem and refuses, as well as full choices (`ethereum:sepolia:alchemy`,
`ethereum:local:foundry`). Scripts connect through `connected()`, inside their error boundary,
so that a missing key or an unreachable node is one clear line instead of a traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import click

from tracker.errors import ChainError, ConfigurationError, one_line

DEFAULT_ECOSYSTEM = "ethereum"
ALCHEMY_KEY_VARIABLES = ("WEB3_ALCHEMY_API_KEY", "WEB3_ALCHEMY_PROJECT_ID")


def normalize_network_choice(value: Any) -> Any:
    """Turns a bare network name (`sepolia`, `local`, `sepolia-fork`) into `ethereum:<name>`.

    Ecosystem names and full choices such as `ethereum:sepolia:alchemy` pass through unchanged.
    """
    if not isinstance(value, str) or not value or ":" in value:
        return value
    from ape import networks

    if value in networks.ecosystem_names:
        return value
    if value in networks.get_ecosystem(DEFAULT_ECOSYSTEM).networks:
        return f"{DEFAULT_ECOSYSTEM}:{value}"
    return value


def network_option(default: str | None = None) -> Callable:
    """`--network CHOICE`: a bare network name or ape's `ecosystem:network:provider` choice."""
    return click.option(
        "--network",
        "network_choice",
        default=default,
        envvar="TRACKER_NETWORK",
        metavar="[ECOSYSTEM:]NETWORK[:PROVIDER]",
        callback=lambda _ctx, _param, value: normalize_network_choice(value),
        help="Network, e.g. sepolia, local, ethereum:local:foundry (default: ape's default network).",
    )


@contextlib.contextmanager
def connected(network_choice: str | None) -> Iterator[Any]:
    """Connects to the chosen network for the body of the block and yields the provider.

    Raises `ConfigurationError` when the choice is unknown or a needed key is missing, and
    `ChainError` when the node cannot be reached.
    """
    from ape import networks
    from ape.exceptions import ApeException

    choice = network_choice or networks.default_ecosystem.name
    try:
        context = networks.parse_network_choice(choice)
    except ApeException as error:
        raise ConfigurationError(f"unknown network {choice!r}: {one_line(error)}") from error
    provider = context._provider
    if provider.name == "alchemy" and not any(os.environ.get(name) for name in ALCHEMY_KEY_VARIABLES):
        raise ConfigurationError(
            f"network {choice} goes through Alchemy: set WEB3_ALCHEMY_API_KEY to your Alchemy key "
            "(or choose another provider, e.g. ethereum:sepolia:node with SEPOLIA_NODE_URI)"
        )
    try:
        context.__enter__()
    except Exception as error:  # a provider may fail with any transport error while connecting
        raise ChainError(f"cannot connect to {choice}: {one_line(error)}") from error
    try:
        yield provider
    finally:
        with contextlib.suppress(Exception):
            context.__exit__(None, None, None)


def contract_option(
    help: str = "InstanceTracker address (default: the deployment recorded for this chain).",
) -> Callable:
    """`--contract ADDRESS` (or TRACKER_CONTRACT); without it, the deployment recorded for the chain."""
    return click.option(
        "--contract", "contract_address", envvar="TRACKER_CONTRACT", default=None, metavar="ADDRESS", help=help
    )


def json_option() -> Callable:
    """`--json`: print one machine-readable JSON document instead of tables."""
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


LOCAL_NETWORKS = ("local",)


def account_option() -> Callable:
    """`--account ALIAS` (or TRACKER_ACCOUNT): an ape account alias, or TEST::N for test account N."""
    return click.option(
        "--account",
        "account_alias",
        envvar="TRACKER_ACCOUNT",
        default=None,
        metavar="ALIAS",
        help="Ape account alias, or TEST::N (default on local chains: TEST::0). "
        "Non-interactive passphrase: APE_ACCOUNTS_<ALIAS>_PASSPHRASE.",
    )


def load_account(alias: str | None, provider: Any) -> Any:
    """The account to send from; unlocked for the run when its passphrase is in the environment.

    Raises `ConfigurationError` for an unknown alias, or when none is given on a public network.
    """
    from ape import accounts
    from ape.exceptions import AccountsError

    is_local = provider.network.name in LOCAL_NETWORKS or provider.network.name.endswith("-fork")
    if alias is None:
        if not is_local:
            raise ConfigurationError(f"--account ALIAS is required on {provider.network.name}")
        alias = "TEST::0"
    if alias.upper().startswith("TEST::"):
        try:
            return accounts.test_accounts[int(alias.split("::", 1)[1])]
        except (ValueError, IndexError):
            raise ConfigurationError(f"no test account {alias!r}") from None
    try:
        account = accounts.load(alias)
    except (AccountsError, IndexError, KeyError) as error:
        raise ConfigurationError(f"no ape account named {alias!r} (see `ape accounts list`)") from error
    passphrase = os.environ.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE")
    if passphrase and hasattr(account, "set_autosign"):
        try:
            account.set_autosign(True, passphrase=passphrase)
        except Exception as error:  # ape raises its own error types for a wrong passphrase
            raise ConfigurationError(f"cannot unlock account {alias!r}: {one_line(error)}") from error
    return account
