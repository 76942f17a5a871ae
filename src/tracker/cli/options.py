"""Options every script shares and the one way scripts connect to a chain.

Built on ape's own machinery (ape's network manager parses choices and connects; ape's account
choice resolves aliases and `TEST::N`), with what our commands need on top:

* `--network` also accepts bare network names (`--network sepolia`), which ape alone reads as an
  ecosystem and refuses, as well as full choices (`ethereum:sepolia:alchemy`,
  `ethereum:local:foundry`);
* `connected()` turns a missing Alchemy key or an unreachable node into one clear line, refuses
  to start a fresh anvil when a configured one does not answer (ape-foundry would, and the
  deployment a user made would then be "missing"), and refuses ape's in-process chain for
  commands whose work must outlive the process;
* `--json` silences ape's logging on stdout, which then carries only the document.

(ape's `ConnectedProviderCommand` would connect before our checks run and cannot do any of
these, which is why commands connect through `connected()` inside their error boundary.)
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import click

from tracker.errors import ChainError, ConfigurationError, one_line

DEFAULT_ECOSYSTEM = "ethereum"
ALCHEMY_KEY_VARIABLES = ("WEB3_ALCHEMY_API_KEY", "WEB3_ALCHEMY_PROJECT_ID")
IN_PROCESS_PROVIDERS = frozenset({"test"})
NODE_PROBE_TIMEOUT_S = 3.0


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
        help="Network, e.g. sepolia, ethereum:local:foundry (default: TRACKER_NETWORK, else ape's default).",
    )


def _configured_node(provider: Any) -> str | None:
    """The URL of the node a provider is configured to use, when one is configured (not `auto`)."""
    if provider.name != "foundry":
        return None
    host = os.environ.get("APE_FOUNDRY_HOST") or getattr(getattr(provider, "config", None), "host", None)
    if not host or str(host) == "auto":
        return None
    return str(host)


def _answers(url: str) -> bool:
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=NODE_PROBE_TIMEOUT_S) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def connected(network_choice: str | None, persistent: bool = True) -> Iterator[Any]:
    """Connects to the chosen network for the body of the block and yields the provider.

    With `persistent` (commands whose records must outlive them), ape's in-process chain is
    refused. Raises `ConfigurationError` when the choice is unknown or a needed key is missing,
    and `ChainError` when the node cannot be reached.
    """
    from ape import networks
    from ape.exceptions import ApeException

    choice = network_choice or networks.default_ecosystem.name
    try:
        context = networks.parse_network_choice(choice)
    except ApeException as error:
        raise ConfigurationError(f"unknown network {choice!r}: {one_line(error)}") from error
    provider = context._provider
    if persistent and provider.name in IN_PROCESS_PROVIDERS:
        raise ConfigurationError(
            f"{choice} is ape's in-process chain, which is gone when this command ends: run bin/stack "
            "and use --network ethereum:local:foundry (or a public network)"
        )
    if provider.name == "alchemy" and not any(os.environ.get(name) for name in ALCHEMY_KEY_VARIABLES):
        raise ConfigurationError(
            f"network {choice} goes through Alchemy: set WEB3_ALCHEMY_API_KEY to your Alchemy key "
            "(or choose another provider, e.g. ethereum:sepolia:node with SEPOLIA_NODE_URI)"
        )
    node = _configured_node(provider)
    if node is not None and not _answers(node):
        raise ChainError(
            f"the node at {node} (APE_FOUNDRY_HOST) does not answer: start it (bin/stack) or unset "
            "APE_FOUNDRY_HOST to let ape start a throw-away one"
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
    help: str = "A private InstanceTracker deployment (default: the canonical address, the same on every chain).",
) -> Callable:
    """`--contract ADDRESS` (or TRACKER_CONTRACT); without it, the canonical InstanceTracker."""
    return click.option(
        "--contract",
        "contract_address",
        envvar="TRACKER_CONTRACT",
        default=None,
        metavar="ADDRESS",
        help=help,
    )


def json_option() -> Callable:
    """`--json`: print one machine-readable JSON document instead of tables (ape's logs silenced)."""

    def silence(_ctx: Any, _param: Any, value: bool) -> bool:
        if value:
            from ape.logging import logger

            logger.set_level("ERROR")  # ape logs to stdout, which then carries only the document
        return value

    return click.option("--json", "as_json", is_flag=True, callback=silence, help="Print machine-readable JSON.")


def base_url_option(default: str) -> Callable:
    """`--base-url https://HOST[:PORT][/PATH]`: where the publish target is served."""

    def check(_ctx: Any, _param: Any, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise click.BadParameter(f"must be an https:// URL with a host, got {value!r}")
        return value

    return click.option(
        "--base-url",
        default=default,
        show_default=True,
        callback=check,
        help="https:// URL the publish target is served at.",
    )


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


def passphrase_for(alias: str) -> str | None:
    """The passphrase of an account from the environment: APE_ACCOUNTS_<ALIAS>_PASSPHRASE, the
    alias in upper case (as shells name variables) or exactly as written."""
    for name in (f"APE_ACCOUNTS_{alias.upper()}_PASSPHRASE", f"APE_ACCOUNTS_{alias}_PASSPHRASE"):
        if os.environ.get(name):
            return os.environ[name]
    return None


def load_account(alias: str | None, provider: Any) -> Any:
    """The account to send from; unlocked for the run when its passphrase is in the environment.

    Raises `ConfigurationError` for an unknown alias, or when none is given on a public network.
    """
    from ape.cli.choices import AccountAliasPromptChoice

    is_local = provider.network.name in LOCAL_NETWORKS or provider.network.name.endswith("-fork")
    if alias is None:
        if not is_local:
            raise ConfigurationError(f"--account ALIAS is required on {provider.network.name}")
        alias = "TEST::0"
    try:
        account = AccountAliasPromptChoice().convert(alias, None, None)
    except click.exceptions.UsageError as error:
        raise ConfigurationError(
            f"no ape account named {alias!r} (see `ape accounts list`; TEST::N names a test account)"
        ) from error
    passphrase = passphrase_for(alias)
    if passphrase and account is not None and hasattr(account, "set_autosign"):
        try:
            account.set_autosign(True, passphrase=passphrase)
        except Exception as error:  # ape raises its own error types for a wrong passphrase
            raise ConfigurationError(f"cannot unlock account {alias!r}: {one_line(error)}") from error
    return account
