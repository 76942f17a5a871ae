-- Analysis views over the star schema. Hashes and addresses are shown as lowercase hex without
-- 0x, as in the project's documents; times as timestamptz and, for the protocol, Unix seconds.

-- Every indexed log, whatever its event: where it is and which contract emitted it.
CREATE VIEW fact_log AS
SELECT 'ModelRegistered' AS event, contract_id, chain_id, block_number, block_hash, tx_hash, log_index FROM model_registration
UNION ALL SELECT 'InstanceRegistered', contract_id, chain_id, block_number, block_hash, tx_hash, log_index FROM instance_registration
UNION ALL SELECT 'StateRegistered', contract_id, chain_id, block_number, block_hash, tx_hash, log_index FROM state_registration
UNION ALL SELECT 'TransitionRegistered', contract_id, chain_id, block_number, block_hash, tx_hash, log_index FROM transition_registration
UNION ALL SELECT 'InstanceTerminated', contract_id, chain_id, block_number, block_hash, tx_hash, log_index FROM termination
UNION ALL SELECT 'StatesAnchored', contract_id, chain_id, block_number, block_hash, tx_hash, log_index FROM anchor
UNION ALL SELECT 'CertificateRegistered', contract_id, chain_id, block_number, block_hash, tx_hash, log_index FROM certificate_registration
UNION ALL SELECT 'InstanceTransferred', contract_id, chain_id, block_number, block_hash, tx_hash, log_index FROM instance_transfer
UNION ALL SELECT 'OperatorSet', contract_id, chain_id, block_number, block_hash, tx_hash, log_index FROM operator_change
UNION ALL SELECT 'ClientIdRegistered', contract_id, chain_id, block_number, block_hash, tx_hash, log_index FROM client_id_registration;

-- The instance protocol: each registered state of each instance, with where and by whom.
-- Order by (chain_id, contract, instance_id, seq) to read one protocol.
CREATE VIEW instance_protocol AS
SELECT c.chain_id,
       encode(c.address, 'hex') AS contract,
       encode(s.instance_id, 'hex') AS instance_id,
       s.seq,
       encode(s.state_id, 'hex') AS state_id,
       s.block_number,
       b.block_time,
       extract(epoch FROM b.block_time)::bigint AS timestamp,
       encode(s.tx_hash, 'hex') AS transaction_hash,
       s.log_index,
       encode(t.from_address, 'hex') AS client_address
FROM state_registration s
JOIN contract c USING (contract_id)
JOIN transaction t ON t.chain_id = s.chain_id AND t.tx_hash = s.tx_hash AND t.block_hash = s.block_hash
JOIN block b ON b.chain_id = s.chain_id AND b.block_hash = s.block_hash;

-- Per instance: its model, owner at registration, states, first and last state time, termination.
CREATE VIEW instance_summary AS
SELECT c.chain_id,
       encode(c.address, 'hex') AS contract,
       encode(i.model_id, 'hex') AS model_id,
       encode(i.instance_id, 'hex') AS instance_id,
       encode(i.owner, 'hex') AS owner,
       rb.block_time AS registered_at,
       count(s.seq) AS states,
       min(sb.block_time) AS first_state_at,
       max(sb.block_time) AS last_state_at,
       max(sb.block_time) - min(sb.block_time) AS duration,
       EXISTS (
           SELECT 1 FROM termination x WHERE x.contract_id = i.contract_id AND x.instance_id = i.instance_id
       ) AS terminated
FROM instance_registration i
JOIN contract c USING (contract_id)
JOIN block rb ON rb.chain_id = i.chain_id AND rb.block_hash = i.block_hash
LEFT JOIN state_registration s ON s.contract_id = i.contract_id AND s.instance_id = i.instance_id
LEFT JOIN block sb ON sb.chain_id = s.chain_id AND sb.block_hash = s.block_hash
GROUP BY c.chain_id, c.address, i.contract_id, i.model_id, i.instance_id, i.owner, rb.block_time;

-- Per model: how many instances, how many ended, states, and durations from first to last state.
CREATE VIEW model_instance_stats AS
SELECT chain_id,
       contract,
       model_id,
       count(*) AS instances,
       count(*) FILTER (WHERE terminated) AS terminated_instances,
       sum(states)::bigint AS states,
       min(duration) AS min_duration,
       avg(duration) AS avg_duration,
       max(duration) AS max_duration
FROM instance_summary
GROUP BY chain_id, contract, model_id;

-- Per contract and client (the account that sent the transactions): activity and gas spent.
-- A transaction counts once per contract whose events it emitted.
CREATE VIEW client_activity AS
WITH contract_transaction AS (
    SELECT DISTINCT contract_id, chain_id, tx_hash, block_hash FROM fact_log
),
activity AS (
    SELECT ct.contract_id, t.from_address, count(*) AS transactions, sum(t.gas_used) AS gas_used,
           sum(t.fee_wei) AS fee_wei, min(b.block_time) AS first_seen, max(b.block_time) AS last_seen
    FROM contract_transaction ct
    JOIN transaction t USING (chain_id, tx_hash, block_hash)
    JOIN block b USING (chain_id, block_hash)
    GROUP BY ct.contract_id, t.from_address
),
registered AS (
    SELECT f.contract_id, t.from_address,
           count(*) FILTER (WHERE f.event = 'ModelRegistered') AS models,
           count(*) FILTER (WHERE f.event = 'InstanceRegistered') AS instances,
           count(*) FILTER (WHERE f.event = 'StateRegistered') AS states
    FROM fact_log f
    JOIN transaction t USING (chain_id, tx_hash, block_hash)
    GROUP BY f.contract_id, t.from_address
)
SELECT c.chain_id,
       encode(c.address, 'hex') AS contract,
       encode(a.from_address, 'hex') AS client_address,
       cl.client_id,
       a.transactions,
       r.models,
       r.instances,
       r.states,
       a.gas_used,
       a.fee_wei,
       a.first_seen,
       a.last_seen
FROM activity a
JOIN registered r USING (contract_id, from_address)
JOIN contract c USING (contract_id)
LEFT JOIN client cl ON cl.address = a.from_address;

-- States registered per UTC day, per contract.
CREATE VIEW states_per_day AS
SELECT c.chain_id,
       encode(c.address, 'hex') AS contract,
       (b.block_time AT TIME ZONE 'UTC')::date AS day,
       count(*) AS states,
       count(DISTINCT s.instance_id) AS instances
FROM state_registration s
JOIN contract c USING (contract_id)
JOIN block b ON b.chain_id = s.chain_id AND b.block_hash = s.block_hash
GROUP BY c.chain_id, c.address, day;
