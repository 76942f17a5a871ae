"""The indexer's report: the analysis views read back for one chain and contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from tracker.errors import ConfigurationError
from tracker.indexer.store import named_query, use_schema


@dataclass(frozen=True)
class Report:
    """The analysis views for one contract, as plain rows (column names first)."""

    models: list[dict[str, Any]]
    clients: list[dict[str, Any]]
    days: list[dict[str, Any]]
    functions: list[dict[str, Any]] = field(default_factory=list)
    anchors: list[dict[str, Any]] = field(default_factory=list)
    protocol: list[dict[str, Any]] = field(default_factory=list)
    # which execution started which: empty until `index --documents` loaded the links
    children: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "models": self.models,
            "clients": self.clients,
            "days": self.days,
            "functions": self.functions,
            "anchors": self.anchors,
            "protocol": self.protocol,
            "children": self.children,
        }


def _rows(connection: psycopg.Connection, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with connection.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute(named_query(name), params).fetchall()


def read_report(
    connection: psycopg.Connection, schema: str, chain_id: int, address: bytes, instance_id: str | None = None
) -> Report:
    """Reads the views: models, clients, days, functions, anchors, and with `instance_id` (an
    instance key or an execution id, 64 hex) the protocol of the instances it names."""
    use_schema(connection, schema)
    found = connection.execute(named_query("contract_id"), {"chain_id": chain_id, "address": address}).fetchone()
    if found is None:
        connection.commit()
        raise ConfigurationError(f"nothing indexed for 0x{address.hex()} on chain id {chain_id} in schema {schema}")
    key = {"contract_id": found[0]}
    protocol: list[dict[str, Any]] = []
    if instance_id:
        instances = [
            row[0]
            for row in connection.execute(named_query("find_instances"), {**key, "id": bytes.fromhex(instance_id)})
        ]
        protocol = _rows(connection, "report_protocol", {"instances": instances})
    report = Report(
        models=_rows(connection, "report_models", key),
        clients=_rows(connection, "report_clients", key),
        days=_rows(connection, "report_days", key),
        functions=_rows(connection, "report_functions", key),
        anchors=_rows(connection, "report_anchors", key),
        protocol=protocol,
        children=_rows(connection, "report_children", key),
    )
    connection.commit()
    return report
