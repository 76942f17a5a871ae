"""Downloads that a hostile host can neither hang, nor use to exhaust memory, nor point inwards.

* **Time.** Every download has its own deadline (`timeout` seconds) and the whole run has one
  (`Deadline`); a download ends at the earlier of the two. Before every socket operation (connect,
  TLS handshake, send, each read) the socket's timeout is set to the time left, and reads are
  small, so a server that sends one byte a second, in the headers or in the body, is cut off at
  the deadline rather than kept alive by each byte. Host names are resolved in a helper thread
  that is waited for only until the deadline.
* **Memory.** Bodies are hashed while they stream in; only documents whose content must be read
  are kept, and only up to their size limit. `Downloader.fetch` runs the caller's `parse` on the
  kept bytes in the download thread and returns what it made of them, never the bytes, so each
  worker holds at most one document at a time.
* **Where.** A URL's host is resolved once per run and the connection goes to the resolved
  address, so a DNS answer cannot change between the check and the connection (DNS rebinding).
  Hosts that resolve to an address that is not public (loopback, private networks, link-local,
  carrier-grade NAT, multicast, reserved) are refused unless `allow_private_hosts`, or unless they
  are the origin of the URL the user gave on the command line. HTTP redirects are not followed.
* **TLS** without trusting any certificate authority: the certificate the server presented is
  kept, and the verifier checks it against the fingerprint registered on chain (check 5).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tracker.errors import one_line

READ_CHUNK = 16 * 1024
Origin = tuple[str, str, int]  # scheme, host (lowercase), port
T = TypeVar("T")


class Deadline:
    """A point in time (monotonic clock) that a whole run, or one download, must finish by."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0


@dataclass(frozen=True, slots=True)
class Job:
    """One download: the URL, its size limit, and for documents whose content is read, the parser
    and the size up to which the body is kept for it."""

    url: str
    max_bytes: int
    parse: Callable[[bytes], Any] | None = None
    keep_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """What a download gave: the SHA-256 and size of the body, and what `parse` made of it (for
    documents whose content is read), or why there is nothing; over TLS, the presented certificate."""

    url: str
    sha256: str | None
    size: int = 0
    content: T | None = None
    error: str | None = None
    certificate: bytes | None = None
    tls_version: str | None = None
    status: int | None = None  # the HTTP status when it was not 200

    @property
    def ok(self) -> bool:
        return self.error is None and self.sha256 is not None


class DownloadBatch:
    """Jobs being downloaded by a few worker threads, each taking the next job when it is free."""

    def __init__(self, downloader: Downloader, jobs: Sequence[Job], done: dict[int, Fetched[Any]] | None = None):
        self.jobs = jobs
        self.results: list[Fetched[Any] | None] = [None] * len(jobs)
        for index, fetched in (done or {}).items():
            self.results[index] = fetched
        self._next = (index for index in range(len(jobs)) if self.results[index] is None)
        self._lock = threading.Lock()
        self._downloader = downloader
        count = min(downloader.concurrency, len(jobs))
        self._workers = [threading.Thread(target=self._work, name="verify-download", daemon=True) for _ in range(count)]
        for worker in self._workers:
            worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                index = next(self._next, None)
            if index is None:
                return
            job = self.jobs[index]
            try:
                self.results[index] = self._downloader.fetch(job.url, job.max_bytes, job.parse, job.keep_bytes)
            except Exception as error:  # a fault of ours: reported in the document's row, never a traceback
                self.results[index] = Fetched(
                    job.url, None, error=f"not checked: {type(error).__name__}: {one_line(error)}"
                )

    def wait(self) -> list[Fetched[Any]]:
        for worker in self._workers:
            worker.join()
        return [
            result if result is not None else Fetched(job.url, None, error="not fetched")
            for job, result in zip(self.jobs, self.results)
        ]


class DownloadFailed(Exception):
    """Internal: one download failed with a reason meant for a report row (and the HTTP status
    when the server answered with one other than 200)."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.status = status


class _RunOutOfTime(DownloadFailed):
    """Internal: the run's deadline (not the download's) passed."""


def _client_context() -> ssl.SSLContext:
    """TLS without trusting any CA: the verifier keeps the certificate and checks it against the chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def is_public(address: str) -> bool:
    """Whether an IP address is one on the public internet (IPv4-mapped IPv6 judged as its IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def origin_of(url: str) -> Origin | None:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return None
    return scheme, parts.hostname.lower(), port


class _Clock:
    """The deadline of the download a connection is serving right now."""

    def __init__(self) -> None:
        self.deadline: Deadline | None = None
        self.run: Deadline | None = None

    def left(self) -> float:
        assert self.deadline is not None
        left = self.deadline.left()
        if left <= 0:
            if self.run is not None and self.run.passed():
                raise _RunOutOfTime("run deadline")
            raise TimeoutError("download deadline")
        return left


class _DeadlineRaw(io.RawIOBase):
    """A socket's read side for http.client: each read is small and may take only the time left."""

    def __init__(self, owner: _DeadlineSocket):
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        sock = self._owner.sock
        sock.settimeout(self._owner.clock.left())
        view = memoryview(buffer).cast("B")
        return sock.recv_into(view, min(len(view), READ_CHUNK))

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._owner.reader_closed()


class _DeadlineSocket:
    """What http.client sees as its socket: sends and reads bounded by the connection's clock.

    Like `socket.makefile`, a reader keeps the socket open: http.client closes the connection as
    soon as a `Connection: close` response arrives, while its body is still to be read."""

    def __init__(self, sock: socket.socket, clock: _Clock):
        self.sock = sock
        self.clock = clock
        self._readers = 0
        self._closing = False

    def sendall(self, data: bytes) -> None:
        self.sock.settimeout(self.clock.left())
        self.sock.sendall(data)

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_DeadlineRaw(self), READ_CHUNK)

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closing and self._readers <= 0:
            self.sock.close()

    def close(self) -> None:
        self._closing = True
        if self._readers <= 0:
            self.sock.close()


class _Connection(http.client.HTTPConnection):
    """A kept-alive HTTP(S) connection to one already-resolved address, bounded by its clock."""

    def __init__(self, origin: Origin, addresses: list[str], context: ssl.SSLContext):
        _scheme, host, port = origin
        super().__init__(host, port)
        self.origin = origin
        self.addresses = addresses
        self.context = context
        self.clock = _Clock()
        self.certificate: bytes | None = None
        self.tls_version: str | None = None

    def connect(self) -> None:
        scheme, host, port = self.origin
        error: OSError | None = None
        raw: socket.socket | None = None
        for address in self.addresses:
            try:
                raw = socket.create_connection((address, port), timeout=self.clock.left())
                break
            except (TimeoutError, _RunOutOfTime):
                raise
            except OSError as failure:
                error = failure
        if raw is None:
            raise error or OSError("no address to connect to")
        sock: socket.socket = raw
        if scheme == "https":
            try:
                sni = None if _is_ip(host) else host
                tls = self.context.wrap_socket(raw, server_hostname=sni, do_handshake_on_connect=False)
                tls.settimeout(self.clock.left())
                tls.do_handshake()
            except BaseException:
                raw.close()
                raise
            self.certificate = tls.getpeercert(binary_form=True)
            self.tls_version = tls.version()
            sock = tls
        self.sock = _DeadlineSocket(sock, self.clock)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which hosts may be contacted, each resolved once per run (see the module docstring)."""

    def __init__(self, allow_private_hosts: bool = False, trusted_origins: frozenset[Origin] = frozenset()):
        self.allow_private_hosts = allow_private_hosts
        self.trusted_origins = set(trusted_origins)
        self._lock = threading.Lock()
        self._resolved: dict[tuple[str, int], list[str] | str] = {}
        self._host_locks: dict[tuple[str, int], threading.Lock] = {}

    def trust(self, origin: Origin) -> None:
        """Lets the origin through whatever its address (the URL the user gave)."""
        self.trusted_origins.add(origin)

    def addresses(self, origin: Origin, deadline: _Clock) -> list[str]:
        """The addresses to connect to for the origin; raises DownloadFailed when refused."""
        _scheme, host, port = origin
        with self._lock:
            host_lock = self._host_locks.setdefault((host, port), threading.Lock())
        with host_lock:
            known = self._resolved.get((host, port))
            if known is None:
                try:
                    known = self._resolve(host, port, deadline)
                except TimeoutError:
                    # Remembered: a resolver that hangs costs one timeout per run, not one per document.
                    self._resolved[(host, port)] = f"cannot resolve {host}: no answer in time"
                    raise
                self._resolved[(host, port)] = known
        if isinstance(known, str):
            raise DownloadFailed(known)
        if self.allow_private_hosts or origin in self.trusted_origins:
            return known
        private = [address for address in known if not is_public(address)]
        if private:
            shown = host if _is_ip(host) else f"{host} resolves to {private[0]}, which"
            raise DownloadFailed(
                f"refused: {shown} is not a public address (--allow-private-hosts lets the verifier fetch from it)"
            )
        return known

    def _resolve(self, host: str, port: int, clock: _Clock) -> list[str] | str:
        if _is_ip(host):
            return [host.split("%", 1)[0]]
        answer: dict[str, Any] = {}

        def lookup() -> None:
            try:
                answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as error:
                answer["error"] = error

        worker = threading.Thread(target=lookup, name="verify-resolve", daemon=True)
        worker.start()
        worker.join(clock.left())
        if worker.is_alive():
            raise TimeoutError("name resolution")
        if "error" in answer:
            return f"cannot resolve {host}: {getattr(answer['error'], 'strerror', None) or one_line(answer['error'])}"
        addresses = list(dict.fromkeys(str(info[4][0]) for info in answer["infos"]))
        return addresses or f"cannot resolve {host}: no address"


class Downloader:
    """Downloads over kept-alive HTTP(S) connections (one set per worker thread), each within its
    own timeout and the run's deadline, hashing while it streams (see the module docstring)."""

    def __init__(
        self,
        timeout: float,
        concurrency: int = 1,
        run_deadline: Deadline | None = None,
        policy: HostPolicy | None = None,
    ):
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self.run_deadline = run_deadline or Deadline(float("inf"))
        self.policy = policy or HostPolicy()
        self._context = _client_context()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[_Connection] = []
        self._batches: list[DownloadBatch] = []

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for batch in self._batches:
            batch.wait()
        self._batches.clear()
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()

    def start(self, jobs: Sequence[Job], done: dict[int, Fetched[Any]] | None = None) -> DownloadBatch:
        """Starts downloading every job (but those already `done`, by index) on `concurrency`
        worker threads; `DownloadBatch.wait` returns the results in the order of the jobs. No
        object is kept per pending job but the job itself, so a protocol of many documents costs
        little more than its results."""
        batch = DownloadBatch(self, jobs, done)
        self._batches.append(batch)
        return batch

    def fetch(
        self,
        url: str,
        max_bytes: int,
        parse: Callable[[bytes], T] | None = None,
        keep_bytes: int = 0,
        json_body: bytes | None = None,
    ) -> Fetched[T]:
        """Downloads one URL (POSTing `json_body` when given, as a CCIP-Read gateway is asked) and
        hashes it; with `parse`, the body (at most `keep_bytes`, else the download fails) is handed
        to it and only its result is returned. Failures are a `Fetched` with an error, never an
        exception."""
        origin = origin_of(url)
        if origin is None:
            return Fetched(url, None, error=f"not an http(s) URL with a host and port: {url[:200]!r}")
        if self.run_deadline.passed():
            return Fetched(url, None, error=self._out_of_time(url))
        deadline = Deadline(min(self.timeout, self.run_deadline.left()))
        for attempt in (1, 2):
            try:
                connection, reused = self._connection(origin, deadline)
            except DownloadFailed as failure:
                return Fetched(url, None, error=self._reason(failure, url))
            except TimeoutError:
                return Fetched(url, None, error=self._timed_out(url))
            try:
                return self._fetch(connection, url, max_bytes, parse, keep_bytes, json_body)
            except DownloadFailed as failure:
                self._drop(origin)
                return Fetched(url, None, error=self._reason(failure, url), status=failure.status)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                self._drop(origin)
                if reused and attempt == 1 and not deadline.passed():
                    continue  # the server closed an idle kept-alive connection: reconnect once
                return Fetched(url, None, error=f"connection closed by {origin[1]}: {one_line(error) or 'no answer'}")
            except TimeoutError:
                self._drop(origin)
                return Fetched(url, None, error=self._timed_out(url))
            except ssl.SSLError as error:
                self._drop(origin)
                return Fetched(url, None, error=f"TLS failed with {origin[1]}:{origin[2]}: {one_line(error)}")
            except (OSError, http.client.HTTPException, ValueError) as error:
                self._drop(origin)
                reason = getattr(error, "strerror", None) or one_line(error) or type(error).__name__
                return Fetched(url, None, error=f"cannot fetch {url}: {reason}")
        return Fetched(url, None, error=f"cannot fetch {url}")

    def _reason(self, failure: DownloadFailed, url: str) -> str:
        if isinstance(failure, _RunOutOfTime):
            return self._out_of_time(url)
        return f"{failure} ({url})" if str(failure).startswith(("refused", "cannot resolve")) else str(failure)

    def _out_of_time(self, url: str) -> str:
        return f"not fetched: the run's time limit of {self.run_deadline.seconds:g} s passed ({url})"

    def _timed_out(self, url: str) -> str:
        if self.run_deadline.passed():
            return self._out_of_time(url)
        return f"timed out after {self.timeout:g} s fetching {url}"

    def _fetch(
        self,
        connection: _Connection,
        url: str,
        max_bytes: int,
        parse: Callable[[bytes], T] | None,
        keep_bytes: int,
        json_body: bytes | None = None,
    ) -> Fetched[T]:
        parts = urllib.parse.urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if connection.sock is None:
            connection.connect()
        host = parts.netloc.rsplit("@", 1)[-1]
        headers = {"Host": host, "Accept": "application/json, */*"}
        if json_body is None:
            connection.request("GET", target, headers=headers)
        else:
            connection.request("POST", target, body=json_body, headers={**headers, "Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise DownloadFailed(f"HTTP {response.status} {one_line(response.reason)[:80]} for {url}", response.status)
        limit = min(max_bytes, keep_bytes) if parse is not None else max_bytes
        declared = response.getheader("Content-Length")
        declared_size = int(declared) if declared and declared.strip().isdigit() and len(declared) < 20 else None
        if declared_size is not None and declared_size > limit:
            raise DownloadFailed(self._too_big(url, f"is {declared_size} bytes", limit, max_bytes))
        digest = hashlib.sha256()
        kept = bytearray() if parse is not None else None
        size = 0
        while True:
            chunk = response.read(READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise DownloadFailed(self._too_big(url, "is over", limit, max_bytes))
            digest.update(chunk)
            if kept is not None:
                kept += chunk
        if response.will_close:
            self._drop(connection.origin)
        content = parse(bytes(kept)) if parse is not None and kept is not None else None
        return Fetched(url, digest.hexdigest(), size, content, None, connection.certificate, connection.tls_version)

    @staticmethod
    def _too_big(url: str, what: str, limit: int, max_bytes: int) -> str:
        kind = "size limit" if limit == max_bytes else "limit for documents whose content is read"
        if what == "is over":
            return f"{url} is over the {kind} of {limit} bytes"
        return f"{url} {what}, over the {kind} of {limit}"

    def _connection(self, origin: Origin, deadline: Deadline) -> tuple[_Connection, bool]:
        connections: dict[Origin, _Connection] = self._local.__dict__.setdefault("connections", {})
        connection = connections.get(origin)
        reused = connection is not None
        if connection is None:
            clock = _Clock()
            clock.deadline, clock.run = deadline, self.run_deadline
            addresses = self.policy.addresses(origin, clock)
            connection = _Connection(origin, addresses, self._context)
            connections[origin] = connection
            with self._lock:
                self._all.append(connection)
        connection.clock.deadline, connection.clock.run = deadline, self.run_deadline
        return connection, reused

    def _drop(self, origin: Origin) -> None:
        connections: dict[Origin, _Connection] = self._local.__dict__.setdefault("connections", {})
        connection = connections.pop(origin, None)
        if connection is not None:
            connection.close()
