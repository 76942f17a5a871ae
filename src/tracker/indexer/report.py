"""The indexer's report: the analysis views read back for one chain and contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from tracker.indexer.store import named_query, use_schema


@dataclass(frozen=True)
class Report:
    """The analysis views for one contract, as plain rows (column names first)."""

    models: list[dict[str, Any]]
    clients: list[dict[str, Any]]
    days: list[dict[str, Any]]
    protocol: list[dict[str, Any]]


def _rows(connection: psycopg.Connection, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with connection.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute(named_query(name), params).fetchall()


def read_report(
    connection: psycopg.Connection, schema: str, chain_id: int, address: bytes, instance_id: str | None = None
) -> Report:
    """Reads the views: models, clients, states per day, and one instance's protocol if asked."""
    use_schema(connection, schema)
    key = {"chain_id": chain_id, "contract": address.hex()}
    protocol = _rows(connection, "report_protocol", {**key, "instance_id": instance_id}) if instance_id else []
    report = Report(
        models=_rows(connection, "report_models", key),
        clients=_rows(connection, "report_clients", key),
        days=_rows(connection, "report_days", key),
        protocol=protocol,
    )
    connection.commit()
    return report
