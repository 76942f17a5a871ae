"""Reading the chain for the indexer: JSON-RPC to the HTTP endpoint of the connected provider.

Answers are decoded with msgspec straight into the few fields the indexer reads (no web3 result
formatters, which cost more than the rest of the indexer together on large log ranges, and a
receipt's logs are skipped without being built). Block headers and receipts go out as JSON-RPC
batch requests, one entry per distinct block or transaction, never one request per event.
`eth_getLogs` runs over block ranges that adapt: they halve when the node refuses a range (and
stay below it) or returns more logs than a batch should hold (the surplus is kept for the next
batch), and double while they come back sparse.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import msgspec

from tracker.errors import ChainError, ConfigurationError, one_line

DEFAULT_RPC_BATCH = 250
PARALLEL_BATCHES = 3
RPC_TIMEOUT_S = 120
STREAM_CHUNK_BYTES = 1 << 20
T = TypeVar("T")


class RpcError(ChainError):
    """The node answered a JSON-RPC request with an error."""

    def __init__(self, method: str, code: int | None, message: str):
        super().__init__(f"{method} failed: {message}" + (f" (code {code})" if code is not None else ""))
        self.method = method
        self.code = code
        self.node_message = message


# Wire shapes: msgspec decodes only these fields and skips the rest (a receipt's logs above all).
class _ErrorBody(msgspec.Struct):
    code: int | None = None
    message: str = ""


class _Response(msgspec.Struct, Generic[T]):
    id: Any = None
    result: T | None = None
    error: _ErrorBody | None = None


class JsonRpc:
    """JSON-RPC over HTTP to one node: single calls and batches, answers decoded by msgspec.

    It talks to the node the connected ape provider uses (`from_provider`), with its own HTTP
    session so that large answers are decoded once, straight into the fields the indexer reads.
    """

    def __init__(self, uri: str, batch_size: int = DEFAULT_RPC_BATCH):
        import requests

        self.uri = uri
        self.batch_size = batch_size
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/json"
        self._ids = itertools.count(1)
        self._id_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_provider(cls, provider: Any, batch_size: int = DEFAULT_RPC_BATCH) -> JsonRpc:
        """The HTTP JSON-RPC endpoint of a connected ape provider.

        Raises `ConfigurationError` for ape's in-process test chain, which has no JSON-RPC.
        """
        uri = getattr(provider, "http_uri", None)
        if not uri:
            web3 = getattr(provider, "web3", None)
            uri = getattr(getattr(web3, "provider", None), "endpoint_uri", None)
        if not uri:
            raise ConfigurationError(
                "the indexer reads logs over JSON-RPC and this provider has no HTTP endpoint "
                "(ape's in-process test chain): use --network ethereum:local:foundry, a node or Alchemy"
            )
        return cls(str(uri), batch_size)

    @classmethod
    def from_uri(cls, uri: str, batch_size: int = DEFAULT_RPC_BATCH) -> JsonRpc:
        return cls(uri, batch_size)

    def _post(self, payload: Any, what: str) -> bytes:
        try:
            response = self.session.post(self.uri, data=msgspec.json.encode(payload), timeout=RPC_TIMEOUT_S)
        except Exception as error:  # requests raises many connection error types
            raise ChainError(f"{what} failed: {one_line(error)}") from error
        if response.status_code != 200 and not response.content.startswith((b"{", b"[")):
            raise RpcError(what, response.status_code, response.text[:200].strip() or response.reason)
        return response.content

    def call(self, method: str, params: Sequence[Any], result_type: Any = Any) -> Any:
        body = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}, method)
        return _result(method, _decode(body, _Response[result_type], method))

    def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], result_type: Any = Any, chunk_size: int | None = None
    ) -> list[Any]:
        """Results in the order of `calls`: `chunk_size` (default `batch_size`) requests per round
        trip, and up to `PARALLEL_BATCHES` round trips at a time when there are several."""
        size = chunk_size or self.batch_size
        chunks = [calls[start : start + size] for start in range(0, len(calls), size)]
        if len(chunks) <= 1:
            return [r for chunk in chunks for r in self._batch_chunk(chunk, result_type)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(PARALLEL_BATCHES, thread_name_prefix="indexer-rpc")
        return [r for answers in self._pool.map(lambda c: self._batch_chunk(c, result_type), chunks) for r in answers]

    def _batch_chunk(self, chunk: Sequence[tuple[str, Sequence[Any]]], result_type: Any) -> list[Any]:
        with self._id_lock:
            ids = [next(self._ids) for _ in chunk]
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": list(params)}
            for i, (method, params) in zip(ids, chunk)
        ]
        what = f"batch of {len(chunk)} {chunk[0][0]}"
        body = self._post(payload, what)
        if body.lstrip().startswith(b"{"):  # the node refused the whole batch
            _result(what, _decode(body, _Response[Any], what))
            raise ChainError(f"{what}: the node did not answer the batch")
        answers = {a.id: a for a in _decode(body, list[_Response[result_type]], what)}
        if len(answers) != len(chunk):
            raise ChainError(f"{what} got {len(answers)} answers")
        return [_result(method, answers.get(i)) for i, (method, _) in zip(ids, chunk)]

    def stream(self, method: str, params: Sequence[Any], item_type: Any) -> Generator[list[Any], None, None]:
        """The items of a call whose result is a JSON array of flat objects (eth_getLogs), decoded a
        slice at a time while the answer arrives; closing the iterator drops the rest unread.

        So memory holds one slice of the answer, however long it is. An error answer raises
        `RpcError` as `call` does.
        """
        what = method
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            response = self.session.post(
                self.uri, data=msgspec.json.encode(payload), timeout=RPC_TIMEOUT_S, stream=True
            )
        except Exception as error:  # requests raises many connection error types
            raise ChainError(f"{what} failed: {one_line(error)}") from error
        try:
            slices = _ArraySlices()
            chunks = response.iter_content(STREAM_CHUNK_BYTES)
            try:
                for chunk in chunks:
                    for piece in slices.feed(chunk):
                        yield _decode(piece, list[item_type], what)
            except ChainError:
                raise
            except Exception as error:  # the connection broke while the answer arrived
                raise ChainError(f"{what} failed: {one_line(error)}") from error
            if slices.whole is not None:  # not a result array: an error, or null
                if response.status_code != 200 and not slices.whole.lstrip().startswith((b"{", b"[")):
                    raise RpcError(what, response.status_code, response.reason or "no answer")
                result = _result(method, _decode(slices.whole, _Response[Any], what))
                if result:
                    raise ChainError(f"{what}: unexpected answer")
        finally:
            response.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.session.close()


class _ArraySlices:
    """Cuts the `result` array of a JSON-RPC answer, as it arrives, into JSON arrays of whole items.

    Items are found by their boundaries (`}` and `{` separated by a comma): the items it is used for
    are flat objects whose strings are hex, and each slice is then decoded strictly, so a boundary
    read wrongly fails loudly instead of splitting an item. An answer that is not a result array
    (an error, null) is kept whole in `whole`, to be read as an ordinary answer.
    """

    START = re.compile(rb'"result"\s*:\s*\[')
    BOUNDARY = re.compile(rb"\}\s*,\s*\{")
    END = re.compile(rb"\}\s*\]|^\s*\]")

    def __init__(self) -> None:
        self.buffer = b""
        self.started = False
        self.ended = False
        self.whole: bytes | None = None

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if self.ended:
            return
        self.buffer += chunk
        if not self.started:
            found = self.START.search(self.buffer)
            if found is None:
                self.whole = self.buffer
                return
            self.whole = None
            self.started = True
            self.buffer = self.buffer[found.end() :]
        end = self.END.search(self.buffer)
        if end is not None:  # the array closes in this chunk: the rest of the answer is not needed
            self.ended = True
            items = self.buffer[: end.start() + 1].strip() if end.group().lstrip().startswith(b"}") else b""
            self.buffer = b""
            if items:
                yield b"[" + items + b"]"
            return
        boundaries = list(self.BOUNDARY.finditer(self.buffer, max(0, len(self.buffer) - len(chunk) - 8)))
        if boundaries:
            cut = boundaries[-1]
            yield b"[" + self.buffer[: cut.start() + 1] + b"]"
            self.buffer = self.buffer[cut.end() - 1 :]


def _decode(body: bytes, shape: Any, what: str) -> Any:
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.DecodeError as error:
        raise ChainError(f"{what}: unexpected answer: {one_line(error)}") from error


def _result(method: str, response: Any) -> Any:
    if response is None:
        raise ChainError(f"{method}: no answer")
    if response.error is not None:
        raise RpcError(method, response.error.code, response.error.message)
    return response.result
