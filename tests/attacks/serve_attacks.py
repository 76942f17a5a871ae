"""What the attacks on `ape run serve` share: a raw TLS client that sends bytes exactly as given and
reads back every response, a publish directory with hostile files in it, and the server's process
figures (threads, file descriptors) read from /proc."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
DOCUMENT_ID = "d0" * 32
PROTOCOL_ID = "c1" * 32
DOCUMENT = b'{"kind":"state","seq":0}'
PROTOCOL = b'{"states":[]}'
SECRET = b"SECRET=do-not-serve\n"


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Exchange:
    """What came back on one connection: the responses in order, and whether the server closed it."""

    responses: list[Response] = field(default_factory=list)
    closed_by_server: bool = False
    seconds: float = 0.0


def parse_responses(data: bytes, head_request: bool = False) -> list[Response]:
    """Splits the bytes read from a connection into responses, framed by their Content-Length."""
    responses = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        assert separator, f"an incomplete response head: {data[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
        length = 0 if head_request else int(headers.get("content-length", "0"))
        responses.append(Response(int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses


def exchange(
    port: int,
    data: bytes,
    *,
    wait: float = 3.0,
    source: str = "127.0.0.1",
    head_request: bool = False,
) -> Exchange:
    """Sends `data` on a new TLS connection and reads until the server closes it or `wait` passes."""
    start = time.monotonic()
    result = Exchange()
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as plain:
        with client_context().wrap_socket(plain) as tls:
            tls.sendall(data)
            received = b""
            deadline = start + wait
            while (remaining := deadline - time.monotonic()) > 0:
                tls.settimeout(remaining)
                try:
                    chunk = tls.recv(65536)
                except TimeoutError:
                    break
                except (ConnectionResetError, ssl.SSLError):
                    result.closed_by_server = True
                    break
                if not chunk:
                    result.closed_by_server = True
                    break
                received += chunk
    result.seconds = time.monotonic() - start
    result.responses = parse_responses(received, head_request)
    return result


def get(port: int, path: str, headers: str = "", method: str = "GET", source: str = "127.0.0.1") -> Response:
    """One request with `Connection: close`; its one response."""
    request = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n".encode()
    result = exchange(port, request, source=source, head_request=method == "HEAD")
    assert len(result.responses) == 1, result
    return result.responses[0]


def client_hello() -> bytes:
    """The first flight of a real TLS client, as an attacker would trickle it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_publish_root(base: Path) -> Path:
    """A publish directory with one document and one protocol, and around them what must never be
        served: dot files, other names, links (symbolic and hard) to a secret outside, a pipe, a
    directory and a file over the size limit, each under a name of the right shape."""
    root, outside = base / "publish", base / "outside"
    (root / "documents").mkdir(parents=True)
    outside.mkdir()
    secret = outside / "secret.json"
    secret.write_bytes(SECRET)
    (root / "documents" / f"{DOCUMENT_ID}.json").write_bytes(DOCUMENT)
    (root / f"{PROTOCOL_ID}.json").write_bytes(PROTOCOL)
    (root / ".env").write_bytes(SECRET)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(SECRET)
    (root / "notes.txt").write_bytes(SECRET)
    (root / "index.html").write_bytes(SECRET)
    (root / "documents" / f"{DOCUMENT_ID}.json.bak").write_bytes(SECRET)
    (root / f"{'A' * 64}.json").write_bytes(SECRET)  # upper-case hex is not an id
    os.link(secret, root / f"{'a1' * 32}.json")
    os.link(secret, root / "documents" / f"{'a2' * 32}.json")
    (root / f"{'b1' * 32}.json").symlink_to(secret)
    (root / "documents" / f"{'b2' * 32}.json").symlink_to(secret)
    (root / f"{'b3' * 32}.json").symlink_to(root / "documents" / f"{DOCUMENT_ID}.json")  # a link inside
    os.mkfifo(root / f"{'f0' * 32}.json")
    (root / f"{'e0' * 32}.json").mkdir()
    with (root / f"{'ff' * 32}.json").open("wb") as big:  # sparse: over the size limit, not on disk
        big.truncate(64 * 1024 * 1024 + 1)
    return root


def process_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for process {pid}")


def process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no resident size for process {pid}")


def process_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class ServeProcess:
    """`ape run serve` in its own process, as an operator runs it."""

    process: subprocess.Popen
    port: int
    output: list[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_ape_serve(root: Path, tls_dir: Path, *options: str, preexec_fn=None) -> ServeProcess:
    """Starts `ape run serve` on a free port; returns once it has printed its fingerprint."""
    ape = str(Path(sys.executable).parent / "ape")
    command = [ape, "run", "serve", str(root), "--port", "0", "--tls-dir", str(tls_dir), "--quiet", *options]
    process = subprocess.Popen(
        command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=preexec_fn
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while not any(line.startswith("SHA-256 fingerprint:") for line in lines):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise AssertionError("ape run serve did not start:\n" + "".join(lines) + (process.stdout.read() or ""))
        lines.append(process.stdout.readline())
    match = re.search(r"at https://127\.0\.0\.1:(\d+)", "".join(lines))
    assert match, lines
    return ServeProcess(process, int(match.group(1)), lines)
