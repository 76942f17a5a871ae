"""Who may hold a connection to the protocol server, and for how long.

The server accepts connections itself, so every limit applies before any TLS work is done:

* at most `max_connections` open at once, and at most `max_connections_per_client` from one
  client address (an IPv6 client counts by its /64, which one host usually owns whole). Over the
  per-client limit a new connection is reset at once. At the overall limit, room is made by
  closing the connection that has waited longest for a request; only when every connection is
  busy with a response is the new one reset;
* every connection always has a deadline, and is aborted when it passes: `head_timeout` from
  accept to a complete first request head (the TLS handshake included, so a client trickling a
  handshake or a request line a byte at a time gains nothing), `response_timeout` for writing a
  response, and `idle_timeout` from the end of a response to the next complete request head.

All of it runs on one event loop thread: an open connection costs a file descriptor and about
0.3 MB of memory (most of it the 256 KiB read buffer asyncio gives each TLS connection), never a
thread.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

# How long the accept loop pauses when the process runs out of file descriptors, instead of
# spinning on the error; connections closing meanwhile make room.
ACCEPT_BACKOFF_SECONDS = 0.1
# At most one summary line of refused, expired and evicted connections per interval.
SUMMARY_INTERVAL_SECONDS = 10.0
_SUMMARY_LABELS = {
    "refused": "refused over the limits",
    "expired": "closed at their deadline",
    "evicted": "closed to make room",
    "starved": "accept pauses for want of file descriptors",
}
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# accept(2) errors that concern one connection only (accept(2) lists the network ones as to retry).
_CONNECTION_GONE = {
    errno.ECONNABORTED,
    errno.EPROTO,
    errno.EINTR,
    errno.EAGAIN,
    errno.EPERM,
    errno.ENETDOWN,
    errno.ENETUNREACH,
    errno.EHOSTDOWN,
    errno.EHOSTUNREACH,
    errno.ENOPROTOOPT,
    errno.EOPNOTSUPP,
}


# Where `ape run serve` listens unless told otherwise (beside the limits, so that the command's
# options are built without importing the server and aiohttp).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443


@dataclass(frozen=True)
class ServerLimits:
    """What one client, or all clients together, can hold of the protocol server."""

    head_timeout: float = 10.0
    idle_timeout: float = 15.0
    response_timeout: float = 60.0
    max_connections: int = 512
    max_connections_per_client: int = 64
    # Threads that open and read published files, so a slow disk never stalls the event loop.
    file_workers: int = 4

    def __post_init__(self) -> None:
        timeouts = (self.head_timeout, self.idle_timeout, self.response_timeout)
        counts = (self.max_connections, self.max_connections_per_client, self.file_workers)
        if min(timeouts) <= 0 or min(counts) < 1:
            raise ValueError(f"server limits must be positive: {self}")

    def describe(self) -> str:
        return (
            f"at most {self.max_connections} connections, {self.max_connections_per_client} per client; "
            f"{self.head_timeout:g} s for the TLS handshake and request head, {self.idle_timeout:g} s idle, "
            f"{self.response_timeout:g} s per response"
        )


def client_key(address: str) -> str:
    """The name a client's connections are counted under: its IPv4 address, or its IPv6 /64."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Connection:
    """One accepted connection: its client, its task, its transport once TLS is up, its deadline."""

    __slots__ = ("client", "open", "task", "timer", "transport")

    def __init__(self, client: str):
        self.client = client
        self.open = True
        self.task: asyncio.Task[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def close_now(self) -> None:
        """Aborts the connection: its transport once TLS is up, else the task doing the handshake."""
        if self.transport is not None:
            self.transport.abort()
        elif self.task is not None:
            self.task.cancel()


class _GuardedProtocol(asyncio.Protocol):
    """Hands every event to the HTTP protocol, and tells the guard when the connection is up or gone."""

    def __init__(self, guard: ConnectionGuard, connection: Connection, inner: asyncio.Protocol):
        self._guard = guard
        self._connection = connection
        self._inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard._attach(self._connection, transport)  # type: ignore[arg-type]
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.release(self._connection)
        self._inner.connection_lost(exc)


class ConnectionGuard:
    """Admits, times and counts the server's connections; lives on the server's event loop."""

    def __init__(
        self,
        limits: ServerLimits,
        log: Callable[[str], None] | None = None,
        summary_seconds: float = SUMMARY_INTERVAL_SECONDS,
    ):
        self.limits = limits
        self._log = log
        self._summary_seconds = summary_seconds
        self._per_client: dict[str, int] = {}
        self._by_transport: dict[asyncio.BaseTransport, Connection] = {}
        # Connections not busy with a response, oldest wait first (dicts keep insertion order).
        self._waiting: dict[Connection, None] = {}
        self._busy: set[Connection] = set()
        # Counts of the `_SUMMARY_LABELS` events: since start, and not yet reported in a summary.
        self.totals: Counter[str] = Counter()
        self._recent: Counter[str] = Counter()
        self._summary: asyncio.TimerHandle | None = None

    @property
    def count(self) -> int:
        return len(self._waiting) + len(self._busy)

    async def accept_forever(
        self, listener: socket.socket, protocol_factory: Callable[[], asyncio.Protocol], context: ssl.SSLContext
    ) -> None:
        """Accepts connections on `listener` until cancelled, each served over TLS by a new protocol."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, address = await loop.sock_accept(listener)
            except OSError as error:
                if error.errno in _OUT_OF_DESCRIPTORS:
                    self._count_event("starved")
                    await asyncio.sleep(ACCEPT_BACKOFF_SECONDS)
                    continue
                if error.errno in _CONNECTION_GONE:
                    continue
                raise  # the listener itself is broken: the server stops and says why
            connection = self._admit(client_key(address[0]))
            if connection is None:
                _reset(sock)
                continue
            connection.task = loop.create_task(self._serve(connection, sock, protocol_factory, context))

    def responding(self, transport: asyncio.BaseTransport | None) -> None:
        """A complete request head arrived on `transport`: the response gets `response_timeout`."""
        connection = self._by_transport.get(transport) if transport is not None else None
        if connection is not None and connection.open:
            self._waiting.pop(connection, None)
            self._busy.add(connection)
            self._set_deadline(connection, self.limits.response_timeout)

    def idle(self, transport: asyncio.BaseTransport | None) -> None:
        """The response on `transport` is written: the next request head gets `idle_timeout`."""
        connection = self._by_transport.get(transport) if transport is not None else None
        if connection is not None and connection.open:
            self._busy.discard(connection)
            self._waiting[connection] = None
            self._set_deadline(connection, self.limits.idle_timeout)

    def release(self, connection: Connection) -> None:
        """Forgets a closed connection (more than once is harmless)."""
        if not connection.open:
            return
        connection.open = False
        if connection.timer is not None:
            connection.timer.cancel()
        self._waiting.pop(connection, None)
        self._busy.discard(connection)
        if connection.transport is not None:
            self._by_transport.pop(connection.transport, None)
        remaining = self._per_client[connection.client] - 1
        if remaining:
            self._per_client[connection.client] = remaining
        else:
            del self._per_client[connection.client]

    def close_all(self) -> None:
        for connection in [*self._waiting, *self._busy]:
            connection.close_now()

    def _admit(self, client: str) -> Connection | None:
        if self._per_client.get(client, 0) >= self.limits.max_connections_per_client:
            self._refuse()
            return None
        if self.count >= self.limits.max_connections:
            if not self._waiting:
                self._refuse()
                return None
            oldest = next(iter(self._waiting))
            self.release(oldest)
            oldest.close_now()
            self._count_event("evicted")
        connection = Connection(client)
        self._per_client[client] = self._per_client.get(client, 0) + 1
        self._waiting[connection] = None
        self._set_deadline(connection, self.limits.head_timeout)
        return connection

    async def _serve(
        self,
        connection: Connection,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        context: ssl.SSLContext,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            # The handshake timeout only backs up the connection's own deadline, set at accept.
            await loop.connect_accepted_socket(
                lambda: _GuardedProtocol(self, connection, protocol_factory()),
                sock,
                ssl=context,
                ssl_handshake_timeout=self.limits.head_timeout + 1,
            )
        except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
            # A failed or abandoned handshake; asyncio has closed the socket. Only the task is
            # cancelled here (by a deadline, an eviction or the server stopping), never the loop.
            self.release(connection)
            sock.close()

    def _attach(self, connection: Connection, transport: asyncio.Transport) -> None:
        if not connection.open:
            transport.abort()  # its deadline passed while the handshake was finishing
            return
        connection.transport = transport
        self._by_transport[transport] = connection

    def _set_deadline(self, connection: Connection, seconds: float) -> None:
        if connection.timer is not None:
            connection.timer.cancel()
        connection.timer = asyncio.get_running_loop().call_later(seconds, self._expire, connection)

    def _expire(self, connection: Connection) -> None:
        if connection.open:
            self._count_event("expired")
            self.release(connection)
            connection.close_now()

    def _refuse(self) -> None:
        self._count_event("refused")

    def _count_event(self, name: str) -> None:
        self.totals[name] += 1
        self._recent[name] += 1
        if self._log is not None and self._summary is None:
            self._summary = asyncio.get_running_loop().call_later(self._summary_seconds, self._write_summary)

    def _write_summary(self) -> None:
        self._summary = None
        recent, self._recent = self._recent, Counter()
        events = ", ".join(f"{recent[name]} {label}" for name, label in _SUMMARY_LABELS.items() if recent[name])
        self._note(f"in the last {self._summary_seconds:g} s: {events}; {self.count} connections open")

    def _note(self, line: str) -> None:
        if self._log is not None:
            self._log(line)


def _reset(sock: socket.socket) -> None:
    """Closes a refused connection with a TCP reset: no TLS work, no TIME_WAIT left on our side."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
