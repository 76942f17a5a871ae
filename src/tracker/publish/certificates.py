"""Server certificates as the tracker binds them to an account: load one (PEM or DER), fetch the one
a server presents over TLS, its SHA-256 fingerprint, the account's EIP-191 signature of it, and a
self-signed certificate for a protocol server that has none.

The fingerprint is the SHA-256 of the certificate's DER bytes. The signature is over the 32 raw
fingerprint bytes with the `\\x19Ethereum Signed Message:\\n32` prefix, which is what the contract's
`registerCertificate` recovers with `MessageHashUtils.toEthSignedMessageHash(bytes32)`.
Fetching does not verify the certificate chain on purpose: the binding is the fingerprint on chain.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tracker.errors import TrackerError, one_line

SIGNATURE_LENGTH = 65
SELF_SIGNED_VALIDITY = timedelta(days=825)


class CertificateError(TrackerError):
    """A certificate is unreadable, not X.509, expired or not yet valid."""


class CertificateFetchError(TrackerError):
    """The server's certificate could not be fetched over TLS."""


class SignatureError(TrackerError):
    """A fingerprint signature is malformed or the account refused to sign."""


def load_certificate(path: str | Path, now: datetime | None = None) -> x509.Certificate:
    """Reads a PEM or DER X.509 certificate and checks that it is valid at `now` (default: now).

    Raises `CertificateError` for a missing file, non-X.509 input, or an expired or
    not-yet-valid certificate.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CertificateError(f"cannot read certificate {path}: {error.strerror or one_line(error)}") from error
    certificate = parse_certificate(data, str(path))
    check_validity(certificate, str(path), now)
    return certificate


def parse_certificate(data: bytes, source: str = "certificate") -> x509.Certificate:
    """Parses PEM (first certificate) or DER bytes; raises `CertificateError` if not X.509."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as error:
        raise CertificateError(f"{source} is not an X.509 certificate (PEM or DER): {one_line(error)}") from error


def check_validity(certificate: x509.Certificate, source: str, now: datetime | None = None) -> None:
    """Raises `CertificateError` when the certificate is expired or not yet valid at `now`."""
    now = now or datetime.now(timezone.utc)
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    if now > not_after:
        raise CertificateError(f"{source} expired on {not_after.isoformat()}")
    if now < not_before:
        raise CertificateError(f"{source} is not valid before {not_before.isoformat()}")


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER bytes, as 64 lowercase hex characters."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def fetch_server_certificate(url: str, timeout: float = 10.0) -> x509.Certificate:
    """The certificate the server at an https URL presents (its chain is not verified).

    Raises `CertificateFetchError` for a non-https URL or when no TLS connection can be made.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise CertificateFetchError(f"expected an https:// URL to fetch the certificate from, got {url!r}")
    host, port = parts.hostname, parts.port or 443
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as error:
        raise CertificateFetchError(f"cannot fetch the TLS certificate of {host}:{port}: {one_line(error)}") from error
    if not der:
        raise CertificateFetchError(f"{host}:{port} presented no certificate")
    return parse_certificate(der, f"the certificate of {host}:{port}")


def fingerprint_bytes(fingerprint_hex: str) -> bytes:
    text = fingerprint_hex.lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise SignatureError(f"a fingerprint is 64 hex characters, got {fingerprint_hex!r}")
    return raw


def signable(fingerprint_hex: str) -> Any:
    """The EIP-191 (version E) message over the 32 raw fingerprint bytes."""
    from eth_account.messages import encode_defunct

    return encode_defunct(primitive=fingerprint_bytes(fingerprint_hex))


def sign_fingerprint(account: Any, fingerprint_hex: str) -> bytes:
    """The account's 65-byte (r, s, v) EIP-191 signature of the fingerprint.

    Raises `SignatureError` when the account does not sign (e.g. the prompt was declined).
    """
    signature = account.sign_message(signable(fingerprint_hex))
    if signature is None:
        raise SignatureError(f"account {account.address} did not sign the certificate fingerprint")
    encoded = bytes(signature.encode_rsv())
    if len(encoded) != SIGNATURE_LENGTH:
        raise SignatureError(f"expected a {SIGNATURE_LENGTH}-byte signature, got {len(encoded)} bytes")
    return encoded


def recover_fingerprint_signer(fingerprint_hex: str, signature: bytes) -> str:
    """The checksummed address whose key made `signature` over the fingerprint.

    Raises `SignatureError` when the signature is malformed.
    """
    from eth_account import Account

    try:
        return str(Account.recover_message(signable(fingerprint_hex), signature=bytes(signature)))
    except (ValueError, TypeError) as error:
        raise SignatureError(f"the fingerprint signature does not recover: {one_line(error)}") from error


def generate_self_signed(
    hostnames: list[str],
    common_name: str | None = None,
    valid_from: timedelta = timedelta(minutes=-5),
    valid_until: timedelta = SELF_SIGNED_VALIDITY,
) -> tuple[bytes, bytes]:
    """A new P-256 key and a self-signed certificate naming the hosts, both PEM-encoded.

    Host names that are IP addresses become IP subject alternative names; the validity window is
    relative to now (tests make expired or not-yet-valid certificates with it).
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hostnames):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or hostnames[0])])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid_from)
        .not_valid_after(now + valid_until)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return certificate.public_bytes(Encoding.PEM), key_pem
