"""tracker.publish.certificates: loading, fingerprints, fetching over TLS, EIP-191 signatures."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tracker.publish import certificates


def test_pem_and_der_give_the_sha256_of_the_der_bytes(make_certificate):
    pem = make_certificate()
    der = make_certificate(der=True)

    for generated in (pem, der):
        loaded = certificates.load_certificate(generated.path)
        expected = hashlib.sha256(generated.certificate.public_bytes(Encoding.DER)).hexdigest()
        assert certificates.fingerprint(loaded) == expected


def test_not_yet_valid_certificate_is_refused(make_certificate):
    early = make_certificate(valid_from=datetime.timedelta(days=2), valid_until=datetime.timedelta(days=30))

    with pytest.raises(certificates.CertificateError) as error:
        certificates.load_certificate(early.path)

    assert str(error.value) == f"{early.path} is not valid before {early.certificate.not_valid_before_utc.isoformat()}"


def test_non_x509_input_is_refused(tmp_path):
    path = tmp_path / "key.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")

    with pytest.raises(certificates.CertificateError) as error:
        certificates.load_certificate(path)

    assert str(error.value).startswith(f"{path} is not an X.509 certificate (PEM or DER): ")


def test_missing_certificate_file_is_refused(tmp_path):
    path = tmp_path / "absent.pem"

    with pytest.raises(certificates.CertificateError) as error:
        certificates.load_certificate(path)

    assert str(error.value) == f"cannot read certificate {path}: No such file or directory"


def test_fetch_returns_the_certificate_the_server_presents(tls_server):
    fetched = certificates.fetch_server_certificate(tls_server.url, timeout=5)

    assert certificates.fingerprint(fetched) == certificates.fingerprint(tls_server.certificate)


def test_fetch_needs_an_https_url():
    with pytest.raises(certificates.CertificateFetchError) as error:
        certificates.fetch_server_certificate("http://127.0.0.1:1")

    assert str(error.value) == "expected an https:// URL to fetch the certificate from, got 'http://127.0.0.1:1'"


def test_test_account_signature_recovers_and_the_contract_accepts_it(owner, tracker, make_certificate):
    fingerprint = certificates.fingerprint(make_certificate().certificate)

    signature = certificates.sign_fingerprint(owner, fingerprint)
    tracker.contract.registerCertificate(bytes.fromhex(fingerprint), signature, sender=owner)

    assert len(signature) == 65
    assert certificates.recover_fingerprint_signer(fingerprint, signature) == owner.address
    assert tracker.certificate(owner.address).fingerprint == fingerprint


def test_keyfile_account_signature_recovers(make_certificate):
    from ape_accounts import generate_account

    account, _ = generate_account("deploy-test-signer", "correct horse")
    try:
        account.set_autosign(True, passphrase="correct horse")
        fingerprint = certificates.fingerprint(make_certificate().certificate)

        signature = certificates.sign_fingerprint(account, fingerprint)

        assert certificates.recover_fingerprint_signer(fingerprint, signature) == account.address
    finally:
        account.keyfile_path.unlink()


def test_malformed_fingerprint_is_refused(owner):
    with pytest.raises(certificates.SignatureError) as error:
        certificates.sign_fingerprint(owner, "abc")

    assert str(error.value) == "a fingerprint is 64 hex characters, got 'abc'"
