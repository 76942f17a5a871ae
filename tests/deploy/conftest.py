"""Fixtures for the deploy suite: ENS installed as Sepolia has it (tracker.dev.ens), names
registered through its registrar controller (so wrapped), certificates generated with
`cryptography`, and a real HTTPS server on loopback presenting one of them.

ENS is installed with `anvil_setCode`, so the tests that use it need anvil: bin/test runs this
suite with `ape test tests/deploy --network ethereum:local:foundry`; on ape's in-process chain
those tests are skipped with that instruction and the others run.
"""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tracker.dev import ens as dev_ens
from tracker.identity.deploy import ens
from tracker.publish.certificates import generate_self_signed

ANVIL_ONLY = "needs anvil (anvil_setCode): run `ape test tests/deploy --network ethereum:local:foundry` (bin/test does)"


@pytest.fixture(scope="session")
def client(accounts):
    """The account whose identity is set up (its own, so other suites' accounts stay untouched)."""
    return accounts[3]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def local_ens(accounts, chain) -> ens.EnsDeployment:
    if chain.provider.name != "foundry":
        pytest.skip(ANVIL_ONLY)
    return dev_ens.install_local_ens(accounts[0])


@pytest.fixture
def give_name(local_ens) -> Callable[..., str]:
    """`give_name(name, account, **options)`: the account registers the .eth name through the
    registrar controller (commit, wait, register), so it is wrapped; returns the name."""

    def give(name: str, account, **options) -> str:
        return dev_ens.register_name(account, name, **options)

    return give


@dataclass(frozen=True)
class GeneratedCertificate:
    path: Path
    key_path: Path
    certificate: x509.Certificate


def generate_certificate(
    directory: Path,
    name: str = "localhost",
    valid_from: datetime.timedelta = datetime.timedelta(days=-1),
    valid_until: datetime.timedelta = datetime.timedelta(days=30),
    der: bool = False,
) -> GeneratedCertificate:
    cert_pem, key_pem = generate_self_signed([name], valid_from=valid_from, valid_until=valid_until)
    certificate = x509.load_pem_x509_certificate(cert_pem)
    suffix = "der" if der else "pem"
    path = directory / f"{name}-{certificate.serial_number}.{suffix}"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.DER) if der else cert_pem)
    key_path = directory / f"{name}-{certificate.serial_number}.key"
    key_path.write_bytes(key_pem)
    return GeneratedCertificate(path, key_path, certificate)


@pytest.fixture
def make_certificate(tmp_path) -> Callable[..., GeneratedCertificate]:
    return lambda **options: generate_certificate(tmp_path, **options)


@dataclass(frozen=True)
class TlsServer:
    url: str
    certificate: x509.Certificate


@pytest.fixture
def tls_server(tmp_path) -> Iterator[TlsServer]:
    """A real HTTPS server on 127.0.0.1 presenting a freshly generated certificate."""
    generated = generate_certificate(tmp_path, name="127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(generated.path, generated.key_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsServer(f"https://127.0.0.1:{server.server_address[1]}", generated.certificate)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
