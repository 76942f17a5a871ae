"""Prepares the local stand-in for Sepolia that bin/fork-tests starts (an anvil with chain id
11155111): installs ENS at Sepolia's addresses (tracker.dev.ens), lets the identity account register
the test name through the registrar controller (so it is wrapped, as in the ENS app), and writes a
fresh server certificate. Run by bin/fork-tests, not collected by pytest.

    python tests/fork/prepare_upstream.py --name demo.eth --account-index 1 --cert-out DIR/server.pem
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from tracker.publish.certificates import generate_self_signed

NETWORK = "ethereum:sepolia:node"
STAND_IN_CHAIN_ID = 11155111


def write_certificate(path: Path, host: str) -> None:
    cert_pem, _key_pem = generate_self_signed(
        [host], valid_from=datetime.timedelta(hours=-1), valid_until=datetime.timedelta(days=7)
    )
    path.write_bytes(cert_pem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--account-index", type=int, required=True)
    parser.add_argument("--cert-out", type=Path, required=True)
    parser.add_argument("--host", default="tracker.example.org")
    options = parser.parse_args()

    from ape import accounts, networks

    from tracker.dev import ens as dev_ens

    with networks.parse_network_choice(NETWORK) as provider:
        if provider.chain_id != STAND_IN_CHAIN_ID:
            raise SystemExit(f"the stand-in has chain id {provider.chain_id}, expected {STAND_IN_CHAIN_ID}")
        # Setting up the stand-in is not what is under test: no need to wait for confirmations.
        provider.network.config.required_confirmations = 0
        deployer = accounts.test_accounts[0]
        holder = accounts.test_accounts[options.account_index]
        installed = dev_ens.install_local_ens(deployer)
        dev_ens.register_name(holder, options.name, resolver=None)
        print(
            f"ENS registry {installed.registry}, NameWrapper {installed.name_wrapper}, UniversalResolver "
            f"{installed.universal_resolver}; {options.name} registered (wrapped) for {holder.address}"
        )
    write_certificate(options.cert_out, options.host)


if __name__ == "__main__":
    main()
