"""The indexer's Postgres side: connecting, migrating, loading batches, rolling back, reporting.

Everything lives in one Postgres schema (default `tracker`), so several indexers (one per
contract and chain) can share a database and tests can each use a schema of their own. The
migrations `sql/NNNN_*.sql` are applied in order under an advisory lock and recorded in
`schema_migration`; running them twice changes nothing. Named statements live in
`sql/queries.sql`; table names built at run time come from the constants below and go through
`psycopg.sql.Identifier`.

A batch is loaded in one transaction: COPY into temporary staging tables (`LIKE` the real ones),
then `INSERT ... SELECT ... ON CONFLICT DO NOTHING` into dimensions and facts, then the cursor
moves, then commit. A batch is therefore either entirely there, cursor included, or not at all.

Foreign keys: Postgres checks them with one trigger call per row, which costs more than the rest of
a large load. When the role may set `session_replication_role` (a superuser, or one granted
`SET` on it), a batch sets it to `replica` for its own transaction, which skips those per-row
triggers, and instead checks every foreign key of every staged table with one anti-join each
before it commits (dimensions are inserted first, from the same batch). A violation aborts the
batch. Without that privilege the triggers run as usual. Either way the constraints hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tracker.chain.events import DecodedEvent
from tracker.chain.reader import BlockHeader, Receipt
from tracker.errors import ConfigurationError, TrackerError, one_line

DEFAULT_SCHEMA = "tracker"
SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MIGRATION_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
APPLICATION_NAME = "tracker-indexer"


# Fact table per event, with its columns after the common (contract, chain, block, tx, log index).
FACT_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ModelRegistered": ("model_registration", ("model_id", "publisher")),
    "InstanceRegistered": ("instance_registration", ("instance_id", "model_id", "owner")),
    "StateRegistered": ("state_registration", ("instance_id", "state_id", "seq")),
    "TransitionRegistered": (
        "transition_registration",
        ("instance_id", "pre_state_id", "post_state_id", "pre_seq", "post_seq"),
    ),
    "InstanceTerminated": ("termination", ("instance_id", "end_document_id", "state_count", "head")),
    "StatesAnchored": ("anchor", ("root", "submitter", "leaf_count")),
    "CertificateRegistered": ("certificate_registration", ("account", "fingerprint", "signature")),
    "InstanceTransferred": ("instance_transfer", ("instance_id", "from_owner", "to_owner")),
    "OperatorSet": ("operator_change", ("owner", "operator", "approved")),
    "ClientIdRegistered": ("client_id_registration", ("account", "client_id")),
}
FACT_PREFIX = ("contract_id", "chain_id", "block_number", "block_hash", "tx_hash", "log_index")


# Event argument names, in the order of each fact table's own columns.
EVENT_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "ModelRegistered": ("model", "publisher"),
    "InstanceRegistered": ("instance", "model", "owner"),
    "StateRegistered": ("instance", "state", "seq"),
    "TransitionRegistered": ("instance", "pre", "post", "preSeq", "postSeq"),
    "InstanceTerminated": ("instance", "endDocument", "stateCount", "head"),
    "StatesAnchored": ("root", "submitter", "leafCount"),
    "CertificateRegistered": ("account", "fingerprint", "signature"),
    "InstanceTransferred": ("instance", "from", "to"),
    "OperatorSet": ("owner", "operator", "approved"),
    "ClientIdRegistered": ("account", "clientId"),
}


# Which event arguments name a dimension member.
DIMENSION_ARGUMENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "model": {"ModelRegistered": ("model",), "InstanceRegistered": ("model",)},
    "instance": {
        "InstanceRegistered": ("instance",),
        "StateRegistered": ("instance",),
        "TransitionRegistered": ("instance",),
        "InstanceTerminated": ("instance",),
        "InstanceTransferred": ("instance",),
    },
    "state": {"StateRegistered": ("state",), "TransitionRegistered": ("pre", "post")},
    "client": {
        "ModelRegistered": ("publisher",),
        "InstanceRegistered": ("owner",),
        "StatesAnchored": ("submitter",),
        "CertificateRegistered": ("account",),
        "InstanceTransferred": ("from", "to"),
        "OperatorSet": ("owner", "operator"),
        "ClientIdRegistered": ("account",),
    },
}
DIMENSION_COLUMNS = {"model": "model_id", "instance": "instance_id", "state": "state_id", "client": "address"}


class DatabaseUnreachableError(TrackerError):
    """Postgres cannot be reached (not running, wrong host or port)."""


class DatabaseLoginError(TrackerError):
    """Postgres refused the login (unknown role or database, wrong password, pg_hba)."""


class DatabaseError(TrackerError):
    """A statement of the indexer failed on the server."""


class DanglingReferenceError(DatabaseError):
    """A batch would have stored a row whose foreign key points nowhere (a bug, never expected)."""


@dataclass(frozen=True)
class ForeignKey:
    table: str
    referenced_table: str
    columns: tuple[str, ...]
    referenced_columns: tuple[str, ...]

    def violations_query(self) -> sql.Composed:
        """Counts staged rows of `table` whose key is not in the referenced table."""
        matches = sql.SQL(" AND ").join(
            sql.SQL("d.{} = s.{}").format(sql.Identifier(r), sql.Identifier(c))
            for c, r in zip(self.columns, self.referenced_columns)
        )
        present = sql.SQL(" AND ").join(sql.SQL("s.{} IS NOT NULL").format(sql.Identifier(c)) for c in self.columns)
        return sql.SQL("SELECT count(*) FROM {} s WHERE {} AND NOT EXISTS (SELECT 1 FROM {} d WHERE {})").format(
            sql.Identifier(f"stage_{self.table}"), present, sql.Identifier(self.referenced_table), matches
        )


@dataclass(frozen=True)
class Cursor:
    block_number: int
    block_hash: bytes | None


@dataclass
class Batch:
    """Everything one batch loads: decoded events and the blocks and receipts they came from."""

    events: list[DecodedEvent]
    headers: dict[int, BlockHeader]
    receipts: dict[bytes, Receipt]
    end: BlockHeader
    indexed_blocks: dict[int, bytes] = field(default_factory=dict)


def _load_queries() -> dict[str, str]:
    text = resources.files("tracker.indexer").joinpath("sql/queries.sql").read_text()
    queries: dict[str, str] = {}
    name = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("-- name:"):
            if name:
                queries[name] = "\n".join(lines).strip()
            name, lines = line.split(":", 1)[1].strip(), []
        elif name:
            lines.append(line)
    if name:
        queries[name] = "\n".join(lines).strip()
    return queries


QUERIES = _load_queries()


def _row(result: psycopg.Cursor) -> tuple[Any, ...]:
    """The one row a query that always returns one row returned."""
    row = result.fetchone()
    if row is None:
        raise DatabaseError("a query that returns one row returned none")
    return tuple(row)


def named_query(name: str) -> sql.SQL:
    # The texts come from our own .sql file, never from input.
    return sql.SQL(QUERIES[name])  # type: ignore[arg-type,unused-ignore]


def describe_target(database_url: str | None) -> str:
    """host:port/database of a connection string (never the password), for messages."""
    try:
        params = conninfo_to_dict(database_url or "")
    except psycopg.ProgrammingError as error:
        raise ConfigurationError(f"invalid database URL: {one_line(error)}") from error
    import os

    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    database = params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or "postgres"
    return f"{host}:{port}/{database}"


def connect(database_url: str | None, schema: str) -> psycopg.Connection:
    """A connection to the indexer's database (libpq's PG* variables fill in what the URL omits).

    Raises `DatabaseUnreachableError` or `DatabaseLoginError` with the server's reason.
    """
    target = describe_target(database_url)
    try:
        return psycopg.connect(database_url or "", connect_timeout=5, application_name=f"{APPLICATION_NAME}:{schema}")
    except psycopg.OperationalError as error:
        reason = one_line(error)
        reason = reason.rsplit("failed: ", 1)[-1].replace("FATAL:  ", "").strip()
        if "FATAL" in str(error) or "authentication" in reason or "password" in reason:
            raise DatabaseLoginError(f"Postgres at {target} refused the login: {reason}") from error
        raise DatabaseUnreachableError(f"cannot reach Postgres at {target}: {reason}") from error


def validate_schema(schema: str) -> str:
    if not SCHEMA_PATTERN.match(schema):
        raise ConfigurationError(
            f"invalid schema name {schema!r}: use lowercase letters, digits and _, starting with a letter or _"
        )
    return schema


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every shipped migration, in order."""
    found = []
    for entry in resources.files("tracker.indexer").joinpath("sql").iterdir():
        match = MIGRATION_PATTERN.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found)


def migrate(connection: psycopg.Connection, schema: str) -> list[int]:
    """Creates the schema and applies the migrations it lacks; returns the versions applied."""
    validate_schema(schema)
    applied_now: list[int] = []
    with connection.transaction():
        # One migrator per schema at a time; the lock ends with the transaction.
        connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{APPLICATION_NAME}:{schema}"])
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        use_schema(connection, schema)
        connection.execute(named_query("create_migration_table"))
        done = {row[0] for row in connection.execute(named_query("applied_migrations"))}
        for version, name, text in migrations():
            if version in done:
                continue
            connection.execute(text.encode())  # no parameters: several statements in one go
            connection.execute(named_query("record_migration"), {"version": version, "name": name})
            applied_now.append(version)
    return applied_now


def use_schema(connection: psycopg.Connection, schema: str) -> None:
    connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))


def drop_schema(connection: psycopg.Connection, schema: str) -> None:
    validate_schema(schema)
    with connection.transaction():
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _may_skip_row_triggers(connection: psycopg.Connection) -> bool:
    """Whether this role may set session_replication_role (see the module docstring)."""
    try:
        with connection.transaction():
            connection.execute("SET LOCAL session_replication_role = replica")
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


# Postgres types of the staged columns, for binary COPY (raw bytes instead of escaped hex text).
COLUMN_TYPES = {
    "chain_id": "int8",
    "contract_id": "int4",
    "block_number": "int8",
    "log_index": "int4",
    "block_time": "timestamptz",
    "gas_used": "numeric",
    "effective_gas_price": "numeric",
    "fee_wei": "numeric",
    "seq": "int8",
    "pre_seq": "int8",
    "post_seq": "int8",
    "state_count": "int8",
    "leaf_count": "int8",
    "approved": "bool",
    "client_id": "text",
}


def _copy(cursor: psycopg.Cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with cursor.copy(statement) as copy:
        copy.set_types([COLUMN_TYPES.get(c, "bytea") for c in columns])
        for row in rows:
            copy.write_row(row)


def _insert_staged(cursor: psycopg.Cursor, table: str, order_by: str) -> int:
    # Sorted inserts keep concurrent indexers sharing dimensions from deadlocking on each other.
    cursor.execute(
        sql.SQL("INSERT INTO {} SELECT * FROM {} ORDER BY {} ON CONFLICT DO NOTHING").format(
            sql.Identifier(table), sql.Identifier(f"stage_{table}"), sql.Identifier(order_by)
        )
    )
    return cursor.rowcount


class Store:
    """The rows of one contract on one chain, behind one connection."""

    def __init__(self, connection: psycopg.Connection, schema: str, chain_id: int, address: bytes):
        self.connection = connection
        self.schema = schema
        self.chain_id = chain_id
        self.address = address
        with connection.transaction():
            use_schema(connection, schema)
            connection.execute(named_query("create_staging"))
            key = {"chain_id": chain_id, "address": address}
            connection.execute(named_query("ensure_contract"), key)
            self.contract_id: int = _row(connection.execute(named_query("contract_id"), key))[0]
            rows = connection.execute(named_query("foreign_keys"), {"schema": schema}).fetchall()
        staged = {"transaction", *(table for table, _ in FACT_TABLES.values())}
        self.foreign_keys = [
            ForeignKey(table, referenced, tuple(columns), tuple(referenced_columns))
            for table, referenced, columns, referenced_columns in rows
            if table in staged
        ]
        self.set_based_checks = _may_skip_row_triggers(connection)

    def cursor(self, start_block: int) -> Cursor:
        """Where indexing stands; created just before `start_block` the first time."""
        with self.connection.transaction():
            self.connection.execute(
                named_query("ensure_cursor"),
                {"contract_id": self.contract_id, "block_number": start_block - 1, "block_hash": None},
            )
            number, block_hash = _row(
                self.connection.execute(named_query("read_cursor"), {"contract_id": self.contract_id})
            )
        return Cursor(number, bytes(block_hash) if block_hash is not None else None)

    def load(self, batch: Batch, expected: Cursor) -> bool:
        """Loads a batch and moves the cursor to its end, atomically.

        Returns False (and loads nothing) when the cursor is no longer `expected`: another
        indexer of the same contract got there first.
        """
        try:
            with self.connection.transaction(), self.connection.cursor() as cursor:
                row = _row(cursor.execute(named_query("lock_cursor"), {"contract_id": self.contract_id}))
                current = Cursor(row[0], bytes(row[1]) if row[1] is not None else None)
                if current != expected:
                    return False
                if self.set_based_checks:
                    cursor.execute("SET LOCAL session_replication_role = replica")
                self._stage(cursor, batch)
                for table in ("model", "instance", "state", "client"):
                    _insert_staged(cursor, table, DIMENSION_COLUMNS[table])
                _insert_staged(cursor, "block", "block_number")
                _insert_staged(cursor, "transaction", "tx_hash")
                for table, _ in FACT_TABLES.values():
                    _insert_staged(cursor, table, "log_index")
                if self.set_based_checks:
                    self._check_references(cursor)
                cursor.execute(named_query("upsert_indexed_blocks"))
                if any(e.name == "ClientIdRegistered" for e in batch.events):
                    cursor.execute(named_query("latest_client_ids"), {"after_rollback": False})
                cursor.execute(
                    named_query("move_cursor"),
                    {"contract_id": self.contract_id, "block_number": batch.end.number, "block_hash": batch.end.hash},
                )
        except DanglingReferenceError:
            raise
        except psycopg.Error as error:
            raise DatabaseError(f"loading blocks up to {batch.end.number} failed: {one_line(error)}") from error
        return True

    def _check_references(self, cursor: psycopg.Cursor) -> None:
        for key in self.foreign_keys:
            missing = _row(cursor.execute(key.violations_query()))[0]
            if missing:
                raise DanglingReferenceError(
                    f"{missing} rows of {key.table} would reference missing {key.referenced_table} rows"
                )

    def _stage(self, cursor: psycopg.Cursor, batch: Batch) -> None:
        chain_id, contract_id = self.chain_id, self.contract_id
        event_blocks = {e.log.block_number for e in batch.events}
        _copy(
            cursor,
            "stage_block",
            ("chain_id", "block_hash", "block_number", "parent_hash", "block_time"),
            (
                (chain_id, h.hash, h.number, h.parent_hash, datetime.fromtimestamp(h.timestamp, timezone.utc))
                for n, h in batch.headers.items()
                if n in event_blocks
            ),
        )
        _copy(
            cursor,
            "stage_transaction",
            (
                "chain_id",
                "tx_hash",
                "block_hash",
                "from_address",
                "to_address",
                "gas_used",
                "effective_gas_price",
                "fee_wei",
            ),
            (
                (
                    chain_id,
                    r.tx_hash,
                    r.block_hash,
                    r.from_address,
                    r.to_address,
                    r.gas_used,
                    r.effective_gas_price,
                    r.fee_wei,
                )
                for r in batch.receipts.values()
            ),
        )
        indexed = {n: h.hash for n, h in batch.headers.items() if n in event_blocks}
        indexed[batch.end.number] = batch.end.hash
        _copy(
            cursor,
            "stage_indexed_block",
            ("contract_id", "block_number", "block_hash"),
            ((contract_id, n, h) for n, h in sorted(indexed.items())),
        )
        for dimension, sources in DIMENSION_ARGUMENTS.items():
            members = {e.args[a] for e in batch.events if e.name in sources for a in sources[e.name]}
            _copy(cursor, f"stage_{dimension}", (DIMENSION_COLUMNS[dimension],), ((m,) for m in sorted(members)))
        by_event: dict[str, list[DecodedEvent]] = {}
        for event in batch.events:
            by_event.setdefault(event.name, []).append(event)
        for name, events in by_event.items():
            table, columns = FACT_TABLES[name]
            arguments = EVENT_ARGUMENTS[name]
            _copy(
                cursor,
                f"stage_{table}",
                FACT_PREFIX + columns,
                (
                    (contract_id, chain_id, e.log.block_number, e.log.block_hash, e.log.tx_hash, e.log.log_index)
                    + tuple(e.args[a] for a in arguments)
                    for e in events
                ),
            )

    def stored_blocks(self, below: int, limit: int) -> list[tuple[int, bytes]]:
        """Block hashes this contract's indexing has seen, highest first, at or below `below`."""
        rows = self.connection.execute(
            named_query("stored_blocks_descending"), {"contract_id": self.contract_id, "below": below, "limit": limit}
        ).fetchall()
        self.connection.commit()
        return [(n, bytes(h)) for n, h in rows]

    def roll_back(self, fork: Cursor) -> None:
        """Deletes what was indexed above the fork point and moves the cursor back to it."""
        key = {"contract_id": self.contract_id, "chain_id": self.chain_id, "fork_number": fork.block_number}
        try:
            with self.connection.transaction(), self.connection.cursor() as cursor:
                cursor.execute(named_query("lock_cursor"), {"contract_id": self.contract_id})
                for table, _ in FACT_TABLES.values():
                    cursor.execute(
                        sql.SQL(
                            "DELETE FROM {} WHERE chain_id = %(chain_id)s AND contract_id = %(contract_id)s "
                            "AND block_number > %(fork_number)s"
                        ).format(sql.Identifier(table)),
                        key,
                    )
                cursor.execute(named_query("forget_indexed_blocks"), key)
                cursor.execute(named_query("delete_orphan_blocks"), key)
                cursor.execute(named_query("latest_client_ids"), {"after_rollback": True})
                cursor.execute(
                    named_query("move_cursor"),
                    {"contract_id": self.contract_id, "block_number": fork.block_number, "block_hash": fork.block_hash},
                )
        except psycopg.Error as error:
            raise DatabaseError(f"rolling back to block {fork.block_number} failed: {one_line(error)}") from error

    def row_counts(self) -> dict[str, int]:
        """Indexed logs of this contract per event name."""
        rows = self.connection.execute(named_query("row_counts"), {"contract_id": self.contract_id}).fetchall()
        self.connection.commit()
        return {name: count for name, count in rows}
