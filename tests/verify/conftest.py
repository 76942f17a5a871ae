"""Fixtures for the verifier: a real execution registered on chain under its owner's key, its
documents and protocol published in a temporary directory and served over real TLS on loopback,
the server's certificate registered on chain by the owner. The builders live in publishing.py
(the attack suite uses them too).

Tampering tests change the published files (or the chain) and expect the named check to fail.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # publishing, importable by the tests

import publishing  # noqa: E402
from publishing import Published  # noqa: E402

from tracker.chain.contract import TrackerContract  # noqa: E402
from tracker.publish.server import RunningServer, serve_in_thread  # noqa: E402


@pytest.fixture
def register_certificate() -> Callable[[TrackerContract, Any, str], None]:
    """`register_certificate(tracker, account, fingerprint)` as `ape run deploy --cert` does."""
    return publishing.register_certificate


@pytest.fixture
def serve(tmp_path) -> Iterator[Callable[..., RunningServer]]:
    """`serve(root, tls_name="tls")`: a server on a free loopback port, stopped after the test."""
    running: list[RunningServer] = []

    def start(root: Path, tls_name: str = "tls") -> RunningServer:
        server = serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / tls_name)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def publish_execution(tmp_path, serve, tracker) -> Callable[..., Published]:
    """`publish_execution(account, registered=None, certificate=True, states=4, anchored=False, sender=None)`:
    an execution registered on chain under `account` (sent by `sender`, default the account; only
    its first `registered` states when given; anchored mode with its states under one root),
    published in a fresh directory, served, and the server's certificate registered by `account`."""
    counter = iter(range(1_000))

    def make(
        account: Any,
        registered: int | None = None,
        certificate: bool = True,
        states: int = 4,
        anchored: bool = False,
        sender: Any = None,
        label: str | None = None,
    ) -> Published:
        number = next(counter)
        root = tmp_path / f"publish-{number}"
        root.mkdir()
        server = serve(root)
        owned = TrackerContract(tracker.contract, account)
        if certificate:
            publishing.register_certificate(owned, account, server.fingerprint)
        execution = publishing.make_execution(label or f"hello-{number}", states)
        return publishing.publish(root, server, owned, account, execution, registered, anchored, sender)

    return make


@pytest.fixture
def published(publish_execution, owner) -> Published:
    """A 4-state direct-mode execution registered on chain, published, served, its certificate registered."""
    return publish_execution(owner)


@pytest.fixture
def stalled_origin() -> Iterator[str]:
    """An origin whose server accepts connections and then never answers (a server that is too slow)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
                held.append(connection)
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for connection in held:
        connection.close()
    listener.close()
