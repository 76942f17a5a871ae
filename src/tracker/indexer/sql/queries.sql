-- Named statements of the indexer (tracker.indexer.store loads them by name). Each section starts
-- with a `-- name:` line; all run with search_path set to the indexer's schema.
--
-- Rollups are kept by two kinds of statements, each written once and used both when a batch is
-- loaded and when blocks are rolled back:
-- * `add_*` add what the facts of blocks (lo, hi] of one contract count, times %(sign)s: +1 after
--   the facts are loaded, -1 before they are deleted. Every one reads the batch's facts through
--   the (contract_id, block_number) indexes, groups them first, and looks each group's dimension
--   up by its primary key, so it costs the same into an empty schema as into a full one.
-- * `refresh_*` recompute the current values of the rows a batch touched (the latest end of an
--   instance, an account's latest client id, ...) from their facts, through their own indexes.

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

-- name: stored_blocks_descending
SELECT block_number, block_hash FROM block
WHERE contract_id = %(contract_id)s AND block_number <= %(below)s
ORDER BY block_number DESC
LIMIT %(limit)s

-- name: stored_after
SELECT EXISTS (SELECT 1 FROM block WHERE contract_id = %(contract_id)s AND block_number > %(after)s)

-- ------------------------------------------------------------------ resolving a batch's references

-- name: known_keys
SELECT k.key, k.key_sk, k.instance_sk, k.owner, i.mode, i.state_count
FROM instance_key k JOIN instance i USING (instance_sk)
WHERE k.contract_id = %(contract_id)s AND k.key = ANY(%(keys)s::bytea[])

-- name: known_models
SELECT model_id, model_sk FROM model WHERE contract_id = %(contract_id)s AND model_id = ANY(%(models)s::bytea[])

-- name: known_accounts
SELECT address FROM account WHERE contract_id = %(contract_id)s AND address = ANY(%(addresses)s::bytea[])

-- name: allocate
SELECT ARRAY(SELECT nextval('model_sk_seq') FROM generate_series(1, %(models)s)),
       ARRAY(SELECT nextval('instance_sk_seq') FROM generate_series(1, %(instances)s)),
       ARRAY(SELECT nextval('key_sk_seq')::integer FROM generate_series(1, %(keys)s))

-- ------------------------------------------------------------------ additive rollups

-- name: add_day_stats
WITH contribution(day, measure, value) AS (
    SELECT (block_time AT TIME ZONE 'UTC')::date, 'direct_states', count(*)::numeric
    FROM state WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
    GROUP BY 1
    UNION ALL
    SELECT e.day, v.measure, v.value
    FROM (
        SELECT (block_time AT TIME ZONE 'UTC')::date AS day, sum(added_states) AS anchored, count(*) AS ends,
               count(*) FILTER (WHERE final) AS finals
        FROM attempt_end WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
        GROUP BY 1
    ) e
    CROSS JOIN LATERAL (VALUES ('anchored_states', e.anchored), ('attempt_ends', e.ends), ('terminations', e.finals)) v(measure, value)
    UNION ALL
    SELECT (registered_at AT TIME ZONE 'UTC')::date, 'instances', count(*)
    FROM instance
    WHERE contract_id = %(contract_id)s AND first_block > %(lo)s AND first_block <= %(hi)s AND registered_block IS NOT NULL
    GROUP BY 1
    UNION ALL
    SELECT (block_time AT TIME ZONE 'UTC')::date, 'transitions', count(*)
    FROM transition WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
    GROUP BY 1
    UNION ALL
    SELECT a.day, v.measure, v.value
    FROM (
        SELECT (block_time AT TIME ZONE 'UTC')::date AS day, count(*) AS anchors, sum(leaf_count) AS leaves
        FROM anchor WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
        GROUP BY 1
    ) a
    CROSS JOIN LATERAL (VALUES ('anchors', a.anchors), ('anchored_leaves', a.leaves)) v(measure, value)
    UNION ALL
    SELECT t.day, v.measure, v.value
    FROM (
        SELECT (block_time AT TIME ZONE 'UTC')::date AS day, count(*) AS transactions, sum(gas_used) AS gas,
               sum(fee_wei) AS fee
        FROM transaction WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
        GROUP BY 1
    ) t
    CROSS JOIN LATERAL (VALUES ('transactions', t.transactions), ('gas_used', t.gas), ('fee_wei', t.fee)) v(measure, value)
),
per_day AS (
    SELECT day,
           coalesce(sum(value) FILTER (WHERE measure = 'direct_states'), 0) AS direct_states,
           coalesce(sum(value) FILTER (WHERE measure = 'anchored_states'), 0) AS anchored_states,
           coalesce(sum(value) FILTER (WHERE measure = 'instances'), 0) AS instances,
           coalesce(sum(value) FILTER (WHERE measure = 'attempt_ends'), 0) AS attempt_ends,
           coalesce(sum(value) FILTER (WHERE measure = 'terminations'), 0) AS terminations,
           coalesce(sum(value) FILTER (WHERE measure = 'transitions'), 0) AS transitions,
           coalesce(sum(value) FILTER (WHERE measure = 'anchors'), 0) AS anchors,
           coalesce(sum(value) FILTER (WHERE measure = 'anchored_leaves'), 0) AS anchored_leaves,
           coalesce(sum(value) FILTER (WHERE measure = 'transactions'), 0) AS transactions,
           coalesce(sum(value) FILTER (WHERE measure = 'gas_used'), 0) AS gas_used,
           coalesce(sum(value) FILTER (WHERE measure = 'fee_wei'), 0) AS fee_wei
    FROM contribution
    GROUP BY day
)
INSERT INTO day_stats AS d (contract_id, day, direct_states, anchored_states, instances, attempt_ends, terminations,
                            transitions, anchors, anchored_leaves, transactions, gas_used, fee_wei)
SELECT %(contract_id)s, day, %(sign)s * direct_states, %(sign)s * anchored_states, %(sign)s * instances,
       %(sign)s * attempt_ends, %(sign)s * terminations, %(sign)s * transitions, %(sign)s * anchors,
       %(sign)s * anchored_leaves, %(sign)s * transactions, %(sign)s * gas_used, %(sign)s * fee_wei
FROM per_day
ORDER BY day
ON CONFLICT (contract_id, day) DO UPDATE SET
    direct_states = d.direct_states + excluded.direct_states,
    anchored_states = d.anchored_states + excluded.anchored_states,
    instances = d.instances + excluded.instances,
    attempt_ends = d.attempt_ends + excluded.attempt_ends,
    terminations = d.terminations + excluded.terminations,
    transitions = d.transitions + excluded.transitions,
    anchors = d.anchors + excluded.anchors,
    anchored_leaves = d.anchored_leaves + excluded.anchored_leaves,
    transactions = d.transactions + excluded.transactions,
    gas_used = d.gas_used + excluded.gas_used,
    fee_wei = d.fee_wei + excluded.fee_wei

-- name: add_model_stats
WITH per_instance(instance_sk, measure, value) AS (
    SELECT instance_sk, 'direct_states', count(*)::numeric
    FROM state WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
    GROUP BY 1
    UNION ALL
    SELECT e.instance_sk, v.measure, v.value
    FROM (
        SELECT instance_sk, sum(added_states) AS anchored, count(*) FILTER (WHERE final) AS finals
        FROM attempt_end WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
        GROUP BY 1
    ) e
    CROSS JOIN LATERAL (VALUES ('anchored_states', e.anchored), ('final_instances', e.finals)) v(measure, value)
),
contribution(model_sk, measure, value) AS (
    SELECT (SELECT i.model_sk FROM instance i WHERE i.instance_sk = p.instance_sk), p.measure, p.value
    FROM per_instance p
    UNION ALL
    SELECT r.model_sk, v.measure, v.value
    FROM (
        SELECT model_sk, count(*) AS instances, count(*) FILTER (WHERE mode = 0) AS direct,
               count(*) FILTER (WHERE mode = 1) AS anchored
        FROM instance
        WHERE contract_id = %(contract_id)s AND first_block > %(lo)s AND first_block <= %(hi)s
          AND registered_block IS NOT NULL
        GROUP BY 1
    ) r
    CROSS JOIN LATERAL (VALUES ('instances', r.instances), ('direct_instances', r.direct),
                               ('anchored_instances', r.anchored)) v(measure, value)
),
per_model AS (
    SELECT model_sk,
           coalesce(sum(value) FILTER (WHERE measure = 'instances'), 0) AS instances,
           coalesce(sum(value) FILTER (WHERE measure = 'direct_instances'), 0) AS direct_instances,
           coalesce(sum(value) FILTER (WHERE measure = 'anchored_instances'), 0) AS anchored_instances,
           coalesce(sum(value) FILTER (WHERE measure = 'final_instances'), 0) AS final_instances,
           coalesce(sum(value) FILTER (WHERE measure = 'direct_states'), 0) AS direct_states,
           coalesce(sum(value) FILTER (WHERE measure = 'anchored_states'), 0) AS anchored_states
    FROM contribution
    WHERE model_sk IS NOT NULL
    GROUP BY model_sk
)
UPDATE model m SET
    instances = m.instances + %(sign)s * c.instances,
    direct_instances = m.direct_instances + %(sign)s * c.direct_instances,
    anchored_instances = m.anchored_instances + %(sign)s * c.anchored_instances,
    final_instances = m.final_instances + %(sign)s * c.final_instances,
    direct_states = m.direct_states + %(sign)s * c.direct_states,
    anchored_states = m.anchored_states + %(sign)s * c.anchored_states
FROM per_model c
WHERE m.model_sk = c.model_sk

-- name: add_account_stats
WITH per_key(key_sk, measure, value) AS (
    SELECT key_sk, 'direct_states', count(*)::numeric
    FROM state WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
    GROUP BY 1
    UNION ALL
    SELECT e.key_sk, v.measure, v.value
    FROM (
        SELECT key_sk, sum(added_states) AS anchored, count(*) AS ends, count(*) FILTER (WHERE final) AS finals
        FROM attempt_end WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
        GROUP BY 1
    ) e
    CROSS JOIN LATERAL (VALUES ('anchored_states', e.anchored), ('attempt_ends', e.ends),
                               ('terminations', e.finals)) v(measure, value)
    UNION ALL
    SELECT key_sk, 'transitions', count(*)
    FROM transition WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
    GROUP BY 1
),
contribution(address, measure, value) AS (
    SELECT (SELECT k.owner FROM instance_key k WHERE k.key_sk = p.key_sk), p.measure, p.value
    FROM per_key p
    UNION ALL
    SELECT t.from_address, v.measure, v.value
    FROM (
        SELECT from_address, count(*) AS transactions, sum(gas_used) AS gas, sum(fee_wei) AS fee, sum(states) AS states
        FROM transaction WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
        GROUP BY 1
    ) t
    CROSS JOIN LATERAL (VALUES ('transactions', t.transactions), ('gas_used', t.gas), ('fee_wei', t.fee),
                               ('states_sent', t.states)) v(measure, value)
    UNION ALL
    SELECT registrant, 'instances', count(*)
    FROM instance
    WHERE contract_id = %(contract_id)s AND first_block > %(lo)s AND first_block <= %(hi)s
      AND registered_block IS NOT NULL
    GROUP BY 1
    UNION ALL
    SELECT from_owner, 'transfers_out', count(*)
    FROM transfer WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
    GROUP BY 1
    UNION ALL
    SELECT to_owner, 'transfers_in', count(*)
    FROM transfer WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
    GROUP BY 1
    UNION ALL
    SELECT a.submitter, v.measure, v.value
    FROM (
        SELECT submitter, count(*) AS anchors, sum(leaf_count) AS leaves
        FROM anchor WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
        GROUP BY 1
    ) a
    CROSS JOIN LATERAL (VALUES ('anchors', a.anchors), ('anchored_leaves', a.leaves)) v(measure, value)
    UNION ALL
    SELECT publisher, 'models', count(*)
    FROM model_registration WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
    GROUP BY 1
    UNION ALL
    SELECT owner, 'operator_changes', count(*)
    FROM operator_change WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
    GROUP BY 1
),
per_account AS (
    SELECT address,
           coalesce(sum(value) FILTER (WHERE measure = 'transactions'), 0) AS transactions,
           coalesce(sum(value) FILTER (WHERE measure = 'gas_used'), 0) AS gas_used,
           coalesce(sum(value) FILTER (WHERE measure = 'fee_wei'), 0) AS fee_wei,
           coalesce(sum(value) FILTER (WHERE measure = 'states_sent'), 0) AS states_sent,
           coalesce(sum(value) FILTER (WHERE measure = 'models'), 0) AS models,
           coalesce(sum(value) FILTER (WHERE measure = 'instances'), 0) AS instances,
           coalesce(sum(value) FILTER (WHERE measure = 'direct_states'), 0) AS direct_states,
           coalesce(sum(value) FILTER (WHERE measure = 'anchored_states'), 0) AS anchored_states,
           coalesce(sum(value) FILTER (WHERE measure = 'attempt_ends'), 0) AS attempt_ends,
           coalesce(sum(value) FILTER (WHERE measure = 'terminations'), 0) AS terminations,
           coalesce(sum(value) FILTER (WHERE measure = 'transitions'), 0) AS transitions,
           coalesce(sum(value) FILTER (WHERE measure = 'transfers_out'), 0) AS transfers_out,
           coalesce(sum(value) FILTER (WHERE measure = 'transfers_in'), 0) AS transfers_in,
           coalesce(sum(value) FILTER (WHERE measure = 'anchors'), 0) AS anchors,
           coalesce(sum(value) FILTER (WHERE measure = 'anchored_leaves'), 0) AS anchored_leaves,
           coalesce(sum(value) FILTER (WHERE measure = 'operator_changes'), 0) AS operator_changes
    FROM contribution
    WHERE address IS NOT NULL
    GROUP BY address
)
UPDATE account a SET
    transactions = a.transactions + %(sign)s * c.transactions,
    gas_used = a.gas_used + %(sign)s * c.gas_used,
    fee_wei = a.fee_wei + %(sign)s * c.fee_wei,
    states_sent = a.states_sent + %(sign)s * c.states_sent,
    models = a.models + %(sign)s * c.models,
    instances = a.instances + %(sign)s * c.instances,
    direct_states = a.direct_states + %(sign)s * c.direct_states,
    anchored_states = a.anchored_states + %(sign)s * c.anchored_states,
    attempt_ends = a.attempt_ends + %(sign)s * c.attempt_ends,
    terminations = a.terminations + %(sign)s * c.terminations,
    transitions = a.transitions + %(sign)s * c.transitions,
    transfers_out = a.transfers_out + %(sign)s * c.transfers_out,
    transfers_in = a.transfers_in + %(sign)s * c.transfers_in,
    anchors = a.anchors + %(sign)s * c.anchors,
    anchored_leaves = a.anchored_leaves + %(sign)s * c.anchored_leaves,
    operator_changes = a.operator_changes + %(sign)s * c.operator_changes
FROM per_account c
WHERE a.contract_id = %(contract_id)s AND a.address = c.address

-- name: add_function_stats
INSERT INTO function_stats AS f (contract_id, function, transactions, gas_used, fee_wei, events, states)
SELECT %(contract_id)s, coalesce(function, ''), %(sign)s * count(*), %(sign)s * sum(gas_used),
       %(sign)s * sum(fee_wei), %(sign)s * sum(events), %(sign)s * sum(states)
FROM transaction WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
GROUP BY 2
ORDER BY 2
ON CONFLICT (contract_id, function) DO UPDATE SET
    transactions = f.transactions + excluded.transactions,
    gas_used = f.gas_used + excluded.gas_used,
    fee_wei = f.fee_wei + excluded.fee_wei,
    events = f.events + excluded.events,
    states = f.states + excluded.states

-- name: add_histograms
-- Samples: the time from each state to the one before it (the previous state is usually in the
-- same batch, else one primary-key probe), and for each final end the time since registration.
WITH batch_state AS MATERIALIZED (
    SELECT instance_sk, key_sk, seq, block_time,
           lag(seq) OVER w AS prev_seq, lag(block_time) OVER w AS prev_time
    FROM state WHERE contract_id = %(contract_id)s AND block_number > %(lo)s AND block_number <= %(hi)s
    WINDOW w AS (PARTITION BY instance_sk ORDER BY seq)
),
sample(instance_sk, key_sk, metric, seconds) AS (
    SELECT s.instance_sk, s.key_sk, 2, extract(epoch FROM s.block_time - CASE
               WHEN s.prev_seq = s.seq - 1 THEN s.prev_time
               ELSE (SELECT p.block_time FROM state p WHERE p.instance_sk = s.instance_sk AND p.seq = s.seq - 1)
           END)
    FROM batch_state s
    WHERE s.seq > 0
    UNION ALL
    SELECT e.instance_sk, e.key_sk, 1,
           extract(epoch FROM e.block_time - (SELECT i.registered_at FROM instance i WHERE i.instance_sk = e.instance_sk))
    FROM attempt_end e
    WHERE e.contract_id = %(contract_id)s AND e.block_number > %(lo)s AND e.block_number <= %(hi)s AND e.final
),
bucketed AS MATERIALIZED (
    SELECT instance_sk, key_sk, metric, duration_bucket(seconds) AS bucket FROM sample WHERE seconds IS NOT NULL
),
by_model AS (
    INSERT INTO model_histogram AS h (contract_id, model_sk, metric, bucket, count)
    SELECT %(contract_id)s, m.model_sk, b.metric, b.bucket, %(sign)s * sum(b.samples)
    FROM (SELECT instance_sk, metric, bucket, count(*) AS samples FROM bucketed GROUP BY 1, 2, 3) b
    CROSS JOIN LATERAL (SELECT i.model_sk FROM instance i WHERE i.instance_sk = b.instance_sk) m
    WHERE m.model_sk IS NOT NULL
    GROUP BY m.model_sk, b.metric, b.bucket
    ORDER BY 2, 3, 4
    ON CONFLICT (model_sk, metric, bucket) DO UPDATE SET count = h.count + excluded.count
)
INSERT INTO owner_histogram AS h (contract_id, owner, metric, bucket, count)
SELECT %(contract_id)s, k.owner, b.metric, b.bucket, %(sign)s * sum(b.samples)
FROM (SELECT key_sk, metric, bucket, count(*) AS samples FROM bucketed GROUP BY 1, 2, 3) b
CROSS JOIN LATERAL (SELECT k.owner FROM instance_key k WHERE k.key_sk = b.key_sk) k
WHERE k.owner IS NOT NULL
GROUP BY k.owner, b.metric, b.bucket
ORDER BY 2, 3, 4
ON CONFLICT (contract_id, owner, metric, bucket) DO UPDATE SET count = h.count + excluded.count

-- ------------------------------------------------------------------ current values of touched rows

-- name: refresh_instances
UPDATE instance i SET
    state_count = greatest(coalesce(last_state.seq + 1, 0), coalesce(ends.max_count, 0)),
    first_state_at = coalesce(first_state.block_time, ends.first_count_at),
    last_state_at = coalesce(last_state.block_time, ends.last_count_at),
    attempts = coalesce(ends.max_attempt + 1, 0),
    final = coalesce(ends.final, false),
    terminated_at = ends.final_at,
    end_document = last_end.end_document,
    ended_at = last_end.block_time,
    head = last_end.head,
    transitions = transitions.count,
    owner = live_key.owner,
    current_key = live_key.key,
    keys = key_count.count
FROM unnest(%(instances)s::bigint[]) AS touched(instance_sk)
LEFT JOIN LATERAL (
    SELECT seq, block_time FROM state s WHERE s.instance_sk = touched.instance_sk ORDER BY seq DESC LIMIT 1
) last_state ON true
LEFT JOIN LATERAL (
    SELECT block_time FROM state s WHERE s.instance_sk = touched.instance_sk ORDER BY seq LIMIT 1
) first_state ON true
LEFT JOIN LATERAL (
    SELECT max(attempt) AS max_attempt, max(state_count) AS max_count, bool_or(final) AS final,
           min(block_time) FILTER (WHERE final) AS final_at,
           min(block_time) FILTER (WHERE added_states > 0) AS first_count_at,
           max(block_time) FILTER (WHERE added_states > 0) AS last_count_at
    FROM attempt_end e WHERE e.instance_sk = touched.instance_sk
) ends ON true
LEFT JOIN LATERAL (
    SELECT end_document, block_time, head FROM attempt_end e WHERE e.instance_sk = touched.instance_sk
    ORDER BY block_number DESC, log_index DESC LIMIT 1
) last_end ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS count FROM transition t WHERE t.instance_sk = touched.instance_sk
) transitions ON true
LEFT JOIN LATERAL (
    SELECT owner, key FROM instance_key k WHERE k.instance_sk = touched.instance_sk ORDER BY key_sk DESC LIMIT 1
) live_key ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS count FROM instance_key k WHERE k.instance_sk = touched.instance_sk
) key_count ON true
WHERE i.instance_sk = touched.instance_sk

-- name: refresh_keys
UPDATE instance_key k SET
    moved_block = (
        SELECT max(t.block_number) FROM transfer t WHERE t.from_key_sk = k.key_sk
    ),
    pending_owner = (
        SELECT nullif(p.to_owner, '\x0000000000000000000000000000000000000000'::bytea)
        FROM transfer_proposal p
        WHERE p.key_sk = k.key_sk
          AND NOT EXISTS (
              SELECT 1 FROM transfer t
              WHERE t.from_key_sk = k.key_sk AND (t.block_number, t.log_index) > (p.block_number, p.log_index)
          )
        ORDER BY p.block_number DESC, p.log_index DESC
        LIMIT 1
    )
WHERE k.key_sk = ANY(%(keys)s::integer[])

-- name: refresh_models
UPDATE model m SET
    publishers = (SELECT count(*) FROM model_registration r WHERE r.model_sk = m.model_sk),
    first_registered_at = (SELECT min(r.block_time) FROM model_registration r WHERE r.model_sk = m.model_sk)
WHERE m.model_sk = ANY(%(models)s::bigint[])

-- name: refresh_accounts
UPDATE account a SET
    client_id = latest_id.client_id,
    client_id_text = latest_id.client_id_text,
    client_ids = (
        SELECT count(*) FROM client_id_registration r WHERE r.contract_id = a.contract_id AND r.account = a.address
    ),
    certificate_fingerprint = latest_certificate.fingerprint,
    certificate_registered_at = latest_certificate.block_time,
    certificates = (
        SELECT count(*) FROM certificate_registration r WHERE r.contract_id = a.contract_id AND r.account = a.address
    )
FROM unnest(%(addresses)s::bytea[]) AS touched(address)
LEFT JOIN LATERAL (
    SELECT client_id, client_id_text FROM client_id_registration r
    WHERE r.contract_id = %(contract_id)s AND r.account = touched.address
    ORDER BY block_number DESC, log_index DESC LIMIT 1
) latest_id ON true
LEFT JOIN LATERAL (
    SELECT fingerprint, block_time FROM certificate_registration r
    WHERE r.contract_id = %(contract_id)s AND r.account = touched.address
    ORDER BY block_number DESC, log_index DESC LIMIT 1
) latest_certificate ON true
WHERE a.contract_id = %(contract_id)s AND a.address = touched.address

-- name: forget_operators
DELETE FROM operator o
USING unnest(%(owners)s::bytea[], %(operators)s::bytea[]) AS touched(owner, operator)
WHERE o.contract_id = %(contract_id)s AND o.owner = touched.owner AND o.operator = touched.operator

-- name: refresh_operators
INSERT INTO operator (contract_id, owner, operator, approved, changed_block, changed_at, changes)
SELECT %(contract_id)s, touched.owner, touched.operator, latest.approved, latest.block_number, latest.block_time,
       (SELECT count(*) FROM operator_change c
        WHERE c.contract_id = %(contract_id)s AND c.owner = touched.owner AND c.operator = touched.operator)
FROM unnest(%(owners)s::bytea[], %(operators)s::bytea[]) AS touched(owner, operator)
CROSS JOIN LATERAL (
    SELECT approved, block_number, block_time FROM operator_change c
    WHERE c.contract_id = %(contract_id)s AND c.owner = touched.owner AND c.operator = touched.operator
    ORDER BY block_number DESC, log_index DESC LIMIT 1
) latest

-- ------------------------------------------------------------------ rolling back

-- name: touched_after
-- What the facts above the fork point touch, gathered before they are deleted.
SELECT
    ARRAY(
        SELECT DISTINCT instance_sk FROM (
            SELECT instance_sk FROM state WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
            UNION ALL SELECT instance_sk FROM attempt_end WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
            UNION ALL SELECT instance_sk FROM transition WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
            UNION ALL SELECT instance_sk FROM transfer WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
            UNION ALL SELECT instance_sk FROM transfer_proposal WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
        ) facts
    ) AS instances,
    ARRAY(
        SELECT DISTINCT key_sk FROM (
            SELECT key_sk FROM transfer_proposal WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
            UNION ALL SELECT from_key_sk FROM transfer WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
        ) facts
    ) AS keys,
    ARRAY(
        SELECT DISTINCT model_sk FROM model_registration WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
    ) AS models,
    ARRAY(
        SELECT DISTINCT account FROM (
            SELECT account FROM client_id_registration WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
            UNION ALL
            SELECT account FROM certificate_registration WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
        ) facts
    ) AS accounts,
    ARRAY(
        SELECT DISTINCT ARRAY[owner, operator] FROM operator_change
        WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
    ) AS operator_pairs,
    ARRAY(
        SELECT DISTINCT (block_time AT TIME ZONE 'UTC')::date FROM block
        WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
    ) AS days,
    ARRAY(
        SELECT DISTINCT coalesce(function, '') FROM transaction
        WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
    ) AS functions

-- name: histogram_owners_of
-- The histogram rows the facts above the fork point count in: (models, owners).
SELECT
    ARRAY(
        SELECT DISTINCT i.model_sk FROM instance i WHERE i.instance_sk = ANY(%(instances)s::bigint[]) AND i.model_sk IS NOT NULL
    ),
    ARRAY(
        -- = ANY(ARRAY(...)): probes the primary key per key (IN (...) hash-joined a scan of every key)
        SELECT DISTINCT k.owner FROM instance_key k
        WHERE k.key_sk = ANY(ARRAY(
            SELECT key_sk FROM state WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
            UNION SELECT key_sk FROM attempt_end WHERE contract_id = %(contract_id)s AND block_number > %(fork)s
        )) AND k.owner IS NOT NULL
    )

-- name: delete_facts_after
DELETE FROM state WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM model_registration WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM attempt_end WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM transition WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM transfer_proposal WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM transfer WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM operator_change WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM client_id_registration WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM certificate_registration WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM anchor WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM transaction WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM block WHERE contract_id = %(contract_id)s AND block_number > %(fork)s;
DELETE FROM instance_key WHERE contract_id = %(contract_id)s AND first_block > %(fork)s;
DELETE FROM instance WHERE contract_id = %(contract_id)s AND first_block > %(fork)s;
DELETE FROM model WHERE contract_id = %(contract_id)s AND first_block > %(fork)s;
DELETE FROM account WHERE contract_id = %(contract_id)s AND first_block > %(fork)s

-- name: delete_empty_rollups
DELETE FROM day_stats
WHERE contract_id = %(contract_id)s AND day = ANY(%(days)s::date[])
  AND direct_states = 0 AND anchored_states = 0 AND instances = 0 AND attempt_ends = 0 AND terminations = 0
  AND transitions = 0 AND anchors = 0 AND anchored_leaves = 0 AND transactions = 0;
DELETE FROM function_stats WHERE contract_id = %(contract_id)s AND function = ANY(%(functions)s::text[]) AND transactions = 0;
DELETE FROM model_histogram WHERE model_sk = ANY(%(models)s::bigint[]) AND count = 0;
DELETE FROM model_histogram h WHERE h.model_sk = ANY(%(models)s::bigint[]) AND NOT EXISTS (SELECT 1 FROM model m WHERE m.model_sk = h.model_sk);
DELETE FROM owner_histogram WHERE contract_id = %(contract_id)s AND owner = ANY(%(owners)s::bytea[]) AND count = 0

-- ------------------------------------------------------------------ reading

-- name: row_counts
SELECT event, count(*) FROM event_log WHERE contract_id = %(contract_id)s GROUP BY event

-- name: find_instances
-- The instances an id names: an instance key (the instance under whichever key it lived) or an
-- execution id (every owner's instance of that execution).
SELECT DISTINCT instance_sk FROM (
    SELECT instance_sk FROM instance_key WHERE contract_id = %(contract_id)s AND key = %(id)s
    UNION ALL
    SELECT instance_sk FROM instance WHERE contract_id = %(contract_id)s AND execution = %(id)s
) found

-- name: report_protocol
SELECT key_hex AS instance_key, execution_hex AS execution_id, entry, seq, state_id_hex AS state_id,
       end_document_hex AS end_document, head_hex AS head, block_number, block_time, timestamp,
       transaction_hash_hex AS transaction_hash, client_address_hex AS client_address
FROM instance_protocol
WHERE instance_sk = ANY(%(instances)s::bigint[])
ORDER BY instance_sk, block_number, log_index

-- name: report_models
SELECT model_id_hex AS model_id, publishers, first_registered_at, instances, direct_instances, anchored_instances,
       final_instances, open_instances, states, direct_states, anchored_states,
       duration_p50_s, duration_p90_s, duration_p99_s, gap_p50_s, gap_p90_s, gap_p99_s
FROM model_summary
WHERE contract_id = %(contract_id)s
ORDER BY instances DESC, model_id

-- name: report_clients
SELECT address_hex AS client_address, client_id, transactions, gas_used, fee_wei, states_sent, gas_per_state,
       models, instances, states, attempt_ends, terminations, transitions, anchors, anchored_leaves,
       operators, duration_p50_s, duration_p90_s, gap_p50_s, gap_p90_s
FROM client_activity
WHERE contract_id = %(contract_id)s
ORDER BY gas_used DESC, address

-- name: report_days
SELECT day, states, direct_states, anchored_states, instances, terminations, anchors, anchored_leaves,
       transactions, gas_used
FROM states_per_day
WHERE contract_id = %(contract_id)s
ORDER BY day

-- name: report_functions
SELECT function, transactions, gas_used, states, gas_per_state, events
FROM function_calls
WHERE contract_id = %(contract_id)s
ORDER BY gas_used DESC, function

-- name: report_children
SELECT parent_instance_id, parent_execution_id, parent_state_name, parent_event_id, map_run_arn, children,
       final_children, child_states
FROM children_per_visit
WHERE contract_id = %(contract_id)s
ORDER BY parent_instance_id, parent_event_id

-- name: report_anchors
SELECT submitter_hex AS submitter, anchors, anchored_leaves, first_anchored_at, last_anchored_at
FROM anchors_by_submitter
WHERE contract_id = %(contract_id)s
ORDER BY anchors DESC, submitter
