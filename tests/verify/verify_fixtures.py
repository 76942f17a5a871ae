"""The verifier's fixtures (served publish directories, executions registered and published,
a stalled origin), shared by tests/verify (through its conftest) and the attack suite, which
import them from here."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import publishing
import pytest
from publishing import Published

from tracker.chain.contract import TrackerContract
from tracker.publish.server import RunningServer, serve_in_thread

__all__ = ["publish_execution", "published", "register_certificate", "serve", "stalled_origin", "verify_command"]


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


SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@dataclass
class Outcome:
    """What `ape run verify --json` printed and its exit status."""

    exit_code: int
    data: dict[str, Any]
    stderr: str

    def check(self, name: str) -> dict[str, Any]:
        return next(item for item in self.data["results"] if item["check"] == name)

    @property
    def failed_checks(self) -> list[str]:
        return [
            item["check"]
            for item in self.data["results"]
            if item["check"] not in ("state", "attempt") and item["ok"] is False
        ]

    def rows(self, kind: str = "state") -> list[dict[str, Any]]:
        return [item for item in self.data["results"] if item["check"] == kind]

    def failing(self, kind: str = "state") -> list[tuple[Any, str]]:
        key = "position" if kind == "state" else "attempt"
        return [(row[key], row["reason"]) for row in self.rows(kind) if row["ok"] is False]


def network_choice() -> str:
    """The chain the tests run on, for commands run in-process: they would connect to the default
    network otherwise, and on anvil `ethereum:local:foundry` would start another anvil, so an
    anvil is named by its URI."""
    from ape import chain

    provider = chain.provider
    if provider.name == "foundry":
        return f"ethereum:local:{provider.uri}"
    return provider.network_choice


@pytest.fixture(scope="session")
def verify_command() -> Callable[..., Outcome]:
    """`verify_command(url, *options)`: `ape run verify URL --json *options` in-process, as its Outcome."""
    import importlib.util

    from click.testing import CliRunner

    spec = importlib.util.spec_from_file_location("verify_fixtures_script", SCRIPTS / "verify.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(url: str, *options: str) -> Outcome:
        arguments = [url, "--json", "--network", network_choice(), *options]
        result = CliRunner(mix_stderr=False).invoke(module.cli, arguments, catch_exceptions=False)
        data = json.loads(result.stdout) if result.stdout.strip() else {}
        return Outcome(result.exit_code, data, result.stderr)

    return run
