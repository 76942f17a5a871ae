"""The protocol server: a publish directory served read-only over HTTPS to anyone, hostile or not.

What a verifier needs from it is small and exact: the bytes of each instance protocol and document
under the path it was published at, over TLS with the certificate whose fingerprint the client
registered on chain. So the server answers GET and HEAD for `/<id>.json` and `/documents/<id>.json`
below the publish root (and, when given an explorer directory, the explorer's static files under
`/explorer/`), and 404 to every other path without looking at the disk (`files`). Documents are
immutable and cached for a year under their id as ETag; protocols change and are revalidated
(`no-cache`, ETag of their content). A request with a body gets 400 and the connection is closed,
so a body is never parsed as a next request.

HTTP/1.1 itself (parsing, keep-alive, writing responses) is aiohttp's low-level server, run on one
event loop thread; the connections are accepted and timed by our `ConnectionGuard`, which aiohttp
lacks: a total deadline for the TLS handshake plus request head, and caps on connections overall
and per client (`connections`). Files are read on a small pool of threads.

Without `--cert/--key` a self-signed certificate is generated on first use and kept (`tls`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import resource
import socket
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from aiohttp import web

from tracker.errors import TrackerError
from tracker.publish.connections import DEFAULT_HOST, DEFAULT_PORT, ConnectionGuard, ServerLimits
from tracker.publish.files import MAX_FILE_BYTES, Kind, Target, read_below, route
from tracker.publish.tls import (
    DEFAULT_TLS_DIR,
    SELF_SIGNED_CERT,
    SELF_SIGNED_KEY,
    CertificateFileError,
    TlsFiles,
    certificate_fingerprint,
    self_signed_files,
    server_context,
    tls_files,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_TLS_DIR",
    "SELF_SIGNED_CERT",
    "SELF_SIGNED_KEY",
    "CertificateFileError",
    "ExplorerDirError",
    "PublishRootError",
    "RunningServer",
    "ServerFailedError",
    "ServerLimits",
    "ServerStartError",
    "TlsFiles",
    "certificate_fingerprint",
    "self_signed_files",
    "serve_in_thread",
    "start_server",
    "tls_files",
]

SERVER_NAME = "instance-tracker"
ALLOWED_METHODS = "GET, HEAD"
# A document's bytes are fixed by its id: any cache may keep it for good.
DOCUMENT_CACHE = "public, max-age=31536000, immutable"
# A protocol grows as states get registered, the explorer changes with each build: revalidate.
REVALIDATE = "no-cache"
# File descriptors kept free of connections: the listener, files being read, logs, the runtime's own.
DESCRIPTOR_RESERVE = 128
LISTEN_BACKLOG = 512
START_SECONDS = 10.0
STOP_SECONDS = 5.0
# A client's body after a 400 is read and dropped for this long, so the response reaches it before
# the connection closes (closing on unread data would reset the connection under the response).
LINGER_SECONDS = 2.0
LOGGED_PATH_CHARS = 200
WRITE_CHUNK_BYTES = 64 * 1024


class PublishRootError(TrackerError):
    """The directory to serve does not exist or is not a directory."""


class ExplorerDirError(TrackerError):
    """The explorer directory does not exist or is not a directory."""


class ServerStartError(TrackerError):
    """The server could not listen on the requested address (in use, not permitted, unknown)."""


class ServerFailedError(TrackerError):
    """The running server stopped on an error of its own."""


def _printable(text: str) -> str:
    """A request path as it may appear in a log line: no control characters, bounded length."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:LOGGED_PATH_CHARS])


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def _plain(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=text.encode("utf-8"), headers={"Content-Type": "text/plain; charset=utf-8", **headers}
    )


def _not_found() -> web.Response:
    return _plain(404, "not found\n")


class _OneLine(logging.Handler):
    """aiohttp's and asyncio's error reports as one line each in the server's log, never a traceback:
    a client sending garbage must not be able to fill the console with stack traces."""

    def __init__(self, log: Callable[[str], None] | None):
        super().__init__(logging.DEBUG)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        if self._log is None or record.levelno < logging.WARNING:
            return
        cause = record.exc_info[1] if record.exc_info else None
        detail = f": {' '.join(str(cause).split())}" if cause is not None else ""
        self._log(_printable(f"{record.getMessage()}{detail}"))


def _http_logger(log: Callable[[str], None] | None) -> logging.Logger:
    # A logger of its own, outside logging's registry: each server logs to its own `log`.
    logger = logging.Logger("tracker.publish.server.http")
    logger.addHandler(_OneLine(log))
    return logger


class _ServerLoop:
    """The event loop thread: accepts on the listener, answers requests, stops on request."""

    def __init__(
        self,
        listener: socket.socket,
        context: ssl.SSLContext,
        root: Path,
        explorer: Path | None,
        limits: ServerLimits,
        log: Callable[[str], None] | None,
    ):
        self.root = root
        self.explorer = explorer
        self.guard = ConnectionGuard(limits, log)
        self._listener = listener
        self._context = context
        self._log = log
        self._loop = asyncio.new_event_loop()
        self._files = ThreadPoolExecutor(limits.file_workers, thread_name_prefix="protocol-server-files")
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stop_requested: asyncio.Event | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"protocol-server-{listener.getsockname()[1]}", daemon=True
        )

    @property
    def failure(self) -> BaseException | None:
        """What stopped the server, when it was not `stop()`."""
        return self._failure

    def start(self) -> None:
        self.thread.start()
        if not self._ready.wait(START_SECONDS) or self._failure is not None:
            self.stop()
            raise ServerStartError(f"the protocol server did not start: {self._failure or 'timed out'}")

    def stop(self) -> None:
        if self.thread.is_alive() and self._stop_requested is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)
            self.thread.join(STOP_SECONDS)
        self._files.shutdown(wait=False, cancel_futures=True)
        self._listener.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as error:  # reported by start(); the thread must not die silently
            self._failure = error
            self._ready.set()
        finally:
            self._listener.close()
            self._loop.close()

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        limits = self.guard.limits
        logger = _http_logger(self._log)
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: logger.error(context["message"], exc_info=context.get("exception"))
        )
        http = web.Server(
            self._handle,
            handler_cancellation=True,
            # A backstop only: the guard closes idle connections first (and aborts, which does not
            # wait for the client's TLS close_notify).
            keepalive_timeout=limits.idle_timeout + 5,
            lingering_time=LINGER_SECONDS,
            access_log=None,
            logger=logger,
        )
        accepting = asyncio.create_task(self.guard.accept_forever(self._listener, http, self._context))
        stopping = asyncio.create_task(self._stop_requested.wait())
        self._ready.set()
        await asyncio.wait({accepting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if accepting.done() and not accepting.cancelled():
            self._failure = accepting.exception()
        accepting.cancel()
        self.guard.close_all()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        for _ in range(3):
            await asyncio.sleep(0)  # let the aborted transports close their sockets

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        self.guard.responding(transport)
        try:
            response, content = await self._response_to(request)
            response.headers["Server"] = SERVER_NAME
            response.headers["X-Content-Type-Options"] = "nosniff"
            if request.body_exists:
                # Nothing here reads a body: left on the connection, it would be parsed as the
                # next request. One response, then the connection closes.
                response.force_close()
            await response.prepare(request)
            if content and request.method != "HEAD":
                # In slices: each write waits while the client is not reading, so a response the
                # client does not read stays under `response_timeout` and never sits in memory
                # whole in the connection's buffers.
                view = memoryview(content)
                for start in range(0, len(view), WRITE_CHUNK_BYTES):
                    await response.write(view[start : start + WRITE_CHUNK_BYTES])
            await response.write_eof()
        finally:
            self.guard.idle(transport)
        if self._log is not None:
            self._log(f"{request.remote} {request.method} {_printable(request.raw_path)} {response.status}")
        return response

    async def _response_to(self, request: web.BaseRequest) -> tuple[web.StreamResponse, bytes]:
        """The response to a request, and the file content to send after its head (if any)."""
        if request.method not in ("GET", "HEAD"):
            return _plain(405, "method not allowed\n", Allow=ALLOWED_METHODS), b""
        if request.body_exists:
            return _plain(400, "GET and HEAD requests carry no body\n"), b""
        if self.explorer is not None and request.raw_path.split("?", 1)[0] == "/explorer":
            return web.Response(status=301, headers={"Location": "/explorer/"}), b""
        target = route(request.raw_path, self.root, self.explorer)
        if target is None:
            return _not_found(), b""
        loaded = await self._loop.run_in_executor(self._files, _load, target)
        if loaded is None:
            return _not_found(), b""
        content, headers = loaded
        if _etag_matches(request.headers.get("If-None-Match"), headers["ETag"]):
            return web.Response(status=304, headers=headers), b""
        response = web.StreamResponse(headers={"Content-Type": target.content_type, **headers})
        response.content_length = len(content)
        return response, content


def _load(target: Target) -> tuple[bytes, dict[str, str]] | None:
    """The file's content and its caching headers (hashing a large file is no work for the loop)."""
    content = read_below(target.base, target.parts, MAX_FILE_BYTES)
    return None if content is None else (content, _cache_headers(target, content))


def _cache_headers(target: Target, content: bytes) -> dict[str, str]:
    """Caching and sharing: documents immutable under their id, the rest revalidated by content hash."""
    if target.kind is Kind.DOCUMENT:
        headers = {"ETag": f'"{target.identifier}"', "Cache-Control": DOCUMENT_CACHE}
    else:
        headers = {"ETag": f'"{hashlib.sha256(content).hexdigest()}"', "Cache-Control": REVALIDATE}
    if target.kind is not Kind.EXPLORER:
        # Public data: an explorer served from another origin may fetch it from a browser.
        headers["Access-Control-Allow-Origin"] = "*"
    return headers


def fit_to_descriptors(limits: ServerLimits, log: Callable[[str], None] | None = None) -> ServerLimits:
    """The limits, with fewer connections when the process may not open enough files for them.

    The soft open-file limit (`ulimit -n`) is raised towards the hard one first; only what still
    does not fit is taken off `max_connections`, and said in one log line.
    """
    needed = limits.max_connections + DESCRIPTOR_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return limits
    fitted = max(1, soft - DESCRIPTOR_RESERVE)
    if log is not None:
        log(f"only {soft} open files allowed (ulimit -n): serving at most {fitted} connections")
    return replace(
        limits, max_connections=fitted, max_connections_per_client=min(limits.max_connections_per_client, fitted)
    )


@dataclass
class RunningServer:
    """A protocol server running in a background thread; `stop()` shuts it down and frees the port."""

    root: Path
    host: str
    port: int
    tls: TlsFiles
    _loop: _ServerLoop = field(repr=False)
    limits: ServerLimits = field(default_factory=ServerLimits)
    explorer: Path | None = None

    @property
    def origin(self) -> str:
        """The origin to register as the ENS `url` record, e.g. https://127.0.0.1:8443."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def fingerprint(self) -> str:
        return self.tls.fingerprint

    @property
    def connections(self) -> int:
        """How many connections are open right now (handshaking, waiting or being answered)."""
        return self._loop.guard.count

    def url(self, path: str) -> str:
        return f"{self.origin}/{path.lstrip('/')}"

    def stop(self) -> None:
        self._loop.stop()

    def wait(self) -> None:
        """Blocks until the server stops (used by `ape run serve` until interrupted)."""
        while self._loop.thread.is_alive():
            self._loop.thread.join(timeout=0.5)
        if self._loop.failure is not None:
            raise ServerFailedError(f"the protocol server stopped: {self._loop.failure}")

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _listen(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(LISTEN_BACKLOG)
    except (OSError, OverflowError) as error:
        listener.close()
        raise ServerStartError(
            f"cannot listen on {host}:{port}: {getattr(error, 'strerror', None) or error}"
        ) from error
    listener.setblocking(False)
    return listener


def start_server(
    root: Path,
    host: str,
    port: int,
    tls: TlsFiles,
    log: Callable[[str], None] | None = None,
    *,
    explorer: Path | None = None,
    limits: ServerLimits | None = None,
) -> RunningServer:
    """Starts serving `root` over HTTPS on (host, port) in a daemon thread; port 0 picks a free one."""
    root = Path(root)
    if not root.is_dir():
        raise PublishRootError(f"publish directory {root} does not exist or is not a directory")
    if explorer is not None and not Path(explorer).is_dir():
        raise ExplorerDirError(f"explorer directory {explorer} does not exist or is not a directory")
    context = server_context(tls)  # a bad certificate or key is reported before anything listens
    fitted = fit_to_descriptors(limits or ServerLimits(), log)
    listener = _listen(host, port)
    bound_port = int(listener.getsockname()[1])
    resolved_explorer = Path(explorer).resolve() if explorer is not None else None
    loop = _ServerLoop(listener, context, root.resolve(), resolved_explorer, fitted, log)
    loop.start()
    return RunningServer(root.resolve(), host, bound_port, tls, loop, fitted, resolved_explorer)


def serve_in_thread(
    root: Path | str,
    host: str = DEFAULT_HOST,
    port: int = 0,
    cert: Path | str | None = None,
    key: Path | str | None = None,
    tls_dir: Path | str | None = None,
    log: Callable[[str], None] | None = None,
    *,
    explorer: Path | str | None = None,
    limits: ServerLimits | None = None,
) -> RunningServer:
    """Serves `root` over HTTPS in the background, with the given certificate or the kept self-signed one."""
    files = tls_files(
        Path(cert) if cert is not None else None,
        Path(key) if key is not None else None,
        Path(tls_dir) if tls_dir is not None else DEFAULT_TLS_DIR,
        [host],
    )
    return start_server(
        Path(root), host, port, files, log, explorer=Path(explorer) if explorer is not None else None, limits=limits
    )
