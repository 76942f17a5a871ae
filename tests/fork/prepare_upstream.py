"""Prepares the local stand-in for Sepolia that bin/fork-tests starts (an anvil with chain id
11155111): installs ENS from ENS's npm builds, gives the test name to the identity account, and
writes a fresh server certificate. Run by bin/fork-tests, not collected by pytest.

    python tests/fork/prepare_upstream.py --name demo.eth --account-index 1 --cert-out DIR/server.pem
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NETWORK = "ethereum:sepolia:node"
STAND_IN_CHAIN_ID = 11155111


def write_certificate(path: Path, host: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--account-index", type=int, required=True)
    parser.add_argument("--cert-out", type=Path, required=True)
    parser.add_argument("--host", default="tracker.example.org")
    options = parser.parse_args()

    from ape import accounts, networks

    from tracker import ens

    with networks.parse_network_choice(NETWORK) as provider:
        if provider.chain_id != STAND_IN_CHAIN_ID:
            raise SystemExit(f"the stand-in has chain id {provider.chain_id}, expected {STAND_IN_CHAIN_ID}")
        # Setting up the stand-in is not what is under test: no need to wait for confirmations.
        provider.network.config.required_confirmations = 0
        deployer = accounts.test_accounts[0]
        holder = accounts.test_accounts[options.account_index]
        installed = ens.install_local_ens(deployer)
        ens.assign_name(deployer, options.name, str(holder.address))
        print(f"ENS registry {installed.registry}, resolver {installed.public_resolver}, "
              f"reverse registrar {installed.reverse_registrar}; {options.name} -> {holder.address}")
    write_certificate(options.cert_out, options.host)


if __name__ == "__main__":
    main()
