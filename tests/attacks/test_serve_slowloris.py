"""The attack that took the old server down, against `ape run serve` in its own process.

A thousand connections (half trickling a TLS ClientHello, half a request line after a completed
handshake, a byte a second each, from 25 loopback addresses at 40 apiece: within the default of
64 per client) are held open while a legitimate client fetches a document. The old server spent a
thread and a descriptor on each and made the legitimate GET wait for a minute. Now the GET must
answer in under 2 s; the server's threads must not grow with the load; its descriptors must stay
within its connection limit (512 by default, below the load: the longest-waiting connections are
closed to make room); and every slow connection it kept must be closed at its deadline.

The server runs with the default limits but `--head-timeout 20`, so that the load is fully built
before the first deadline passes even on a busy two-core machine. The load is sized to the open
file limit (`ulimit -n`), which this process raises towards its hard limit first.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
import threading
import time

import pytest
from serve_attacks import (
    DOCUMENT,
    DOCUMENT_ID,
    client_context,
    client_hello,
    make_publish_root,
    parse_responses,
    process_fds,
    process_rss_mb,
    process_threads,
    start_ape_serve,
)

from tracker.publish.server import ServerLimits

LIMITS = ServerLimits()  # the defaults `ape run serve` runs with

SLOW_CONNECTIONS = 1000
SOURCES = [f"127.0.3.{n}" for n in range(1, 26)]
HEAD_TIMEOUT = 20.0
TRICKLE_SECONDS = 1.0
# Descriptors this process needs besides the slow connections (pytest, ape, the legitimate GETs).
OWN_DESCRIPTORS = 300
GETS = 5
GET_LIMIT_SECONDS = 2.0


def open_file_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class SlowLoris:
    """The slow clients, on an event loop of their own in a background thread."""

    def __init__(self, port: int, count: int):
        self.port = port
        self.count = count
        self.established = 0
        self.failed: list[str] = []
        self.answered = 0
        # (opened, closed by the server) per connection, monotonic seconds
        self.lifetimes: list[tuple[float, float]] = []
        self._hello = client_hello()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def wait(self, condition, limit: float) -> None:
        deadline = time.monotonic() + limit
        while not condition() and not self.failed:
            assert time.monotonic() < deadline, f"{self.established} of {self.count} established"
            time.sleep(0.1)
        assert not self.failed, self.failed[:5]

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        gate = asyncio.Semaphore(64)  # connections being set up at once
        tasks = [
            asyncio.create_task(self._one(index, SOURCES[index % len(SOURCES)], gate)) for index in range(self.count)
        ]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, index: int, source: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            opened = time.monotonic()
            try:
                if index % 2:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))
                    writer.write(self._hello[:5])  # a TLS record header, then the ClientHello a byte at a time
                    rest = self._hello[5:]
                else:
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1",
                        self.port,
                        ssl=client_context(),
                        server_hostname="localhost",
                        local_addr=(source, 0),
                    )
                    writer.write(b"GET /")  # the request line, then its rest a byte at a time
                    rest = f"documents/{DOCUMENT_ID}.json HTTP/1.1\r\nHost: localhost\r\nX-Pad: {'a' * 200}".encode()
            except (OSError, ssl.SSLError) as error:
                self.failed.append(f"{source}: {error!r}")
                return
            self.established += 1
        sent = 0
        while True:
            try:
                data = await asyncio.wait_for(reader.read(1), TRICKLE_SECONDS)
            except asyncio.TimeoutError:
                writer.write(rest[sent : sent + 1])
                sent += 1
                continue
            except (OSError, ssl.SSLError):
                data = b""
            if data:
                self.answered += 1  # the server must never answer an incomplete handshake or head
            self.lifetimes.append((opened, time.monotonic()))
            writer.close()
            return


def legitimate_get(port: int) -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as plain:
        with client_context().wrap_socket(plain) as tls:
            tls.sendall(
                f"GET /documents/{DOCUMENT_ID}.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    elapsed = time.monotonic() - started
    [response] = parse_responses(data)
    assert (response.status, response.body) == (200, DOCUMENT)
    return elapsed


@pytest.mark.slow
def test_a_get_answers_while_a_thousand_slow_connections_are_held(tmp_path):
    limit = open_file_limit(SLOW_CONNECTIONS + OWN_DESCRIPTORS)
    slow = min(SLOW_CONNECTIONS, limit - OWN_DESCRIPTORS)  # the server inherits the same limit
    assert slow >= 200, f"ulimit -n is {limit}: too low to hold a meaningful load"
    served = start_ape_serve(make_publish_root(tmp_path), tmp_path / "tls", "--head-timeout", str(HEAD_TIMEOUT))
    attack = SlowLoris(served.port, slow)
    try:
        threads_before, fds_before = process_threads(served.pid), process_fds(served.pid)
        rss_before = process_rss_mb(served.pid)
        started = time.monotonic()
        attack.start()
        attack.wait(lambda: attack.established == slow, limit=HEAD_TIMEOUT - 5)
        built = time.monotonic() - started

        latencies, threads_held, fds_held = [], 0, 0
        for _ in range(GETS):
            latencies.append(legitimate_get(served.port))
            threads_held = max(threads_held, process_threads(served.pid))
            fds_held = max(fds_held, process_fds(served.pid))
        rss_held = process_rss_mb(served.pid)
        assert time.monotonic() - started < HEAD_TIMEOUT - 1, "the load was not held for the whole measurement"

        attack.wait(lambda: len(attack.lifetimes) == slow, limit=HEAD_TIMEOUT + 10)
        time.sleep(0.5)
        fds_after = process_fds(served.pid)
        lifetimes = [closed - opened for opened, closed in attack.lifetimes]
        kept = [seconds for seconds in lifetimes if seconds > HEAD_TIMEOUT - 1]
        print(
            f"\nslowloris: {slow} slow connections built in {built:.1f} s; legitimate GET "
            f"max {max(latencies):.3f} s (of {GETS}); server threads {threads_before} -> {threads_held}, "
            f"fds {fds_before} -> {fds_held} -> {fds_after} after the deadline, "
            f"RSS {rss_before:.0f} -> {rss_held:.0f} MB; {len(kept)} kept until the deadline, "
            f"{slow - len(kept)} closed earlier to make room"
        )
        assert max(latencies) < GET_LIMIT_SECONDS
        assert threads_held <= threads_before + LIMITS.file_workers
        # bounded by the connection limit, not by the load, and really at that limit
        assert LIMITS.max_connections * 0.9 <= fds_held - fds_before <= LIMITS.max_connections + 10
        assert fds_after <= fds_before + 5
        assert attack.answered == 0
        assert max(lifetimes) < HEAD_TIMEOUT + 5
        expected_kept = min(slow, LIMITS.max_connections)
        assert expected_kept - GETS - 10 <= len(kept) <= expected_kept
    finally:
        attack.stop()
        served.stop()
