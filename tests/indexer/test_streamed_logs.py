"""eth_getLogs answers read as they arrive: a reader holds its budget of logs, never the answer.

The answers come from a server of our own on loopback that writes them as it generates them, so
that an answer can be far larger than anything the test could hold, break off halfway, or hold
an item no log can be. The client is the shipped one (`JsonRpc` and `ChainReader`).
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tracker.chain.reader import ChainReader
from tracker.chain.rpc import JsonRpc, ProviderUnavailableError, RpcOptions
from tracker.errors import ChainError
from tracker.retry import RetryPolicy

ADDRESS = b"\x42" * 20
QUICK_RETRY = RetryPolicy(attempts=50, base_delay=0.05, max_delay=0.2, max_wait=1.0)
# An answer may be generated up to this many bytes; a client that stops reading ends it sooner.
ANSWER_LIMIT = 400 << 20


def log_entry(block: int, index: int) -> dict:
    return {
        "address": "0x" + ADDRESS.hex(),
        "topics": ["0x" + f"{block:064x}", "0x" + f"{index:064x}"],
        "data": "0x" + f"{block * 1000 + index:064x}" * 2,
        "blockNumber": hex(block),
        "blockHash": "0x" + f"{block:064x}",
        "transactionHash": "0x" + f"{block * 1000 + index:064x}",
        "transactionIndex": "0x0",
        "logIndex": hex(index),
        "removed": False,
    }


def chain_logs(blocks: range, per_block: Callable[[int], int]) -> Iterator[dict]:
    for block in blocks:
        for index in range(per_block(block)):
            yield log_entry(block, index)


def answer_of(logs: Iterator[dict]) -> Iterator[bytes]:
    """A JSON-RPC answer written as Python's json writes it (", " between items), item by item."""
    yield b'{"jsonrpc": "2.0", "id": 1, "result": ['
    for number, log in enumerate(logs):
        yield (b", " if number else b"") + json.dumps(log).encode()
    yield b"]}"


class LogServer:
    """Answers each eth_getLogs with `answer(request_number)` (pieces of bytes, chunked, or with
    a Content-Length when `length` says one); other methods get 0x1. Counts what it wrote."""

    def __init__(self) -> None:
        self.answer: Callable[[int], Iterator[bytes]] = lambda _n: answer_of(iter(()))
        self.length: Callable[[int], int | None] = lambda _n: None
        self.requests = 0
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if request.get("method") != "eth_getLogs":
                    body = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": "0x1"}).encode()
                    self._start(len(body))
                    self.wfile.write(body)
                    return
                server.requests += 1
                number = server.requests
                length = server.length(number)
                self._start(length)
                try:
                    for piece in server.answer(number):
                        if server.sent > ANSWER_LIMIT:
                            break
                        self.wfile.write(piece if length is not None else b"%x\r\n%s\r\n" % (len(piece), piece))
                        server.sent += len(piece)
                    if length is None:
                        self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: that is the point
                self.close_connection = True

            def _start(self, length: int | None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if length is None:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(length))
                self.end_headers()

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


@pytest.fixture
def server() -> Iterator[LogServer]:
    log_server = LogServer()
    thread = threading.Thread(target=log_server.http.serve_forever, daemon=True)
    thread.start()
    yield log_server
    log_server.http.shutdown()
    log_server.http.server_close()
    thread.join(timeout=5)


def reader_for(server: LogServer, max_logs: int, options: RpcOptions | None = None) -> ChainReader:
    rpc = JsonRpc.from_uri(server.url, options)
    return ChainReader(rpc, ADDRESS, initial_span=1_000_000, max_span=1_000_000, max_logs=max_logs, lag_guard=0)


def test_a_huge_answer_is_read_only_up_to_the_budget(server):
    # About 350 MB of logs if read to the end: five logs in each of 200,000 blocks.
    server.answer = lambda _n: answer_of(chain_logs(range(1, 200_001), lambda _b: 5))
    reader = reader_for(server, max_logs=1000)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        stopped, logs = reader.logs(1, 200_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 30
    # The budget is reached with the last log of block 200: the batch ends there, at a block boundary.
    assert stopped == 200
    assert [(log.block_number, log.log_index) for log in logs] == [(b, i) for b in range(1, 201) for i in range(5)]
    assert server.sent < 32 << 20  # the rest was never sent, let alone held
    assert peak < 64 << 20
    assert reader.span == 200  # the next range: as many blocks as held a batch's worth of logs


def test_a_block_alone_over_the_budget_comes_whole(server):
    server.answer = lambda _n: answer_of(chain_logs(range(7, 20), lambda b: 30 if b == 7 else 2))
    stopped, logs = reader_for(server, max_logs=10).logs(7, 19)
    assert stopped == 7
    assert len(logs) == 30 and {log.block_number for log in logs} == {7}


def test_an_answer_broken_off_halfway_is_read_again_from_its_start(server):
    # Three megabytes of logs: the reader has taken slices of the first answer when it breaks off.
    expected = list(chain_logs(range(1, 2001), lambda _b: 4))
    body = b"".join(answer_of(iter(expected)))
    assert len(body) > 3 << 20
    server.length = lambda _n: len(body)
    server.answer = lambda n: iter([body[: len(body) // 2 + 17]] if n == 1 else [body])
    reader = reader_for(server, max_logs=100_000)
    stopped, logs = reader.logs(1, 2000)
    assert stopped == 2000
    assert [(log.block_number, log.log_index, log.data) for log in logs] == [
        (int(e["blockNumber"], 16), int(e["logIndex"], 16), bytes.fromhex(e["data"][2:])) for e in expected
    ]
    assert server.requests == 2
    assert reader.rpc.stats.transient_faults == 1


def test_an_answer_that_ends_inside_its_result_fails_after_the_retry_window(server):
    server.answer = lambda _n: iter([b'{"jsonrpc": "2.0", "id": 1, "result": [', json.dumps(log_entry(1, 0)).encode()])
    reader = reader_for(server, max_logs=100, options=RpcOptions(retry=QUICK_RETRY))
    started = time.perf_counter()
    with pytest.raises(ProviderUnavailableError) as raised:
        reader.logs(1, 10)
    assert str(raised.value).startswith("eth_getLogs failed: the answer ended before its result did (")
    assert server.requests > 1
    assert time.perf_counter() - started < 1.0 + 2


def test_an_item_longer_than_any_log_is_refused_without_holding_it(server):
    def endless() -> Iterator[bytes]:
        yield b'{"jsonrpc": "2.0", "id": 1, "result": [{"address": "0x'
        while True:
            yield b"ab" * (1 << 19)

    server.answer = lambda _n: endless()
    reader = reader_for(server, max_logs=100)
    tracemalloc.start()
    try:
        with pytest.raises(ChainError) as raised:
            reader.logs(1, 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(raised.value) == "eth_getLogs: an item of the answer is longer than 32 MiB, more than any log can be"
    assert server.requests == 1  # not a fault to retry
    assert server.sent < 96 << 20
    assert peak < 128 << 20
