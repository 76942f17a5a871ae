"""Background services for the demo and for tests that need several processes to share them:
an anvil chain, a moto server emulating AWS, and Postgres (given, or embedded with pgserver).

Every service is started inside a `ServiceStack` and stopped when the stack closes, also on
Ctrl-C, SIGTERM or failure, so nothing is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.errors import TrackerError

LOOPBACK = "127.0.0.1"


class ServiceError(TrackerError):
    """A background service could not be started."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"{what} exited with code {process.returncode} while starting")
        if ready():
            return
        time.sleep(0.1)
    raise ServiceError(f"{what} did not become ready within {timeout:.0f} s")


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((LOOPBACK, port)) == 0


def _json_rpc_answers(url: str) -> bool:
    request = urllib.request.Request(
        url,
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass(frozen=True)
class Anvil:
    url: str
    chain_id: int


@dataclass(frozen=True)
class MotoServer:
    endpoint_url: str


@dataclass(frozen=True)
class Database:
    url: str
    embedded: bool


class ServiceStack(contextlib.ExitStack):
    """An exit stack that also turns SIGTERM into an orderly shutdown while it is open."""

    def __init__(self, log_dir: Path):
        super().__init__()
        self.log_dir = log_dir
        self._previous_sigterm: Any = None

    def __enter__(self) -> ServiceStack:
        super().__enter__()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        self.callback(signal.signal, signal.SIGTERM, self._previous_sigterm or signal.SIG_DFL)
        return self

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Starts a process in its own session, logging to `<log_dir>/<name>.log`; stopped on close."""
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed by the stack)
        self.callback(log.close)
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, stdin=subprocess.DEVNULL
        )
        self.callback(stop_process, process)
        return process

    def anvil(self, chain_id: int = 31337, port: int | None = None, state_file: Path | None = None) -> Anvil:
        """An anvil on loopback; with `state_file`, its chain is loaded from and saved to that file,
        so it survives a restart."""
        binary = shutil.which("anvil") or str(Path(sys.prefix) / "bin" / "anvil")
        if not Path(binary).exists():
            raise ServiceError("anvil not found: run bin/setup")
        port = port or free_port()
        url = f"http://{LOOPBACK}:{port}"
        command = [binary, "--host", LOOPBACK, "--port", str(port), "--chain-id", str(chain_id), "--silent"]
        if state_file is not None:
            state_file.parent.mkdir(parents=True, exist_ok=True)
            command += ["--state", str(state_file), "--state-interval", "5"]
        process = self.spawn("anvil", command)
        _wait_until(lambda: _json_rpc_answers(url), "anvil", process, timeout=30)
        return Anvil(url, chain_id)

    def moto(self, port: int | None = None) -> MotoServer:
        """A moto server that really executes Step Functions state machines."""
        port = port or free_port()
        endpoint = f"http://{LOOPBACK}:{port}"
        process = self.spawn(
            "moto", [sys.executable, "-m", "tracker.dev.sfn_emulation", "-H", LOOPBACK, "-p", str(port)]
        )
        _wait_until(lambda: _port_open(port), "moto server", process, timeout=60)
        request = urllib.request.Request(
            f"{endpoint}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status not in (200, 201):
                raise ServiceError(f"moto server refused its configuration (HTTP {response.status})")
        return MotoServer(endpoint)

    def database(self, data_dir: Path) -> Database:
        """DATABASE_URL when set; otherwise an embedded Postgres (pgserver) stopped on close."""
        if os.environ.get("DATABASE_URL"):
            return Database(os.environ["DATABASE_URL"], embedded=False)
        try:
            import pgserver
        except ImportError as error:
            raise ServiceError("DATABASE_URL is not set and pgserver is not installed") from error
        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
        self.callback(server.cleanup)
        return Database(server.get_uri(), embedded=True)


def stop_process(process: subprocess.Popen, grace: float = 5.0) -> None:
    """Stops a process and its session: SIGTERM, then SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


def _raise_keyboard_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Sets environment variables for the block and restores the previous values afterwards."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
