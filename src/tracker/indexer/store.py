"""The indexer's Postgres side: connecting, migrating, loading batches, rolling back.

Everything lives in one Postgres schema (default `tracker`), so several indexers (one per
contract and chain) can share a database and tests can each use a schema of their own. The
migrations `sql/NNNN_*.sql` are applied in order under an advisory lock and recorded in
`schema_migration`; running them twice changes nothing. Named statements live in
`sql/queries.sql`; table and column names built at run time come from `tracker.indexer.rows`
and go through `psycopg.sql.Identifier`.

A batch is loaded in one transaction: the cursor row is locked (so two indexers of one contract
never load the same batch), the batch's keys, models and accounts are looked up, surrogate keys
are drawn, every row goes in with binary COPY straight into its table, the rollups add what the
new facts count, the touched rows' current values are refreshed, the cursor moves, and the
transaction commits: a batch is entirely there, cursor included, or not at all. A rollback is the
same in reverse, in one transaction too: the rollups subtract what the facts above the fork point
count (with the very statements that added it), the facts go, then every dimension row first
seen above the fork point, then the touched rows are refreshed from what is left.

Nothing in a batch's path scans a table: each statement reaches the batch's rows through the
(contract_id, block_number) indexes and their dimensions through primary keys, so loading costs
the same per event into an empty schema as into one with many millions of rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tracker.errors import ConfigurationError, TrackerError, one_line
from tracker.indexer.rows import (
    LOAD_ORDER,
    Allocation,
    Batch,
    FunctionNames,
    Known,
    KnownKey,
    Lineage,
    RowBuilder,
    Rows,
    columns_of,
    references,
)

SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MIGRATION_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
APPLICATION_NAME = "tracker-indexer"
# The statements that add a batch's facts to the rollups (and, with sign -1, take them out).
ROLLUP_STATEMENTS = ("add_day_stats", "add_model_stats", "add_account_stats", "add_function_stats", "add_histograms")
ABOVE_EVERY_BLOCK = 2**62


class DatabaseUnreachableError(TrackerError):
    """Postgres cannot be reached (not running, wrong host or port)."""


class DatabaseLoginError(TrackerError):
    """Postgres refused the login (unknown role or database, wrong password, pg_hba)."""


class DatabaseError(TrackerError):
    """A statement of the indexer failed on the server."""


@dataclass(frozen=True)
class Cursor:
    block_number: int
    block_hash: bytes | None


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
    row = result.fetchone()
    if row is None:
        raise DatabaseError("the server returned no row where one was expected")
    return row


def named_query(name: str) -> sql.SQL:
    # The texts come from our own .sql file, never from input.
    return sql.SQL(QUERIES[name])  # type: ignore[arg-type,unused-ignore]


def named_statements(name: str) -> list[sql.SQL]:
    """A named section of several statements, one by one (parameters allow one per execute)."""
    return [sql.SQL(part.strip()) for part in QUERIES[name].split(";\n") if part.strip()]  # type: ignore[arg-type,unused-ignore]


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
        # No JIT: the loader's statements touch a batch's rows through indexes and take
        # milliseconds, but their cost estimates (a lateral per touched row) pass jit_above_cost,
        # and compiling them took 1.7 s of every batch's 2 s at a million state rows.
        return psycopg.connect(
            database_url or "",
            connect_timeout=5,
            application_name=f"{APPLICATION_NAME}:{schema}",
            options="-c jit=off",
        )
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


def _copy(cursor: psycopg.Cursor, table: str, rows: Iterable[Sequence[Any]]) -> None:
    columns = columns_of(table)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    )
    with cursor.copy(statement) as copy:
        copy.set_types([kind for _, kind in columns])
        for row in rows:
            copy.write_row(row)


class Store:
    """The rows of one contract on one chain, behind one connection."""

    def __init__(
        self, connection: psycopg.Connection, schema: str, chain_id: int, address: bytes, abi: Sequence[Any] = ()
    ):
        self.connection = connection
        self.schema = schema
        self.chain_id = chain_id
        self.address = address
        self.functions = FunctionNames(abi, address)
        with connection.transaction():
            use_schema(connection, schema)
            key = {"chain_id": chain_id, "address": address}
            connection.execute(named_query("ensure_contract"), key)
            self.contract_id: int = _row(connection.execute(named_query("contract_id"), key))[0]

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
                if Cursor(row[0], bytes(row[1]) if row[1] is not None else None) != expected:
                    return False
                stored = {"contract_id": self.contract_id, "after": expected.block_number}
                if _row(cursor.execute(named_query("stored_after"), stored))[0]:
                    # Rows above the cursor: the cursor was moved back by hand. Take them out first,
                    # so that loading a range again changes nothing.
                    self._roll_back(cursor, expected.block_number)
                rows = self._rows(cursor, batch)
                for table in LOAD_ORDER:
                    if rows.tables[table]:
                        _copy(cursor, table, rows.tables[table])
                self._add_rollups(cursor, expected.block_number, batch.end.number, +1)
                self._refresh(cursor, rows.instances, rows.keys, rows.models, rows.accounts, rows.operators)
                cursor.execute(
                    named_query("move_cursor"),
                    {"contract_id": self.contract_id, "block_number": batch.end.number, "block_hash": batch.end.hash},
                )
        except psycopg.OperationalError:
            raise  # the connection: the caller decides whether to reconnect
        except psycopg.Error as error:
            raise DatabaseError(f"loading blocks up to {batch.end.number} failed: {one_line(error)}") from error
        return True

    def _rows(self, cursor: psycopg.Cursor, batch: Batch) -> Rows:
        wanted = references(batch)
        key = {"contract_id": self.contract_id}
        known = Known()
        lineages: dict[int, Lineage] = {}
        if wanted.keys:
            for found, key_sk, instance_sk, owner, mode, count in cursor.execute(
                named_query("known_keys"), {**key, "keys": list(wanted.keys)}
            ):
                lineage = lineages.setdefault(instance_sk, Lineage(instance_sk, mode, int(count)))
                known.keys[bytes(found)] = KnownKey(key_sk, lineage, bytes(owner) if owner is not None else None)
        if wanted.models:
            known.models = {
                bytes(m): sk
                for m, sk in cursor.execute(named_query("known_models"), {**key, "models": list(wanted.models)})
            }
        if wanted.addresses:
            known.accounts = {
                bytes(a)
                for (a,) in cursor.execute(named_query("known_accounts"), {**key, "addresses": list(wanted.addresses)})
            }
        counts = {
            "models": wanted.new_models - len(known.models),
            "instances": wanted.new_instances - len(known.keys),
            "keys": wanted.new_keys - len(known.keys),
        }
        models, instances, keys = _row(cursor.execute(named_query("allocate"), counts))
        allocation = Allocation(iter(models), iter(instances), iter(keys))
        return RowBuilder(self.contract_id, known, allocation, self.functions).build(batch)

    def _add_rollups(self, cursor: psycopg.Cursor, lo: int, hi: int, sign: int) -> None:
        span = {"contract_id": self.contract_id, "lo": lo, "hi": hi, "sign": sign}
        for name in ROLLUP_STATEMENTS:
            cursor.execute(named_query(name), span)

    def _refresh(
        self,
        cursor: psycopg.Cursor,
        instances: Iterable[int],
        keys: Iterable[int],
        models: Iterable[int],
        accounts: Iterable[bytes],
        operators: Iterable[tuple[bytes, bytes]],
    ) -> None:
        contract = {"contract_id": self.contract_id}
        if instances := sorted(instances):
            cursor.execute(named_query("refresh_instances"), {"instances": instances})
        if keys := sorted(keys):
            cursor.execute(named_query("refresh_keys"), {"keys": keys})
        if models := sorted(models):
            cursor.execute(named_query("refresh_models"), {"models": models})
        if accounts := sorted(accounts):
            cursor.execute(named_query("refresh_accounts"), {**contract, "addresses": accounts})
        if pairs := sorted(operators):
            owners, operators_ = [p[0] for p in pairs], [p[1] for p in pairs]
            cursor.execute(named_query("forget_operators"), {**contract, "owners": owners, "operators": operators_})
            cursor.execute(named_query("refresh_operators"), {**contract, "owners": owners, "operators": operators_})

    def stored_blocks(self, below: int, limit: int) -> list[tuple[int, bytes]]:
        """Block hashes this contract's indexing has seen, highest first, at or below `below`."""
        rows = self.connection.execute(
            named_query("stored_blocks_descending"), {"contract_id": self.contract_id, "below": below, "limit": limit}
        ).fetchall()
        self.connection.commit()
        return [(n, bytes(h)) for n, h in rows]

    def roll_back(self, fork: Cursor) -> None:
        """Deletes everything indexed above the fork point and moves the cursor back to it."""
        try:
            with self.connection.transaction(), self.connection.cursor() as cursor:
                cursor.execute(named_query("lock_cursor"), {"contract_id": self.contract_id})
                self._roll_back(cursor, fork.block_number)
                cursor.execute(
                    named_query("move_cursor"),
                    {"contract_id": self.contract_id, "block_number": fork.block_number, "block_hash": fork.block_hash},
                )
        except psycopg.OperationalError:
            raise
        except psycopg.Error as error:
            raise DatabaseError(f"rolling back to block {fork.block_number} failed: {one_line(error)}") from error

    def _roll_back(self, cursor: psycopg.Cursor, fork: int) -> None:
        above = {"contract_id": self.contract_id, "fork": fork}
        instances, keys, models, accounts, pairs, days, functions = _row(
            cursor.execute(named_query("touched_after"), above)
        )
        histogram_models, histogram_owners = _row(
            cursor.execute(named_query("histogram_owners_of"), {**above, "instances": instances})
        )
        self._add_rollups(cursor, fork, ABOVE_EVERY_BLOCK, -1)
        for statement in named_statements("delete_facts_after"):
            cursor.execute(statement, above)
        self._refresh(
            cursor,
            instances,
            keys,
            models,
            [bytes(a) for a in accounts],
            [(bytes(p[0]), bytes(p[1])) for p in pairs],
        )
        empty = {
            "contract_id": self.contract_id,
            "days": days,
            "functions": functions,
            "models": histogram_models,
            "owners": [bytes(o) for o in histogram_owners],
        }
        for statement in named_statements("delete_empty_rollups"):
            cursor.execute(statement, empty)

    def row_counts(self) -> dict[str, int]:
        """Indexed logs of this contract per event name."""
        rows = self.connection.execute(named_query("row_counts"), {"contract_id": self.contract_id}).fetchall()
        self.connection.commit()
        return {name: count for name, count in rows}
