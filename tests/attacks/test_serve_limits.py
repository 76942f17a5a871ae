"""Holding the server's resources: slow handshakes and heads, idle and unread connections, too many
connections from one client or from all. The servers here run with small limits, so that each
deadline is seen to pass within seconds and each cap is reached with a dozen connections; every
bound is asserted with a margin. Clients come from several loopback addresses (127.0.0.0/8)."""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from serve_attacks import (
    DOCUMENT,
    DOCUMENT_ID,
    PROJECT,
    PROTOCOL_ID,
    client_context,
    client_hello,
    get,
    make_publish_root,
    parse_responses,
    start_ape_serve,
)

from tracker.publish.connections import ConnectionGuard, ServerLimits, client_key
from tracker.publish.server import fit_to_descriptors, serve_in_thread

LIMITS = ServerLimits(
    head_timeout=1.5, idle_timeout=1.5, response_timeout=2.0, max_connections=12, max_connections_per_client=4
)
# The same caps with deadlines far enough away that no connection expires during a test.
ROOMY = ServerLimits(head_timeout=30, idle_timeout=30, max_connections=12, max_connections_per_client=4)
MARGIN = 2.0  # seconds a deadline may be late on a busy machine


@pytest.fixture
def site(tmp_path):
    root = make_publish_root(tmp_path)
    server = serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / "tls", limits=LIMITS)
    yield server
    server.stop()


@pytest.fixture
def roomy(tmp_path):
    root = make_publish_root(tmp_path)
    server = serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / "tls", limits=ROOMY)
    yield server
    server.stop()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def seconds_until_closed(sock: socket.socket, trickle: bytes = b"", every: float = 0.1, limit: float = 15.0) -> float:
    """Sends `trickle` a byte at a time until the server closes the connection; how long that took."""
    start = time.monotonic()
    sock.settimeout(every)
    sent = 0
    while time.monotonic() - start < limit:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except (TimeoutError, ssl.SSLWantReadError):
            pass
        except OSError:
            return time.monotonic() - start
        if sent < len(trickle):
            try:
                sock.send(trickle[sent : sent + 1])
            except OSError:
                return time.monotonic() - start
            sent += 1
    raise AssertionError(f"the server kept the connection open for {limit} s")


def non_reader(port: int, path: str) -> ssl.SSLSocket:
    """A client that asks for `path` and never reads: a tiny receive window, set before connecting
    so that the kernel cannot absorb the response for it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    tls = client_context().wrap_socket(sock)
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return tls


BIG = b"[" + b"0," * 16_000_000 + b"0]"


def closed_by_server(sock: socket.socket, within: float = 2.0) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def wait_for(condition, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def test_a_silent_connection_is_closed_at_the_head_deadline(site):
    with connect(site.port) as sock:
        elapsed = seconds_until_closed(sock)
    assert LIMITS.head_timeout - 0.3 < elapsed < LIMITS.head_timeout + MARGIN


def test_a_trickled_tls_handshake_is_closed_at_the_head_deadline(site):
    hello = client_hello()
    with connect(site.port) as sock:
        elapsed = seconds_until_closed(sock, trickle=hello, every=0.05)
    assert len(hello) * 0.05 > LIMITS.head_timeout  # the hello was still incomplete at the deadline
    assert LIMITS.head_timeout - 0.3 < elapsed < LIMITS.head_timeout + MARGIN


def test_a_trickled_request_head_is_closed_at_the_head_deadline(site):
    """The deadline counts from accept: the handshake's time is taken off the head's."""
    started = time.monotonic()
    with client_context().wrap_socket(connect(site.port)) as tls:
        head = f"GET /documents/{DOCUMENT_ID}.json HTTP/1.1\r\nHost: localhost\r\nX-Pad: {'a' * 100}".encode()
        seconds_until_closed(tls, trickle=head, every=0.05)
    elapsed = time.monotonic() - started
    assert LIMITS.head_timeout - 0.3 < elapsed < LIMITS.head_timeout + MARGIN


def test_a_kept_alive_connection_is_closed_after_the_idle_timeout(site):
    one = f"GET /documents/{DOCUMENT_ID}.json HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    with client_context().wrap_socket(connect(site.port)) as tls:
        tls.sendall(one)
        received = b""
        while received.count(DOCUMENT) < 1:
            received += tls.recv(65536)
        assert [r.status for r in parse_responses(received)] == [200]
        # The next head, trickled, does not extend the idle deadline either.
        elapsed = seconds_until_closed(tls, trickle=one, every=0.2)
    assert LIMITS.idle_timeout - 0.3 < elapsed < LIMITS.idle_timeout + MARGIN


def test_a_client_that_never_reads_its_response_is_cut_at_the_response_deadline(site):
    (site.root / f"{PROTOCOL_ID}.json").write_bytes(BIG)
    started = time.monotonic()
    tls = non_reader(site.port, f"/{PROTOCOL_ID}.json")
    wait_for(lambda: site.connections == 1)
    wait_for(lambda: site.connections == 0, limit=LIMITS.response_timeout + MARGIN + 1)
    assert time.monotonic() - started > LIMITS.response_timeout - 0.3
    tls.close()


def test_one_client_holds_at_most_its_share(roomy):
    held = [client_context().wrap_socket(connect(roomy.port, "127.0.0.2")) for _ in range(4)]
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            client_context().wrap_socket(connect(roomy.port, "127.0.0.2"))
        assert get(roomy.port, f"/documents/{DOCUMENT_ID}.json", source="127.0.0.3").status == 200
        wait_for(lambda: roomy.connections == 4)
        assert not any(closed_by_server(tls, within=0.1) for tls in held)
    finally:
        for tls in held:
            tls.close()
    # closed connections give their places back
    wait_for(lambda: roomy.connections == 0)
    assert get(roomy.port, f"/documents/{DOCUMENT_ID}.json", source="127.0.0.2").status == 200


def test_at_the_overall_limit_the_longest_waiting_connection_makes_room(roomy):
    silent = [connect(roomy.port, f"127.0.0.{n}") for n in (10, 11, 12) for _ in range(4)]
    try:
        wait_for(lambda: roomy.connections == ROOMY.max_connections)
        started = time.monotonic()
        assert get(roomy.port, f"/documents/{DOCUMENT_ID}.json").status == 200
        assert time.monotonic() - started < 1.0
        assert closed_by_server(silent[0])  # the oldest made room
        assert not any(closed_by_server(sock, within=0.1) for sock in silent[1:])
        assert roomy.connections <= ROOMY.max_connections
    finally:
        for sock in silent:
            sock.close()


def test_when_every_connection_is_busy_a_new_one_is_refused(tmp_path):
    """Refusal rather than eviction once no connection is waiting: here every place is taken by a
    response the client does not read."""
    root = make_publish_root(tmp_path)
    (root / f"{PROTOCOL_ID}.json").write_bytes(BIG)
    limits = ServerLimits(response_timeout=20, max_connections=3, max_connections_per_client=3)
    with serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / "tls", limits=limits) as server:
        readers = [non_reader(server.port, f"/{PROTOCOL_ID}.json") for _ in range(3)]
        try:
            wait_for(lambda: server.connections == 3)
            time.sleep(0.5)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                client_context().wrap_socket(connect(server.port, "127.0.0.4"))
            assert not any(closed_by_server(tls, within=0.1) for tls in readers)
        finally:
            for tls in readers:
                tls.close()


def test_connections_cost_no_threads(roomy):
    """Connections are served on the event loop: their number never shows in the thread count."""
    before = threading.active_count()
    sockets = [client_context().wrap_socket(connect(roomy.port, f"127.0.1.{n}")) for n in (1, 2) for _ in range(4)]
    try:
        wait_for(lambda: roomy.connections == 8)
        for _ in range(20):
            assert get(roomy.port, f"/documents/{DOCUMENT_ID}.json", source="127.0.2.1").status == 200
        assert threading.active_count() <= before + ROOMY.file_workers
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_clients_are_counted_by_ipv4_address_or_ipv6_64(address, key):
    assert client_key(address) == key


def test_a_guard_refuses_past_the_per_client_limit_without_a_network():
    """The counting itself, directly: the fifth from one client is refused, another client is not."""

    async def scenario():
        guard = ConnectionGuard(ServerLimits(max_connections_per_client=4))
        admitted = [guard._admit("192.0.2.1") for _ in range(5)]
        other = guard._admit("192.0.2.2")
        guard.release(admitted[0])
        again = guard._admit("192.0.2.1")
        guard.close_all()
        return admitted, other, again, guard.totals["refused"]

    admitted, other, again, refused = asyncio.run(scenario())
    assert [connection is not None for connection in admitted] == [True] * 4 + [False]
    assert other is not None and again is not None and refused == 1


def test_refusals_and_expiries_are_summed_up_in_one_line_not_one_each():
    async def scenario():
        lines: list[str] = []
        guard = ConnectionGuard(ServerLimits(head_timeout=0.1, max_connections_per_client=1), lines.append, 0.3)
        guard._admit("192.0.2.1")
        for _ in range(50):
            guard._admit("192.0.2.1")
        await asyncio.sleep(0.6)
        return lines

    assert asyncio.run(scenario()) == [
        "in the last 0.3 s: 50 refused over the limits, 1 closed at their deadline; 0 connections open"
    ]


def test_too_few_file_descriptors_lower_the_connection_limit_and_say_so(tmp_path):
    """With `ulimit -n 300` (soft and hard), `ape run serve` serves fewer connections and says how many."""

    def limit_files():
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))

    root = make_publish_root(tmp_path)
    served = start_ape_serve(root, tmp_path / "tls", preexec_fn=limit_files)
    try:
        output = "".join(served.output)
        assert "limits: at most 172 connections, 64 per client" in output
        assert get(served.port, f"/documents/{DOCUMENT_ID}.json").status == 200
    finally:
        served.stop()


def test_fitting_keeps_limits_that_fit():
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    small = ServerLimits(max_connections=8)
    assert fit_to_descriptors(small) == small
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft


def test_the_command_rejects_a_limit_below_one(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ape"), "run", "serve", str(tmp_path), "--max-connections", "0"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Invalid value for '--max-connections': 0 is not in the range x>=1." in result.stderr
