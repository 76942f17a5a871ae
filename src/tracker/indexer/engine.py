"""The indexer: InstanceTracker logs from a chain into a Postgres star schema, exactly once.

Library use (what `ape run index` and the demo call)::

    from tracker.chain.rpc import JsonRpc, RpcBudget, RpcOptions, rpc_for
    from tracker.indexer.engine import IndexConfig, index

    rpc = rpc_for(provider)                          # ape's connected provider (HTTP or in-process), or
    rpc = JsonRpc.from_uri("http://127.0.0.1:8545")  # any JSON-RPC endpoint, or a hosted one paced
    rpc = JsonRpc.from_uri(url, RpcOptions(budget=RpcBudget(330)))  # to 330 compute units per second
    summary = index(IndexConfig(contract_address="0x...", database_url=None), rpc)
    print(summary.events, summary.last_block, summary.events_per_s)

`index` connects to Postgres (`database_url`, else `DATABASE_URL`, else libpq's PG* variables),
creates and migrates its schema, then repeats: read the cursor, check that the cursor's block is
still on the chain (else roll back to the fork point), read the next batch and load it together
with the new cursor in one transaction. It stops at the target block (head minus confirmations,
or `to_block`); with `follow` it then polls for new blocks, and when Postgres or the node goes
away it reconnects with backoff, saying so through `on_status`. Reading runs one batch ahead of
loading, on a thread of its own. `report(config, chain_id, instance_id)` reads the analysis views
(a `tracker.indexer.report.Report`).

A batch is read against a pinned block: the header of the target block is read before its logs
and again after them, with the headers of the blocks the logs came from. If the target's hash
changed, or any block or receipt disagrees with the logs, the chain moved while the batch was
read (a reorganisation in progress) and the batch is read again; a batch is never stored against
a chain its logs were not read from, also when the logs were empty. A log of the contract that
does not decode stops the run (`UndecodableLogError`): it is our ABI, so that is a bug to fix,
never data to skip.

Beside it: `tracker.chain.reader` (reading the chain), `tracker.chain.events` (ABI decoding),
`tracker.indexer.rows` (events to rows), `tracker.indexer.store` (schema, loading, rollback) and
`tracker.indexer.report` (views); the SQL is in `tracker/indexer/sql/`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from tracker.chain.events import DecodeOutcome, EventDecoder
from tracker.chain.reader import BlockHeader, ChainMovedError, ChainReader, RawLog
from tracker.chain.rpc import ProviderUnavailableError, Rpc
from tracker.documents.ids import normalize_address
from tracker.errors import ChainError, ConfigurationError, ContractNotFoundError, one_line
from tracker.indexer import DEFAULT_SCHEMA
from tracker.indexer.report import Report, read_report
from tracker.indexer.rows import Batch
from tracker.indexer.store import (
    Cursor,
    DatabaseError,
    DatabaseLoginError,
    DatabaseUnreachableError,
    Store,
    connect,
    migrate,
    validate_schema,
)
from tracker.retry import RetryPolicy, is_transient

FORK_SEARCH_PAGE = 64
# The collector's first threshold while indexing (Python's default is 700): see `_fewer_collections`.
INDEXING_GC_THRESHOLD = 50_000
# With --follow, how long to wait before reconnecting to Postgres or the node: doubling up to a
# minute, and never giving up (a service outlives an outage of either).
RECONNECT = RetryPolicy(attempts=1_000_000_000, base_delay=0.5, max_delay=60.0)


@dataclass(frozen=True)
class IndexConfig:
    """What to index, where to, and how far."""

    contract_address: str
    database_url: str | None = None
    schema: str = DEFAULT_SCHEMA
    from_block: int = 0
    to_block: int | None = None
    confirmations: int = 0
    batch_blocks: int = 1000
    max_batch_logs: int = 10_000
    follow: bool = False
    poll_interval: float = 2.0
    max_polls: int | None = None

    def validated(self) -> IndexConfig:
        validate_schema(self.schema)
        if self.from_block < 0:
            raise ConfigurationError(f"--from-block must be >= 0, got {self.from_block}")
        if self.to_block is not None and self.to_block < self.from_block:
            raise ConfigurationError(f"--to-block {self.to_block} is before --from-block {self.from_block}")
        if self.confirmations < 0:
            raise ConfigurationError(f"--confirmations must be >= 0, got {self.confirmations}")
        if self.batch_blocks < 1 or self.max_batch_logs < 1:
            raise ConfigurationError("--batch-blocks and --max-batch-logs must be at least 1")
        return self

    @property
    def database(self) -> str | None:
        return self.database_url or os.environ.get("DATABASE_URL") or None


@dataclass(frozen=True)
class BatchReport:
    """One loaded batch, as the progress display and `--follow` status lines see it."""

    first_block: int
    last_block: int
    target_block: int
    events: int
    skipped: int
    seconds: float


@dataclass
class IndexSummary:
    chain_id: int
    contract: str
    schema: str
    first_block: int | None = None
    last_block: int | None = None
    events: int = 0
    skipped_foreign: int = 0
    batches: int = 0
    reorgs: int = 0
    rolled_back_to: list[int] = field(default_factory=list)
    rereads: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    migrations_applied: list[int] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "events_per_s": round(self.events_per_s, 1)}


def index(
    config: IndexConfig,
    rpc: Rpc,
    on_batch: Callable[[BatchReport], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> IndexSummary:
    """Indexes the contract's logs into Postgres (see the module docstring) and says what it did.

    Raises `ContractNotFoundError` when no code is at the address, the database errors of
    `tracker.indexer.store` when Postgres is unreachable or refuses the login, `ChainError` when
    the node fails, and `UndecodableLogError` for a log of the contract that does not decode.
    With `follow`, losing Postgres or the node is not an error: the run reconnects with backoff
    and reports each wait through `on_status`.
    """
    config = config.validated()
    address = bytes.fromhex(normalize_address(config.contract_address))
    reader = ChainReader(rpc, address, initial_span=config.batch_blocks, max_logs=config.max_batch_logs)
    chain_id = reader.chain_id()
    if not reader.code(address):
        raise ContractNotFoundError(f"no contract code at 0x{address.hex()} on chain id {chain_id}")
    abi = _tracker_abi()
    decoder = EventDecoder.from_abi(abi, address)
    summary = IndexSummary(chain_id=chain_id, contract=address.hex(), schema=config.schema)
    with _fewer_collections():
        return _index(config, reader, decoder, abi, address, summary, on_batch, on_status)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Runs the cyclic garbage collector less often, for as long as the run lasts.

    A batch allocates a few hundred thousand short-lived objects (logs, decoded arguments, rows),
    none of them in a reference cycle: reference counting frees them all. At Python's default
    threshold the collector still ran every 700 allocations, and every few hundred runs walked
    every object alive in the process (ape's and web3's modules among them): a quarter of the
    indexer's CPU time on a 100,000-event backfill. Cycles are still collected, only later.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(INDEXING_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _index(
    config: IndexConfig,
    reader: ChainReader,
    decoder: EventDecoder,
    abi: list[Any],
    address: bytes,
    summary: IndexSummary,
    on_batch: Callable[[BatchReport], None] | None,
    on_status: Callable[[str], None] | None,
) -> IndexSummary:
    chain_id = summary.chain_id
    started = time.perf_counter()
    connection = connect(config.database, config.schema)
    try:
        summary.migrations_applied = migrate(connection, config.schema)
        store = Store(connection, config.schema, chain_id, address, abi)
        polls = 0
        failures = 0
        while True:
            try:
                _catch_up(config, reader, decoder, store, summary, on_batch)
                failures = 0
            except Exception as error:
                if not (config.follow and _is_connection_loss(error)):
                    raise
                failures += 1
                summary.reconnects += 1
                connection = _reconnect(config, error, failures, connection, on_status)
                store = Store(connection, config.schema, chain_id, address, abi)
                continue
            polls += 1
            if not config.follow or (config.max_polls is not None and polls >= config.max_polls):
                break
            if config.to_block is not None and store.cursor(config.from_block).block_number >= config.to_block:
                break
            time.sleep(config.poll_interval)
    except psycopg.Error as error:  # the loader wraps its own statements; this covers the rest
        raise DatabaseError(f"Postgres failed: {one_line(error)}") from error
    finally:
        summary.seconds = time.perf_counter() - started
        connection.close()
    return summary


def _tracker_abi() -> list[Any]:
    from ape import project

    return list(project.InstanceTracker.contract_type.abi)


def _is_connection_loss(error: BaseException) -> bool:
    """Whether a failure is Postgres or the node going away (worth reconnecting), not a fault of ours."""
    if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnreachableError)):
        return True
    if isinstance(error, ProviderUnavailableError):  # retried for the whole retry window already: still away
        return True
    return isinstance(error, ChainError) and is_transient(error)


def _reconnect(
    config: IndexConfig,
    error: BaseException,
    failures: int,
    connection: psycopg.Connection,
    on_status: Callable[[str], None] | None,
) -> psycopg.Connection:
    """Waits (with backoff) and returns a working connection: the old one if only the node failed."""
    database = not isinstance(error, ChainError)
    what = "Postgres" if database else "the node"
    while True:
        pause = RECONNECT.delay(min(failures - 1, 20))
        if on_status is not None:
            on_status(f"lost {what} ({one_line(error)}); reconnecting in {pause:.1f} s (attempt {failures})")
        time.sleep(pause)
        if not database and not connection.closed and connection.info.transaction_status == 0:
            return connection
        try:
            connection.close()
            fresh = connect(config.database, config.schema)
            migrate(fresh, config.schema)
        except (DatabaseError, DatabaseUnreachableError, DatabaseLoginError, psycopg.Error) as again:
            error, failures, database, what = again, failures + 1, True, "Postgres"
            continue
        if on_status is not None:
            on_status("reconnected to Postgres")
        return fresh


def _catch_up(
    config: IndexConfig,
    reader: ChainReader,
    decoder: EventDecoder,
    store: Store,
    summary: IndexSummary,
    on_batch: Callable[[BatchReport], None] | None,
) -> None:
    """Indexes batch after batch until the cursor reaches the target block.

    Reading runs ahead of loading, on threads of its own (`_Prefetch`): while Postgres stores
    batch k, the node is already answering for batch k + 1 (its blocks and transactions) and k + 2
    (its logs).
    """
    while True:
        cursor = store.cursor(config.from_block)
        head, header = reader.head_and_header(cursor.block_number if cursor.block_hash else None)
        if cursor.block_hash is not None and (header is None or header.hash != cursor.block_hash):
            fork = _fork_point(config, reader, store, cursor)
            store.roll_back(fork)
            reader.forget_pending()
            summary.reorgs += 1
            summary.rolled_back_to.append(fork.block_number)
            continue
        target = head - config.confirmations
        if config.to_block is not None:
            target = min(target, config.to_block)
        if cursor.block_number >= target:
            return
        with _Prefetch(reader, decoder, cursor, target) as batches:
            for item in batches:
                if not store.load(item.batch, item.previous):
                    break  # another indexer moved the cursor: start again from where it is now
                summary.first_block = item.first if summary.first_block is None else summary.first_block
                summary.last_block = item.batch.end.number
                summary.events += len(item.batch.events)
                summary.skipped_foreign += item.foreign
                summary.batches += 1
                if on_batch is not None:
                    on_batch(
                        BatchReport(
                            item.first,
                            item.batch.end.number,
                            target,
                            len(item.batch.events),
                            item.foreign,
                            time.perf_counter() - item.started,
                        )
                    )
            summary.rereads += batches.rereads


@dataclass
class _ReadBatch:
    previous: Cursor
    first: int
    batch: Batch
    foreign: int
    started: float


@dataclass
class _ReadLogs:
    """The logs of one batch, and the target's header read just before them."""

    first: int
    end: int
    logs: list[RawLog]
    pin: BlockHeader
    started: float


class _Prefetch:
    """Reads consecutive batches from `cursor` to `target` on two threads, at most two ahead.

    One thread reads the logs, batch after batch (each after pinning the target block); the other
    completes each batch in order (decoding, headers, receipts, inputs, and the checks that the
    chain did not move), so that the node answers the next batch's logs while this batch's blocks
    and transactions are read; a batch's receipts and inputs are read at the same time as its
    headers, on two more threads. Iterating yields the batches in order; it ends early (without an
    error) when the chain moved under the reader, so that the caller re-checks the cursor. Errors
    of the reader are raised here.
    """

    def __init__(self, reader: ChainReader, decoder: EventDecoder, cursor: Cursor, target: int):
        self.reader = reader
        self.decoder = decoder
        self.cursor = cursor
        self.target = target
        self.rereads = 0
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="indexer-reader", daemon=True)

    def __enter__(self) -> _Prefetch:
        self.thread.start()
        return self

    def __iter__(self) -> Iterator[_ReadBatch]:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, ChainMovedError):
                self.rereads += 1
                self.reader.forget_pending()
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        _drain_until_done(self.queue, self.thread)

    def _put(self, target: queue.Queue, item: object, stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                target.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        """Completes the batches the logs thread reads, in order, and hands them on."""
        logs: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()
        reading = threading.Thread(target=self._read_logs, args=(logs, stop), name="indexer-logs", daemon=True)
        reading.start()
        previous = self.cursor
        transactions = ThreadPoolExecutor(2, thread_name_prefix="indexer-transactions")
        try:
            while not self.stopping.is_set():
                try:
                    item = logs.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is None:
                    self._put(self.queue, None, self.stopping)
                    return
                if isinstance(item, BaseException):
                    raise item
                batch, foreign = _complete_batch(self.reader, self.decoder, previous, item, transactions)
                if not self._put(
                    self.queue, _ReadBatch(previous, item.first, batch, foreign, item.started), self.stopping
                ):
                    return
                previous = Cursor(batch.end.number, batch.end.hash)
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(self.queue, error, self.stopping)
        finally:
            # The reader is not shared between threads beyond this batch: the logs thread ends first.
            stop.set()
            _drain_until_done(logs, reading)
            transactions.shutdown(wait=True)

    def _read_logs(self, out: queue.Queue, stop: threading.Event) -> None:
        first = self.cursor.block_number + 1
        try:
            while first <= self.target and not stop.is_set():
                started = time.perf_counter()
                pin = _pin(self.reader, self.target)
                end, logs = self.reader.logs(first, self.target)
                if not self._put(out, _ReadLogs(first, end, logs, pin, started), stop):
                    return
                first = end + 1
            self._put(out, None, stop)
        except BaseException as error:  # handed to the completing thread, which hands it on
            self._put(out, error, stop)


def _drain_until_done(items: queue.Queue, thread: threading.Thread) -> None:
    """Empties `items` until `thread` (which may be waiting to put one more) has ended."""
    while thread.is_alive():
        try:
            items.get(timeout=0.05)
        except queue.Empty:
            pass
    thread.join()


def _pin(reader: ChainReader, target: int) -> BlockHeader:
    """The target block's header, read before the logs of a batch that leads to it."""
    header = reader.headers([target]).get(target)
    if header is None:
        raise ChainMovedError(f"block {target} is gone")
    return header


def _complete_batch(
    reader: ChainReader, decoder: EventDecoder, cursor: Cursor, read: _ReadLogs, pool: ThreadPoolExecutor
) -> tuple[Batch, int]:
    """One batch from its logs, read against `read.pin` (the target's header read before the
    logs): the batch and the number of foreign logs. Raises `ChainMovedError` when the chain
    moved since the pin was read."""
    outcome = decoder.decode(read.logs)
    hashes = list(dict.fromkeys(e.log.tx_hash for e in outcome.events))
    receipts_read = pool.submit(reader.receipts, hashes)
    inputs_read = pool.submit(reader.transactions, hashes)
    try:
        return _checked_batch(reader, cursor, read, outcome, receipts_read, inputs_read)
    finally:  # also when the batch is read again: nothing of this batch outlives it
        receipts_read.cancel()
        inputs_read.cancel()
        for read_ in (receipts_read, inputs_read):
            if not read_.cancelled():
                read_.exception()  # waits for it; its error, if any, was raised by result() or is moot


def _checked_batch(
    reader: ChainReader,
    cursor: Cursor,
    read: _ReadLogs,
    outcome: DecodeOutcome,
    receipts_read: Future,
    inputs_read: Future,
) -> tuple[Batch, int]:
    first, end, target = read.first, read.end, read.pin.number
    numbers = {e.log.block_number for e in outcome.events} | {end, target}
    if cursor.block_hash is not None:
        numbers.add(first)  # its parent hash must be the cursor's block
    headers = reader.headers(numbers)
    after = headers.get(target)
    if after is None or after.hash != read.pin.hash:
        # The target block changed between the two reads: the logs may be of another chain than
        # the headers, even when there were none. Read again from the cursor.
        raise ChainMovedError(f"block {target} changed while blocks {first}-{end} were read")
    if end not in headers:
        raise ChainMovedError(f"block {end} is gone")
    if first in headers and cursor.block_hash is not None and headers[first].parent_hash != cursor.block_hash:
        raise ChainMovedError(f"block {first} no longer follows the indexed block {cursor.block_number}")
    blocks_of: dict[bytes, bytes] = {}  # transaction hash -> the block its logs came from, in log order
    for event in outcome.events:
        log = event.log
        header = headers.get(log.block_number)
        if header is None or header.hash != log.block_hash:
            raise ChainMovedError(f"block {log.block_number} changed while it was read")
        if blocks_of.setdefault(log.tx_hash, log.block_hash) != log.block_hash:
            raise ChainMovedError(f"transaction 0x{log.tx_hash.hex()} has logs in two blocks")
    receipts = receipts_read.result()
    if any(receipts[tx_hash].block_hash != block_hash for tx_hash, block_hash in blocks_of.items()):
        raise ChainMovedError("a transaction moved to another block while it was read")
    inputs = inputs_read.result()
    return Batch(outcome.events, headers, receipts, inputs, headers[end]), outcome.foreign


def _fork_point(config: IndexConfig, reader: ChainReader, store: Store, cursor: Cursor) -> Cursor:
    """The highest block this contract's indexing stored that is still on the chain."""
    below = cursor.block_number
    while below >= 0:
        stored = store.stored_blocks(below, FORK_SEARCH_PAGE)
        if not stored:
            break
        on_chain: dict[int, BlockHeader] = reader.headers(n for n, _ in stored)
        for number, block_hash in stored:
            header = on_chain.get(number)
            if header is not None and header.hash == block_hash:
                return Cursor(number, block_hash)
        below = stored[-1][0] - 1
    return Cursor(config.from_block - 1, None)


def load_tasks(config: IndexConfig, publish_dir: Any) -> Any:
    """The code identity of each state in a publish directory into `state_task`
    (`tracker.indexer.tasks`); returns a `TaskLoad`."""
    from tracker.indexer.tasks import load_task_documents

    return _load_documents(config, load_task_documents, publish_dir)


def load_links(config: IndexConfig, publish_dir: Any) -> Any:
    """Which execution started which, from a publish directory's documents, into
    `execution_link` (`tracker.indexer.links`); returns a `LinkLoad`."""
    from tracker.indexer.links import load_link_documents

    return _load_documents(config, load_link_documents, publish_dir)


def _load_documents(config: IndexConfig, loader: Any, publish_dir: Any) -> Any:
    """`loader(connection, publish_dir)` on the configured schema, migrated first."""
    config = config.validated()
    connection = connect(config.database, config.schema)
    try:
        migrate(connection, config.schema)
        return loader(connection, publish_dir)
    finally:
        connection.close()


def report(config: IndexConfig, chain_id: int, instance_id: str | None = None) -> Report:
    """The analysis views for the configured contract on `chain_id`."""
    config = config.validated()
    address = bytes.fromhex(normalize_address(config.contract_address))
    connection = connect(config.database, config.schema)
    try:
        migrate(connection, config.schema)
        return read_report(connection, config.schema, chain_id, address, instance_id)
    finally:
        connection.close()
