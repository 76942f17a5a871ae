"""Every table of the indexer's schema in natural terms: surrogate keys replaced by what they stand
for (an instance by its first key, a key by its bytes, a model by its id), rows sorted; and how
two such snapshots differ.

Two indexes of the same chain are equal in these terms however their surrogate keys were drawn
(a rollback and a reload draw new ones), which is what the rerun, reorg, ground-truth and
hosted-provider tests compare (and bench/provider.py).
"""

from __future__ import annotations

from typing import Any

import psycopg

from tracker.indexer.store import use_schema

# Tables that also record where the indexer's batches ended (`block` keeps each batch's last
# block, for the reorg check), so they differ between runs whose providers allowed other ranges.
BATCH_BOUNDARY_TABLES = frozenset({"block"})

# The natural id of an instance: the first key it lived under.
INSTANCE_ID = "(SELECT k.key FROM instance_key k WHERE k.instance_sk = {0} ORDER BY k.key_sk LIMIT 1)"
KEY = "(SELECT k.key FROM instance_key k WHERE k.key_sk = {0})"
MODEL = "(SELECT m.model_id FROM model m WHERE m.model_sk = {0})"
ADDRESS = "(SELECT c.address FROM contract c WHERE c.contract_id = {0})"

FACT_WHERE = f"{ADDRESS.format('t.contract_id')}, t.block_number, t.log_index, t.block_time"

NATURAL: dict[str, str] = {
    "block": f"SELECT {ADDRESS.format('t.contract_id')}, block_number, block_hash, parent_hash, block_time FROM block t",
    "transaction": f"""
        SELECT {ADDRESS.format("t.contract_id")}, block_number, first_log_index, last_log_index, block_time, tx_hash,
               from_address, to_address, gas_used, effective_gas_price, fee_wei, function, inner_functions, events, states
        FROM transaction t""",
    "account": f"""
        SELECT {ADDRESS.format("t.contract_id")}, address, first_block, transactions, gas_used, fee_wei, states_sent,
               models, instances, direct_states, anchored_states, attempt_ends, terminations, transitions,
               transfers_out, transfers_in, anchors, anchored_leaves, operator_changes, client_id, client_id_text,
               client_ids, certificate_fingerprint, certificate_registered_at, certificates
        FROM account t""",
    "model": f"""
        SELECT {ADDRESS.format("t.contract_id")}, model_id, first_block, publishers, first_registered_at, instances,
               direct_instances, anchored_instances, final_instances, direct_states, anchored_states
        FROM model t""",
    "instance": f"""
        SELECT {ADDRESS.format("t.contract_id")}, {INSTANCE_ID.format("t.instance_sk")}, execution, first_block,
               registered_block, registered_log_index, registered_at, registrant, {MODEL.format("t.model_sk")},
               instance_document, mode, owner, current_key, keys, state_count, first_state_at, last_state_at,
               attempts, final, end_document, ended_at, terminated_at, head, transitions
        FROM instance t""",
    "instance_key": f"""
        SELECT {ADDRESS.format("t.contract_id")}, key, {INSTANCE_ID.format("t.instance_sk")}, owner, first_block,
               seq_from, moved_block, pending_owner
        FROM instance_key t""",
    "state": f"""
        SELECT {FACT_WHERE}, {INSTANCE_ID.format("t.instance_sk")}, seq, {KEY.format("t.key_sk")}, state_id
        FROM state t""",
    "model_registration": f"SELECT {FACT_WHERE}, publisher, {MODEL.format('t.model_sk')} FROM model_registration t",
    "attempt_end": f"""
        SELECT {FACT_WHERE}, {INSTANCE_ID.format("t.instance_sk")}, {KEY.format("t.key_sk")}, final, attempt,
               end_document, state_count, head, added_states
        FROM attempt_end t""",
    "transition": f"""
        SELECT {FACT_WHERE}, {INSTANCE_ID.format("t.instance_sk")}, {KEY.format("t.key_sk")}, pre_state, post_state,
               pre_seq, post_seq
        FROM transition t""",
    "transfer_proposal": f"""
        SELECT {FACT_WHERE}, {INSTANCE_ID.format("t.instance_sk")}, {KEY.format("t.key_sk")}, from_owner, to_owner
        FROM transfer_proposal t""",
    "transfer": f"""
        SELECT {FACT_WHERE}, {INSTANCE_ID.format("t.instance_sk")}, {KEY.format("t.from_key_sk")},
               {KEY.format("t.to_key_sk")}, execution, from_owner, to_owner
        FROM transfer t""",
    "operator_change": f"SELECT {FACT_WHERE}, owner, operator, approved FROM operator_change t",
    "operator": f"""
        SELECT {ADDRESS.format("t.contract_id")}, owner, operator, approved, changed_block, changed_at, changes
        FROM operator t""",
    "client_id_registration": f"SELECT {FACT_WHERE}, account, client_id, client_id_text FROM client_id_registration t",
    "certificate_registration": f"""
        SELECT {FACT_WHERE}, account, fingerprint, signature FROM certificate_registration t""",
    "anchor": f"SELECT {FACT_WHERE}, submitter, root, leaf_count FROM anchor t",
    "day_stats": f"""
        SELECT {ADDRESS.format("t.contract_id")}, day, direct_states, anchored_states, instances, attempt_ends,
               terminations, transitions, anchors, anchored_leaves, transactions, gas_used, fee_wei
        FROM day_stats t""",
    "function_stats": f"""
        SELECT {ADDRESS.format("t.contract_id")}, function, transactions, gas_used, fee_wei, events, states
        FROM function_stats t""",
    "model_histogram": f"""
        SELECT {ADDRESS.format("t.contract_id")}, {MODEL.format("t.model_sk")}, metric, bucket, count
        FROM model_histogram t""",
    "owner_histogram": f"SELECT {ADDRESS.format('t.contract_id')}, owner, metric, bucket, count FROM owner_histogram t",
}


def _plain(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def snapshot(db: psycopg.Connection, tables: tuple[str, ...] = tuple(NATURAL)) -> dict[str, list[tuple[Any, ...]]]:
    """The named tables in natural terms, each as a sorted list of rows."""
    found = {}
    for table in tables:
        rows = [tuple(_plain(v) for v in row) for row in db.execute(NATURAL[table]).fetchall()]  # type: ignore[arg-type]
        found[table] = sorted(rows, key=repr)
    return found


def schema_snapshot(database_url: str, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """`snapshot` of every table of `schema`, over a connection of its own."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        use_schema(connection, schema)
        return snapshot(connection)


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
