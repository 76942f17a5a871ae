"""A persistent local stack for running the commands step by step, as on a real network.

`bin/stack` starts, on this machine only, and keeps running until Ctrl-C:

* anvil on a fixed port, its chain saved to `<dir>/anvil-state.json` (reloaded on the next start,
  so a deployment survives a restart of the stack), with ENS installed the way Sepolia has it
  (and `local.eth` registered for test account 0, the default account of local commands) and the
  deterministic-deployment proxy (anvil ships it), so `ape run deploy` lands at the canonical
  address;
* a moto server emulating Step Functions (with what `tracker.dev.sfn_emulation` adds), DynamoDB,
  CloudWatch Logs and S3, reached through AWS_ENDPOINT_URL;
* Postgres: DATABASE_URL when set, else an embedded server in `<dir>/postgres`.

It prints the environment to export in another shell; every `ape run` command then talks to
these services (`--network ethereum:local:foundry`, the default it exports).
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from tracker.dev.services import ServiceStack, free_port

DEFAULT_ANVIL_PORT = 8545
DEFAULT_MOTO_PORT = 5000
NETWORK = "ethereum:local:foundry"
REGION = "us-east-1"


DEFAULT_ENS_NAME = "local.eth"


@dataclass(frozen=True)
class StackConfig:
    work_dir: Path = Path(".stack")
    anvil_port: int = DEFAULT_ANVIL_PORT
    moto_port: int = DEFAULT_MOTO_PORT
    ens_name: str = DEFAULT_ENS_NAME


def environment_of(anvil_url: str, moto_url: str, database_url: str) -> dict[str, str]:
    """The variables that point every command at the stack."""
    return {
        "APE_FOUNDRY_HOST": anvil_url,
        "TRACKER_NETWORK": NETWORK,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "DATABASE_URL": database_url,
    }


def _port_or_free(port: int) -> int:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def run(config: StackConfig, console: Console) -> None:
    """Starts the stack, prints its environment, and waits for Ctrl-C (or SIGTERM)."""
    work_dir = config.work_dir.resolve()
    with ServiceStack(work_dir / "logs") as stack:
        state_file = work_dir / "anvil-state.json"
        fresh = not state_file.exists()
        anvil = stack.anvil(port=_port_or_free(config.anvil_port), state_file=state_file)
        moto = stack.moto(port=_port_or_free(config.moto_port))
        database = stack.database(work_dir / "postgres")
        env = environment_of(anvil.url, moto.endpoint_url, database.url)
        if fresh:
            _install_ens(anvil.url, config.ens_name)
        console.print(f"[bold]Local stack[/bold] in {work_dir} (logs in {work_dir / 'logs'})")
        console.print(f"  anvil      {anvil.url} (chain id {anvil.chain_id}, saved to {state_file.name})")
        console.print(f"  AWS (moto) {moto.endpoint_url}")
        console.print(f"  Postgres   {database.url}" + (" (embedded)" if database.embedded else ""))
        console.print(f"  ENS name   {config.ens_name}, registered (wrapped) for TEST::0, the default account")
        console.print("Export this in the shell you run the commands from:")
        for name, value in env.items():
            print(f"export {name}={shlex.quote(value)}")
        console.print("Ctrl-C stops the stack; its chain is kept for the next start.")
        while True:
            time.sleep(3600)


def _install_ens(anvil_url: str, name: str) -> None:
    """ENS on the new chain (the registry at its canonical address, the rest at Sepolia's), and
    `name` registered through the controller for test account 0, as the ENS app would."""
    from ape import accounts, networks
    from ape.logging import logger

    from tracker.dev.ens import install_local_ens, register_name

    os.environ["APE_FOUNDRY_HOST"] = anvil_url
    logger.set_level("ERROR")  # stdout carries only the exports
    with networks.parse_network_choice(NETWORK):
        account = accounts.test_accounts[0]
        install_local_ens(account)
        register_name(account, name)
