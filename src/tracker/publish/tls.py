"""The protocol server's certificate: the given PEM pair, or a self-signed one kept across restarts.

What a verifier checks is the SHA-256 fingerprint of the certificate the server presents, against
the one its publisher registered on chain; so a generated certificate is written once (by default
to `.tracker/tls/`) and reused, and its fingerprint stays the registered one.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from tracker.errors import TrackerError
from tracker.publish.certificates import fingerprint, generate_self_signed

DEFAULT_TLS_DIR = Path(".tracker") / "tls"
SELF_SIGNED_CERT = "server.crt"
SELF_SIGNED_KEY = "server.key"


class CertificateFileError(TrackerError):
    """A certificate or key file is missing, unreadable, or the two do not belong together."""


@dataclass(frozen=True)
class TlsFiles:
    """A PEM certificate and its private key, and the SHA-256 fingerprint of the certificate's DER bytes."""

    cert_path: Path
    key_path: Path
    fingerprint: str
    generated: bool = False


def certificate_fingerprint(cert_path: Path) -> str:
    """The fingerprint (`certificates.fingerprint`) of a PEM certificate file.

    Validity dates are not checked here: the server serves whatever certificate it is given.
    """
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as error:
        raise CertificateFileError(f"cannot read certificate {cert_path}: {error}") from error
    return fingerprint(certificate)


def self_signed_files(tls_dir: Path, hostnames: list[str]) -> TlsFiles:
    """The self-signed certificate kept in `tls_dir`, generated there on first use.

    The certificate names `localhost`, 127.0.0.1 and every given host name or address. An existing
    pair is reused as it is, so that its fingerprint stays the one registered on chain.
    """
    cert_path, key_path = tls_dir / SELF_SIGNED_CERT, tls_dir / SELF_SIGNED_KEY
    if cert_path.exists() and key_path.exists():
        return TlsFiles(cert_path, key_path, certificate_fingerprint(cert_path))
    hosts = [host for host in ("localhost", "127.0.0.1", *hostnames) if host and host not in ("0.0.0.0", "::")]
    cert_pem, key_pem = generate_self_signed(hosts, common_name="instance-tracker protocol server")
    try:
        tls_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key_pem)
        cert_path.write_bytes(cert_pem)
    except OSError as error:
        raise CertificateFileError(f"cannot save the self-signed certificate in {tls_dir}: {error}") from error
    return TlsFiles(cert_path, key_path, certificate_fingerprint(cert_path), generated=True)


def tls_files(cert: Path | None, key: Path | None, tls_dir: Path, hostnames: list[str]) -> TlsFiles:
    """The given certificate and key (both or neither), else the kept self-signed pair."""
    if (cert is None) != (key is None):
        raise CertificateFileError("give both --cert and --key, or neither for a self-signed certificate")
    if cert is None or key is None:
        return self_signed_files(tls_dir, hostnames)
    for path in (cert, key):
        if not path.is_file():
            raise CertificateFileError(f"no such file: {path}")
    return TlsFiles(cert, key, certificate_fingerprint(cert))


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server-side TLS context for the certificate and key: TLS 1.2 or newer, HTTP/1.1 only.

    Renegotiation is off: in TLS 1.2 a client could otherwise make the server redo the expensive
    half of a handshake as often as it likes on one connection.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(str(files.cert_path), str(files.key_path))
    except (ssl.SSLError, OSError) as error:
        raise CertificateFileError(
            f"cannot use certificate {files.cert_path} with key {files.key_path}: {error}"
        ) from error
    return context
