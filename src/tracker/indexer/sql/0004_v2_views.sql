-- The analyst's views of the v2 schema. Ids, hashes and addresses keep their bytea columns (filter on
-- those: they are what the indexes hold, e.g. `WHERE execution = '\x…'::bytea`), each with a `*_hex`
-- rendering beside it (lowercase, no 0x, as in the project's documents). Every view carries
-- chain_id, contract_id and the contract's address. Percentiles come from the histograms:
-- nearest-rank, exact below 64 s, the lower bound of a 5%-wide bucket above.

CREATE VIEW contract_view AS
SELECT contract_id, chain_id, address AS contract, encode(address, 'hex') AS contract_hex FROM contract;

-- Every indexed log, whatever its event.
CREATE VIEW event_log AS
SELECT contract_id, 'ModelRegistered' AS event, block_number, log_index, block_time FROM model_registration
UNION ALL SELECT contract_id, 'InstanceRegistered', registered_block, registered_log_index, registered_at
          FROM instance WHERE registered_block IS NOT NULL
UNION ALL SELECT contract_id, 'StateRegistered', block_number, log_index, block_time FROM state
UNION ALL SELECT contract_id, CASE WHEN final THEN 'InstanceTerminated' ELSE 'AttemptEnded' END, block_number,
                 log_index, block_time FROM attempt_end
UNION ALL SELECT contract_id, 'TransitionRegistered', block_number, log_index, block_time FROM transition
UNION ALL SELECT contract_id, 'TransferProposed', block_number, log_index, block_time FROM transfer_proposal
UNION ALL SELECT contract_id, 'InstanceTransferred', block_number, log_index, block_time FROM transfer
UNION ALL SELECT contract_id, 'OperatorSet', block_number, log_index, block_time FROM operator_change
UNION ALL SELECT contract_id, 'ClientIdRegistered', block_number, log_index, block_time FROM client_id_registration
UNION ALL SELECT contract_id, 'CertificateRegistered', block_number, log_index, block_time FROM certificate_registration
UNION ALL SELECT contract_id, 'StatesAnchored', block_number, log_index, block_time FROM anchor;

-- Percentiles per model and metric (1: duration from registration to the final end; 2: time
-- between consecutive states), in seconds.
CREATE VIEW model_percentiles AS
WITH running AS (
    SELECT contract_id, model_sk, metric, bucket,
           sum(count) OVER (PARTITION BY model_sk, metric ORDER BY bucket) AS below,
           sum(count) OVER (PARTITION BY model_sk, metric) AS samples
    FROM model_histogram WHERE count > 0
)
SELECT contract_id, model_sk, metric, samples,
       bucket_floor(min(bucket) FILTER (WHERE below >= ceil(0.50 * samples))) AS p50,
       bucket_floor(min(bucket) FILTER (WHERE below >= ceil(0.90 * samples))) AS p90,
       bucket_floor(min(bucket) FILTER (WHERE below >= ceil(0.99 * samples))) AS p99
FROM running
GROUP BY contract_id, model_sk, metric, samples;

CREATE VIEW owner_percentiles AS
WITH running AS (
    SELECT contract_id, owner, metric, bucket,
           sum(count) OVER (PARTITION BY contract_id, owner, metric ORDER BY bucket) AS below,
           sum(count) OVER (PARTITION BY contract_id, owner, metric) AS samples
    FROM owner_histogram WHERE count > 0
)
SELECT contract_id, owner, metric, samples,
       bucket_floor(min(bucket) FILTER (WHERE below >= ceil(0.50 * samples))) AS p50,
       bucket_floor(min(bucket) FILTER (WHERE below >= ceil(0.90 * samples))) AS p90,
       bucket_floor(min(bucket) FILTER (WHERE below >= ceil(0.99 * samples))) AS p99
FROM running
GROUP BY contract_id, owner, metric, samples;

-- Instances as they stand: model, registrant, current owner and key, mode, counts, ends.
CREATE VIEW instance_summary AS
SELECT c.chain_id, i.contract_id, c.contract, c.contract_hex,
       i.instance_sk, i.execution, encode(i.execution, 'hex') AS execution_hex,
       m.model_id, encode(m.model_id, 'hex') AS model_id_hex,
       i.instance_document, encode(i.instance_document, 'hex') AS instance_document_hex,
       i.registrant, encode(i.registrant, 'hex') AS registrant_hex,
       i.owner, encode(i.owner, 'hex') AS owner_hex,
       i.current_key, encode(i.current_key, 'hex') AS current_key_hex,
       CASE i.mode WHEN 0 THEN 'direct' WHEN 1 THEN 'anchored' END AS mode,
       CASE WHEN i.final THEN 'final' ELSE 'open' END AS status,
       i.final, i.registered_block, i.registered_at, i.state_count, i.attempts,
       i.first_state_at, i.last_state_at, i.end_document, encode(i.end_document, 'hex') AS end_document_hex,
       i.ended_at, i.terminated_at, i.terminated_at - i.registered_at AS duration,
       i.head, encode(i.head, 'hex') AS head_hex, i.transitions, i.keys
FROM instance i
JOIN contract_view c USING (contract_id)
LEFT JOIN model m ON m.model_sk = i.model_sk;

-- Executions that never terminated (yet): open instances, oldest first by registration.
CREATE VIEW open_instances AS
SELECT * FROM instance_summary WHERE NOT final;

-- The protocol of each instance: its direct states, and every attempt end (for an anchored
-- instance, whose states are under Merkle roots, the ends carry the owner's pinned count and head).
-- `seq` is the state's position, or for an end the state count it states.
CREATE VIEW instance_protocol AS
WITH entry AS (
    SELECT s.contract_id, s.instance_sk, s.key_sk, 'state' AS entry, s.seq::numeric AS seq, s.state_id,
           NULL::bytea AS end_document, NULL::bytea AS head, s.block_number, s.log_index, s.block_time
    FROM state s
    UNION ALL
    SELECT e.contract_id, e.instance_sk, e.key_sk, CASE WHEN e.final THEN 'final end' ELSE 'attempt end' END,
           e.state_count, NULL, e.end_document, e.head, e.block_number, e.log_index, e.block_time
    FROM attempt_end e
)
SELECT c.chain_id, x.contract_id, c.contract, c.contract_hex, x.instance_sk,
       i.execution, encode(i.execution, 'hex') AS execution_hex,
       k.key, encode(k.key, 'hex') AS key_hex, k.owner, encode(k.owner, 'hex') AS owner_hex,
       x.entry, x.seq, x.state_id, encode(x.state_id, 'hex') AS state_id_hex,
       x.end_document, encode(x.end_document, 'hex') AS end_document_hex, x.head, encode(x.head, 'hex') AS head_hex,
       x.block_number, x.log_index, x.block_time, extract(epoch FROM x.block_time)::bigint AS timestamp,
       t.tx_hash AS transaction_hash, encode(t.tx_hash, 'hex') AS transaction_hash_hex,
       t.from_address AS client_address, encode(t.from_address, 'hex') AS client_address_hex
FROM entry x
JOIN contract_view c USING (contract_id)
JOIN instance i ON i.instance_sk = x.instance_sk
JOIN instance_key k ON k.key_sk = x.key_sk
CROSS JOIN LATERAL (
    SELECT tx_hash, from_address FROM transaction t
    WHERE t.contract_id = x.contract_id AND t.block_number = x.block_number AND t.first_log_index <= x.log_index
    ORDER BY t.first_log_index DESC LIMIT 1
) t;

-- Per model: publishers, instances (open and final, direct and anchored), states, percentiles.
-- Models named by instances but never registered, and models without instances, are here too.
CREATE VIEW model_summary AS
SELECT c.chain_id, m.contract_id, c.contract, c.contract_hex, m.model_sk, m.model_id,
       encode(m.model_id, 'hex') AS model_id_hex, m.publishers, m.first_registered_at,
       m.instances, m.direct_instances, m.anchored_instances, m.final_instances,
       m.instances - m.final_instances AS open_instances,
       m.direct_states + m.anchored_states AS states, m.direct_states, m.anchored_states,
       d.samples AS durations, d.p50 AS duration_p50_s, d.p90 AS duration_p90_s, d.p99 AS duration_p99_s,
       g.samples AS gaps, g.p50 AS gap_p50_s, g.p90 AS gap_p90_s, g.p99 AS gap_p99_s
FROM model m
JOIN contract_view c USING (contract_id)
LEFT JOIN model_percentiles d ON d.model_sk = m.model_sk AND d.metric = 1
LEFT JOIN model_percentiles g ON g.model_sk = m.model_sk AND g.metric = 2;

-- Per account: what it sent (transactions, gas, states), what it owns, its client id and
-- certificate, its operators, and percentiles of its instances.
CREATE VIEW client_activity AS
SELECT c.chain_id, a.contract_id, c.contract, c.contract_hex, a.address, encode(a.address, 'hex') AS address_hex,
       a.client_id_text AS client_id, a.client_id AS client_id_bytes, a.client_ids,
       a.transactions, a.gas_used, a.fee_wei, a.states_sent,
       CASE WHEN a.states_sent > 0 THEN round(a.gas_used / a.states_sent, 1) END AS gas_per_state,
       a.models, a.instances, a.direct_states + a.anchored_states AS states, a.direct_states, a.anchored_states,
       a.attempt_ends, a.terminations, a.transitions, a.transfers_in, a.transfers_out, a.anchors, a.anchored_leaves,
       a.operator_changes,
       (SELECT count(*) FROM operator o
        WHERE o.contract_id = a.contract_id AND o.owner = a.address AND o.approved) AS operators,
       a.certificate_fingerprint, encode(a.certificate_fingerprint, 'hex') AS certificate_fingerprint_hex,
       a.certificate_registered_at, a.certificates,
       d.p50 AS duration_p50_s, d.p90 AS duration_p90_s, d.p99 AS duration_p99_s,
       g.p50 AS gap_p50_s, g.p90 AS gap_p90_s, g.p99 AS gap_p99_s
FROM account a
JOIN contract_view c USING (contract_id)
LEFT JOIN owner_percentiles d ON d.contract_id = a.contract_id AND d.owner = a.address AND d.metric = 1
LEFT JOIN owner_percentiles g ON g.contract_id = a.contract_id AND g.owner = a.address AND g.metric = 2;

-- Per UTC day: states (direct ones as events, anchored ones as the counts their owners stated),
-- instances, ends, anchors, transactions and gas.
CREATE VIEW states_per_day AS
SELECT c.chain_id, d.contract_id, c.contract, c.contract_hex, d.day,
       d.direct_states + d.anchored_states AS states, d.direct_states, d.anchored_states, d.instances,
       d.attempt_ends, d.terminations, d.transitions, d.anchors, d.anchored_leaves, d.transactions, d.gas_used,
       d.fee_wei
FROM day_stats d
JOIN contract_view c USING (contract_id);

-- Per function called: transactions, gas and states.
CREATE VIEW function_calls AS
SELECT c.chain_id, f.contract_id, c.contract, c.contract_hex,
       CASE WHEN f.function = '' THEN '(through another contract)' ELSE f.function END AS function,
       f.transactions, f.gas_used, f.fee_wei, f.events, f.states,
       CASE WHEN f.states > 0 THEN round(f.gas_used / f.states, 1) END AS gas_per_state
FROM function_stats f
JOIN contract_view c USING (contract_id);

-- Anchored Merkle roots, and per submitter.
CREATE VIEW anchor_history AS
SELECT c.chain_id, a.contract_id, c.contract, c.contract_hex, a.submitter, encode(a.submitter, 'hex') AS submitter_hex,
       a.root, encode(a.root, 'hex') AS root_hex, a.leaf_count, a.block_number, a.log_index, a.block_time
FROM anchor a
JOIN contract_view c USING (contract_id);

CREATE VIEW anchors_by_submitter AS
SELECT c.chain_id, a.contract_id, c.contract, c.contract_hex, a.submitter, encode(a.submitter, 'hex') AS submitter_hex,
       count(*) AS anchors, sum(a.leaf_count) AS anchored_leaves,
       min(a.block_time) AS first_anchored_at, max(a.block_time) AS last_anchored_at
FROM anchor a
JOIN contract_view c USING (contract_id)
GROUP BY c.chain_id, a.contract_id, c.contract, c.contract_hex, a.submitter;

-- Transfers: proposals (to zero: a cancellation) and accepted transfers, in chain order.
CREATE VIEW transfer_history AS
SELECT c.chain_id, x.contract_id, c.contract, c.contract_hex, x.instance_sk, x.event,
       x.from_owner, encode(x.from_owner, 'hex') AS from_owner_hex, x.to_owner, encode(x.to_owner, 'hex') AS to_owner_hex,
       x.from_key, encode(x.from_key, 'hex') AS from_key_hex, x.to_key, encode(x.to_key, 'hex') AS to_key_hex,
       x.block_number, x.log_index, x.block_time
FROM (
    SELECT p.contract_id, p.instance_sk,
           CASE WHEN p.to_owner = '\x0000000000000000000000000000000000000000'::bytea THEN 'cancelled'
                ELSE 'proposed' END AS event,
           p.from_owner, p.to_owner, k.key AS from_key, NULL::bytea AS to_key, p.block_number, p.log_index, p.block_time
    FROM transfer_proposal p JOIN instance_key k ON k.key_sk = p.key_sk
    UNION ALL
    SELECT t.contract_id, t.instance_sk, 'transferred', t.from_owner, t.to_owner, f.key, n.key, t.block_number,
           t.log_index, t.block_time
    FROM transfer t JOIN instance_key f ON f.key_sk = t.from_key_sk JOIN instance_key n ON n.key_sk = t.to_key_sk
) x
JOIN contract_view c USING (contract_id);

-- Operator approvals and revocations, in chain order; `operator` holds where each pair stands.
CREATE VIEW operator_history AS
SELECT c.chain_id, o.contract_id, c.contract, c.contract_hex, o.owner, encode(o.owner, 'hex') AS owner_hex,
       o.operator, encode(o.operator, 'hex') AS operator_hex, o.approved, o.block_number, o.log_index, o.block_time
FROM operator_change o
JOIN contract_view c USING (contract_id);

CREATE VIEW client_id_history AS
SELECT c.chain_id, r.contract_id, c.contract, c.contract_hex, r.account, encode(r.account, 'hex') AS account_hex,
       r.client_id_text AS client_id, r.client_id AS client_id_bytes, encode(r.client_id, 'hex') AS client_id_hex,
       r.block_number, r.log_index, r.block_time
FROM client_id_registration r
JOIN contract_view c USING (contract_id);

CREATE VIEW certificate_history AS
SELECT c.chain_id, r.contract_id, c.contract, c.contract_hex, r.account, encode(r.account, 'hex') AS account_hex,
       r.fingerprint, encode(r.fingerprint, 'hex') AS fingerprint_hex, r.signature,
       r.block_number, r.log_index, r.block_time
FROM certificate_registration r
JOIN contract_view c USING (contract_id);
