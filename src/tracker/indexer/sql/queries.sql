-- Named statements of the indexer (tracker.indexer_db loads them by name). Each section starts
-- with a `-- name:` line; all run with search_path set to the indexer's schema.

-- name: create_migration_table
CREATE TABLE IF NOT EXISTS schema_migration (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied_migrations
SELECT version FROM schema_migration ORDER BY version

-- name: record_migration
INSERT INTO schema_migration (version, name) VALUES (%(version)s, %(name)s)

-- name: ensure_contract
INSERT INTO contract (chain_id, address) VALUES (%(chain_id)s, %(address)s)
ON CONFLICT (chain_id, address) DO NOTHING

-- name: contract_id
SELECT contract_id FROM contract WHERE chain_id = %(chain_id)s AND address = %(address)s

-- name: ensure_cursor
INSERT INTO cursor (contract_id, block_number, block_hash) VALUES (%(contract_id)s, %(block_number)s, %(block_hash)s)
ON CONFLICT (contract_id) DO NOTHING

-- name: lock_cursor
SELECT block_number, block_hash FROM cursor WHERE contract_id = %(contract_id)s FOR UPDATE

-- name: read_cursor
SELECT block_number, block_hash FROM cursor WHERE contract_id = %(contract_id)s

-- name: move_cursor
UPDATE cursor SET block_number = %(block_number)s, block_hash = %(block_hash)s, updated_at = now()
WHERE contract_id = %(contract_id)s

-- name: create_staging
CREATE TEMP TABLE IF NOT EXISTS stage_block (LIKE block) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_transaction (LIKE transaction) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_indexed_block (LIKE indexed_block) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_model (LIKE model) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_instance (LIKE instance) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_state (LIKE state) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_client (LIKE client) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_model_registration (LIKE model_registration) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_instance_registration (LIKE instance_registration) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_state_registration (LIKE state_registration) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_transition_registration (LIKE transition_registration) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_termination (LIKE termination) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_anchor (LIKE anchor) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_certificate_registration (LIKE certificate_registration) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_instance_transfer (LIKE instance_transfer) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_operator_change (LIKE operator_change) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_client_id_registration (LIKE client_id_registration) ON COMMIT DELETE ROWS

-- name: upsert_indexed_blocks
INSERT INTO indexed_block SELECT * FROM stage_indexed_block ORDER BY block_number
ON CONFLICT (contract_id, block_number) DO UPDATE SET block_hash = excluded.block_hash

-- name: latest_client_ids
UPDATE client c
SET client_id = (
    SELECT r.client_id FROM client_id_registration r
    WHERE r.account = c.address
    ORDER BY r.block_number DESC, r.log_index DESC
    LIMIT 1
)
WHERE c.address IN (SELECT account FROM stage_client_id_registration)
   OR (c.client_id IS NOT NULL AND %(after_rollback)s)

-- name: stored_blocks_descending
SELECT block_number, block_hash FROM indexed_block
WHERE contract_id = %(contract_id)s AND block_number <= %(below)s
ORDER BY block_number DESC
LIMIT %(limit)s

-- name: forget_indexed_blocks
DELETE FROM indexed_block WHERE contract_id = %(contract_id)s AND block_number > %(fork_number)s

-- name: delete_orphan_blocks
DELETE FROM block b
WHERE b.chain_id = %(chain_id)s AND b.block_number > %(fork_number)s
  AND NOT EXISTS (
      SELECT 1 FROM fact_log f
      WHERE f.contract_id IN (SELECT c.contract_id FROM contract c WHERE c.chain_id = b.chain_id)
        AND f.block_number = b.block_number AND f.block_hash = b.block_hash
  )

-- name: row_counts
SELECT event, count(*) FROM fact_log WHERE contract_id = %(contract_id)s GROUP BY event

-- name: report_protocol
SELECT instance_id, seq, state_id, block_number, block_time, timestamp, transaction_hash, client_address
FROM instance_protocol
WHERE chain_id = %(chain_id)s AND contract = %(contract)s AND instance_id = %(instance_id)s
ORDER BY seq, block_number, log_index

-- name: report_models
SELECT model_id, instances, terminated_instances, states, min_duration, avg_duration, max_duration
FROM model_instance_stats
WHERE chain_id = %(chain_id)s AND contract = %(contract)s
ORDER BY instances DESC, model_id

-- name: report_clients
SELECT client_address, client_id, transactions, models, instances, states, gas_used, fee_wei
FROM client_activity
WHERE chain_id = %(chain_id)s AND contract = %(contract)s
ORDER BY gas_used DESC, client_address

-- name: report_days
SELECT day, states, instances
FROM states_per_day
WHERE chain_id = %(chain_id)s AND contract = %(contract)s
ORDER BY day

-- name: foreign_keys
SELECT src.relname AS source_table,
       dst.relname AS referenced_table,
       array_agg(sa.attname::text ORDER BY k.ord) AS source_columns,
       array_agg(da.attname::text ORDER BY k.ord) AS referenced_columns
FROM pg_constraint c
JOIN pg_class src ON src.oid = c.conrelid
JOIN pg_class dst ON dst.oid = c.confrelid
JOIN pg_namespace n ON n.oid = src.relnamespace
CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(source_attnum, referenced_attnum, ord)
JOIN pg_attribute sa ON sa.attrelid = c.conrelid AND sa.attnum = k.source_attnum
JOIN pg_attribute da ON da.attrelid = c.confrelid AND da.attnum = k.referenced_attnum
WHERE c.contype = 'f' AND n.nspname = %(schema)s
GROUP BY c.oid, src.relname, dst.relname
ORDER BY src.relname, dst.relname
