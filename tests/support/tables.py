"""Every table of an indexer schema as sorted rows, to compare two runs table by table."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

# Columns that say when a row was written, not what the chain holds.
WALL_CLOCK_COLUMNS = {"updated_at", "applied_at"}
# Tables that also record where the indexer's batches ended (indexed_block: the blocks a later
# reorg check compares), so they differ between runs whose providers allowed different ranges.
BATCH_BOUNDARY_TABLES = {"indexed_block"}


def snapshot(database_url: str, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """{table: sorted rows} for every base table of `schema`, without wall-clock columns."""
    with psycopg.connect(database_url) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'"
                " ORDER BY table_name",
                [schema],
            )
        ]
        result: dict[str, list[tuple[Any, ...]]] = {}
        for table in tables:
            columns = [
                row[0]
                for row in connection.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
                    " ORDER BY ordinal_position",
                    [schema, table],
                )
                if row[0] not in WALL_CLOCK_COLUMNS
            ]
            query = sql.SQL("SELECT {} FROM {}.{}").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(schema), sql.Identifier(table)
            )
            rows = [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in connection.execute(query)
            ]
            result[table] = sorted(rows, key=repr)
    return result


def differences(
    expected: dict[str, list[tuple]], actual: dict[str, list[tuple]], ignore: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """What differs between two snapshots, table by table (empty when they are equal)."""
    found = []
    for table in sorted((set(expected) | set(actual)) - set(ignore)):
        want, got = expected.get(table), actual.get(table)
        if want != got:
            want_n = len(want) if want is not None else "no table"
            got_n = len(got) if got is not None else "no table"
            found.append(f"{table}: {want_n} rows expected, {got_n} rows got, or rows differ")
    return found
