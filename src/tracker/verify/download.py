"""Downloads over kept-alive HTTP(S) connections with a timeout and a size limit per document; TLS without trusting any CA (the certificate is kept for check 5)."""

from __future__ import annotations

import http.client
import ssl
import threading
import time
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from tracker.errors import one_line

READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Download:
    """The bytes at a URL, or why there are none; over TLS, the certificate the server presented."""

    url: str
    body: bytes | None
    error: str | None = None
    certificate: bytes | None = None
    tls_version: str | None = None
    status: int | None = None  # the HTTP status when it was not 200


class DownloadFailed(Exception):
    """Internal: one download failed with a reason meant for a report row."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.status = status


def _client_context() -> ssl.SSLContext:
    """TLS without trusting any CA: the verifier keeps the certificate and checks it against the chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Downloader:
    """Downloads over kept-alive HTTP(S) connections, one set per thread, with limits per document."""

    def __init__(self, timeout: float, concurrency: int = 1):
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self._context = _client_context()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()

    def submit(self, url: str, max_bytes: int) -> Future[Download]:
        """Starts a download in the background (on a pool of `concurrency` threads)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="verify-download")
        return self._pool.submit(self.get, url, max_bytes)

    def get(self, url: str, max_bytes: int, json_body: bytes | None = None) -> Download:
        """Downloads one URL (POSTing `json_body` when given); failures become a `Download` with an
        error rather than an exception."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            return Download(url, None, f"not an http(s) URL: {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return Download(url, None, f"malformed port in {url!r}")
        key = (parts.scheme, parts.hostname, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        for attempt in (1, 2):
            connection, reused = self._connection(key)
            try:
                return self._fetch(connection, url, target, max_bytes, parts, json_body)
            except DownloadFailed as failure:
                self._drop(key)
                return Download(url, None, str(failure), status=failure.status)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                self._drop(key)
                if reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: reconnect once
                return Download(url, None, f"connection closed by {parts.netloc}: {one_line(error) or 'no answer'}")
            except TimeoutError:
                self._drop(key)
                return Download(url, None, f"timed out after {self.timeout:g} s fetching {url}")
            except ssl.SSLError as error:
                self._drop(key)
                return Download(url, None, f"TLS failed with {parts.netloc}: {one_line(error)}")
            except (OSError, http.client.HTTPException) as error:
                self._drop(key)
                reason = getattr(error, "strerror", None) or one_line(error) or type(error).__name__
                return Download(url, None, f"cannot fetch {url}: {reason}")
        return Download(url, None, f"cannot fetch {url}")

    def _fetch(self, connection, url: str, target: str, max_bytes: int, parts, json_body: bytes | None) -> Download:
        deadline = time.monotonic() + self.timeout
        if connection.sock is None:
            connection.connect()
        certificate = tls_version = None
        if isinstance(connection.sock, ssl.SSLSocket):
            certificate = connection.sock.getpeercert(binary_form=True)
            tls_version = connection.sock.version()
        headers = {"Host": parts.netloc, "Accept": "application/json, */*"}
        if json_body is None:
            connection.request("GET", target, headers=headers)
        else:
            headers["Content-Type"] = "application/json"
            connection.request("POST", target, body=json_body, headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            raise DownloadFailed(f"HTTP {response.status} {response.reason} for {url}", response.status)
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise DownloadFailed(f"{url} is {int(declared)} bytes, over the limit of {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError()
            chunk = response.read(READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise DownloadFailed(f"{url} is over the limit of {max_bytes} bytes")
            chunks.append(chunk)
        if response.will_close:
            self._drop((parts.scheme, parts.hostname, connection.port))
        return Download(url, b"".join(chunks), None, certificate, tls_version)

    def _connection(self, key: tuple[str, str, int]) -> tuple[http.client.HTTPConnection, bool]:
        connections = self._local.__dict__.setdefault("connections", {})
        if key in connections:
            return connections[key], True
        scheme, host, port = key
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._context)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        connections[key] = connection
        with self._lock:
            self._all.append(connection)
        return connection, False

    def _drop(self, key: tuple[str, str, int]) -> None:
        connections = self._local.__dict__.setdefault("connections", {})
        connection = connections.pop(key, None)
        if connection is not None:
            connection.close()
