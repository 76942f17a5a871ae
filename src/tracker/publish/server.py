"""The protocol server: a publish directory served read-only over HTTPS.

What a verifier needs from it is small and exact: the bytes of each published file, under the
path it was published at, over TLS with the certificate whose fingerprint the client registered on
chain. So the server serves regular files below the publish root and nothing else: no directory
listings, no paths that leave the root (`..`, encoded separators, symbolic links pointing out),
only GET and HEAD, and a content type taken from the file name. Connections are kept alive
(HTTP/1.1) so that a verifier downloading a thousand state documents does not pay a thousand TLS
handshakes.

Without `--cert/--key` a self-signed certificate is generated on first use and kept (by default in
`.tracker/tls/`), so that its fingerprint stays the one registered on chain across restarts.
"""

from __future__ import annotations

import mimetypes
import os
import shutil
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tracker.errors import TrackerError
from tracker.publish.certificates import fingerprint, generate_self_signed

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443
DEFAULT_TLS_DIR = Path(".tracker") / "tls"
SELF_SIGNED_CERT = "server.crt"
SELF_SIGNED_KEY = "server.key"
# Sockets idle longer than this are closed, so that a stalled client cannot hold a thread forever.
CONNECTION_IDLE_SECONDS = 30.0
CONTENT_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".asl": "application/json",
}


class PublishRootError(TrackerError):
    """The directory to serve does not exist or is not a directory."""


class CertificateFileError(TrackerError):
    """A certificate or key file is missing, unreadable, or the two do not belong together."""


class ServerStartError(TrackerError):
    """The server could not listen on the requested address (in use, not permitted, unknown)."""


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
    """A server-side TLS context (TLS 1.2 or newer) for the certificate and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(files.cert_path), str(files.key_path))
    except (ssl.SSLError, OSError) as error:
        raise CertificateFileError(
            f"cannot use certificate {files.cert_path} with key {files.key_path}: {error}"
        ) from error
    return context


def resolve_under_root(root: Path, request_path: str) -> Path | None:
    """The regular file a URL path names below `root`, or None when it names nothing servable.

    The path is percent-decoded once; empty, `.` and `..` segments, backslashes and NUL bytes are
    refused rather than normalised, and the resolved file (symbolic links followed) must still lie
    below the root.
    """
    path = urllib.parse.urlsplit(request_path).path
    decoded = urllib.parse.unquote(path, errors="strict") if "%" in path else path
    if not decoded.startswith("/") or "\\" in decoded or "\x00" in decoded:
        return None
    segments = decoded[1:].split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        return None
    candidate = root.joinpath(*segments)
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    return resolved


def content_type(path: Path) -> str:
    """The Content-Type for a published file, from its suffix."""
    suffix = path.suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _encoding = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


class _ProtocolRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold every kept-alive response back by about 40 ms.
    disable_nagle_algorithm = True
    server_version = "instance-tracker"
    sys_version = ""
    server: _TlsHttpServer

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        try:
            target = resolve_under_root(self.server.root, self.path)
        except UnicodeDecodeError:
            target = None
        if target is None:
            self._send_plain(HTTPStatus.NOT_FOUND, "not found\n", send_body)
            return
        try:
            handle = target.open("rb")
        except OSError:
            self._send_plain(HTTPStatus.NOT_FOUND, "not found\n", send_body)
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(target))
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if send_body:
                shutil.copyfileobj(handle, self.wfile)

    def _send_plain(self, status: HTTPStatus, text: str, send_body: bool) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")


class _TlsHttpServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections are wrapped in TLS in their own thread.

    The handshake runs in the connection's thread rather than in `accept`, so that one slow or
    silent client cannot stop the server from accepting others.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], root: Path, context: ssl.SSLContext, log):
        self.root = root
        self.context = context
        self.log = log
        super().__init__(address, _ProtocolRequestHandler)

    def finish_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address) -> None:
        assert isinstance(request, socket.socket)  # a stream server: never a datagram
        request.settimeout(CONNECTION_IDLE_SECONDS)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(connection, client_address, self)  # type: ignore[arg-type]
        except (ssl.SSLError, OSError):
            pass  # the client went away mid-request; nothing to answer
        finally:
            connection.close()

    def handle_error(self, request, client_address) -> None:
        if self.log is not None:
            self.log(f"{client_address[0]} request failed")


@dataclass
class RunningServer:
    """A protocol server running in a background thread; `stop()` shuts it down and frees the port."""

    root: Path
    host: str
    port: int
    tls: TlsFiles
    _server: _TlsHttpServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def origin(self) -> str:
        """The origin to register as the ENS `url` record, e.g. https://127.0.0.1:8443."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def fingerprint(self) -> str:
        return self.tls.fingerprint

    def url(self, path: str) -> str:
        return f"{self.origin}/{path.lstrip('/')}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self) -> None:
        """Blocks until the server stops (used by `ape run serve` until interrupted)."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server(root: Path, host: str, port: int, tls: TlsFiles, log=None) -> RunningServer:
    """Starts serving `root` over HTTPS on (host, port) in a daemon thread; port 0 picks a free one."""
    root = Path(root)
    if not root.is_dir():
        raise PublishRootError(f"publish directory {root} does not exist or is not a directory")
    context = server_context(tls)
    try:
        server = _TlsHttpServer((host, port), root.resolve(), context, log)
    except (OSError, OverflowError) as error:
        raise ServerStartError(
            f"cannot listen on {host}:{port}: {getattr(error, 'strerror', None) or error}"
        ) from error
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.name = f"protocol-server-{server.server_address[1]}"
    thread.start()
    return RunningServer(root.resolve(), host, int(server.server_address[1]), tls, server, thread)


def serve_in_thread(
    root: Path | str,
    host: str = DEFAULT_HOST,
    port: int = 0,
    cert: Path | str | None = None,
    key: Path | str | None = None,
    tls_dir: Path | str | None = None,
    log=None,
) -> RunningServer:
    """Serves `root` over HTTPS in the background, with the given certificate or the kept self-signed one."""
    files = tls_files(
        Path(cert) if cert is not None else None,
        Path(key) if key is not None else None,
        Path(tls_dir) if tls_dir is not None else DEFAULT_TLS_DIR,
        [host],
    )
    return start_server(Path(root), host, port, files, log)
