"""A TLS server on loopback that misbehaves on purpose, for the verifier's resource tests.

Each path has a `Route`: the bytes to answer with, and whether to drip the headers or the body
one byte per `drip_seconds` (slowloris). Every request is counted per path. The server answers
one request per connection (`Connection: close`), runs each connection in its own daemon thread,
and stops everything when `stop()` is called or its `with` block ends: its threads notice the stop
within one drip interval, so a test never leaves a dripping thread behind for long.
"""

from __future__ import annotations

import collections
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tracker.publish.certificates import generate_self_signed


@dataclass
class Route:
    body: bytes = b""
    status: str = "200 OK"
    drip_headers: bool = False
    drip_body: bool = False
    drip_seconds: float = 1.0
    content_length: int | None = None  # default: len(body)


class HostileServer:
    def __init__(self, directory: Path):
        certificate, key = generate_self_signed(["localhost"])
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hostile.crt").write_bytes(certificate)
        (directory / "hostile.key").write_bytes(key)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(directory / "hostile.crt", directory / "hostile.key")
        self.routes: dict[str, Route] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.accepting = threading.Thread(target=self._accept, name="hostile-accept", daemon=True)
        self.accepting.start()

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.origin}/{path.lstrip('/')}"

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.accepting.join(timeout=5)
        self.listener.close()
        for thread in list(self.threads):
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._serve, args=(connection,), name="hostile-connection", daemon=True)
            with self._lock:
                self.threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(5)
            with self.context.wrap_socket(raw, server_side=True) as tls:
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                path = request.split(b" ", 2)[1].decode("latin-1")
                with self._lock:
                    self.hits[path] += 1
                route = self.routes.get(path, Route(b"not found\n", "404 Not Found"))
                length = len(route.body) if route.content_length is None else route.content_length
                head = f"HTTP/1.1 {route.status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n".encode()
                self._send(tls, head, route.drip_headers, route.drip_seconds)
                self._send(tls, route.body, route.drip_body, route.drip_seconds)
        except (OSError, ssl.SSLError, IndexError):
            return  # the client gave up (as it should) or sent nonsense

    def _send(self, tls: ssl.SSLSocket, data: bytes, drip: bool, seconds: float) -> None:
        if not drip:
            tls.sendall(data)
            return
        for index in range(len(data)):
            if self.stopping.is_set():
                return
            tls.sendall(data[index : index + 1])
            time.sleep(seconds)
