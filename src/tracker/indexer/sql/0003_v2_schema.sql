-- The schema of InstanceTracker v2, whose records are keyed by their owner. v2 is a new contract,
-- so the tables of the v1 schema (0001, 0002) are dropped, not converted; `contract` keeps its
-- ids. Applied with search_path set to the indexer's own schema.
--
-- Everything is scoped by contract (`contract_id`): an indexer writes only its own contract's rows,
-- a rollback deletes by (contract, block number), and every index the loader touches is a B-tree
-- it probes or appends to, so the cost of a batch does not grow with the tables. Ids and hashes
-- are bytea (32 bytes, addresses 20), never hex text: views add `*_hex` renderings beside them.
-- Instances and models have surrogate keys (bigint, from sequences the loader draws from), instance
-- keys an integer one, so the largest table (`state`) carries 8-byte references, not 32-byte ids.
-- Block time is stored on every fact. Rollups (the `instance`, `model`, `account` columns after
-- "rollups", `day_stats`, the histograms, `operator`) are maintained in the transaction that loads
-- or rolls back the facts they count (tracker.indexer.store).

DROP VIEW IF EXISTS states_per_day, client_activity, model_instance_stats, instance_summary, instance_protocol, fact_log;
DROP TABLE IF EXISTS client_id_registration, operator_change, instance_transfer, certificate_registration, anchor,
    termination, transition_registration, state_registration, instance_registration, model_registration,
    indexed_block, client, state, instance, model, transaction, block, cursor;

-- ------------------------------------------------------------------ indexing progress

-- The last block indexed per contract: committed in the same transaction as the batch it ends.
CREATE TABLE cursor (
    contract_id integer PRIMARY KEY REFERENCES contract,
    block_number bigint NOT NULL CHECK (block_number >= -1),
    block_hash bytea CHECK (octet_length(block_hash) = 32),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The blocks a contract's indexing stored: each block with an event of the contract, and each
-- batch's last block. Where a reorganisation is detected, the highest one still on the chain is
-- the fork point.
CREATE TABLE block (
    contract_id integer NOT NULL REFERENCES contract,
    block_number bigint NOT NULL CHECK (block_number >= 0),
    block_hash bytea NOT NULL CHECK (octet_length(block_hash) = 32),
    parent_hash bytea NOT NULL CHECK (octet_length(parent_hash) = 32),
    block_time timestamptz NOT NULL,
    PRIMARY KEY (contract_id, block_number)
);

-- One row per transaction that emitted events of the contract. Facts find their transaction by
-- (contract, block, log index): a transaction's events are the logs first_log_index..last_log_index.
CREATE TABLE transaction (
    contract_id integer NOT NULL REFERENCES contract,
    block_number bigint NOT NULL,
    first_log_index integer NOT NULL CHECK (first_log_index >= 0),
    last_log_index integer NOT NULL CHECK (last_log_index >= first_log_index),
    block_time timestamptz NOT NULL,
    tx_hash bytea NOT NULL CHECK (octet_length(tx_hash) = 32),
    from_address bytea NOT NULL CHECK (octet_length(from_address) = 20),
    to_address bytea CHECK (octet_length(to_address) = 20),
    gas_used bigint NOT NULL CHECK (gas_used >= 0),
    effective_gas_price numeric(78, 0) NOT NULL CHECK (effective_gas_price >= 0),
    fee_wei numeric(78, 0) NOT NULL CHECK (fee_wei >= 0),
    -- The contract function the transaction called (NULL when it called another contract), and
    -- for multicall the functions it called in turn.
    function text,
    inner_functions text[],
    events integer NOT NULL CHECK (events > 0),
    states integer NOT NULL CHECK (states >= 0),
    PRIMARY KEY (contract_id, block_number, first_log_index),
    UNIQUE (contract_id, tx_hash)
);

-- ------------------------------------------------------------------ dimensions (with rollups)

CREATE SEQUENCE model_sk_seq;
CREATE SEQUENCE instance_sk_seq;
CREATE SEQUENCE key_sk_seq AS integer;

-- Every address that appears in the contract's events or sent one of its transactions.
CREATE TABLE account (
    contract_id integer NOT NULL REFERENCES contract,
    address bytea NOT NULL CHECK (octet_length(address) = 20),
    first_block bigint NOT NULL,
    -- rollups, as the sender of transactions
    transactions bigint NOT NULL DEFAULT 0,
    gas_used numeric(78, 0) NOT NULL DEFAULT 0,
    fee_wei numeric(78, 0) NOT NULL DEFAULT 0,
    states_sent bigint NOT NULL DEFAULT 0,
    -- rollups, as the owner of records (the account whose keys they live under)
    models bigint NOT NULL DEFAULT 0,
    instances bigint NOT NULL DEFAULT 0,
    direct_states bigint NOT NULL DEFAULT 0,
    anchored_states numeric(30, 0) NOT NULL DEFAULT 0,
    attempt_ends bigint NOT NULL DEFAULT 0,
    terminations bigint NOT NULL DEFAULT 0,
    transitions bigint NOT NULL DEFAULT 0,
    transfers_out bigint NOT NULL DEFAULT 0,
    transfers_in bigint NOT NULL DEFAULT 0,
    anchors bigint NOT NULL DEFAULT 0,
    anchored_leaves bigint NOT NULL DEFAULT 0,
    operator_changes bigint NOT NULL DEFAULT 0,
    -- the latest client id (exact bytes and a rendering) and certificate, and how many there were
    client_id bytea,
    client_id_text text,
    client_ids integer NOT NULL DEFAULT 0,
    certificate_fingerprint bytea,
    certificate_registered_at timestamptz,
    certificates integer NOT NULL DEFAULT 0,
    PRIMARY KEY (contract_id, address)
) WITH (fillfactor = 70);
CREATE INDEX account_by_first_block ON account (contract_id, first_block);

-- A model id of the contract: registered by one or more publishers, or only named by instances.
CREATE TABLE model (
    model_sk bigint PRIMARY KEY DEFAULT nextval('model_sk_seq'),
    contract_id integer NOT NULL REFERENCES contract,
    model_id bytea NOT NULL CHECK (octet_length(model_id) = 32),
    first_block bigint NOT NULL,
    -- rollups
    publishers integer NOT NULL DEFAULT 0,
    first_registered_at timestamptz,
    instances bigint NOT NULL DEFAULT 0,
    direct_instances bigint NOT NULL DEFAULT 0,
    anchored_instances bigint NOT NULL DEFAULT 0,
    final_instances bigint NOT NULL DEFAULT 0,
    direct_states bigint NOT NULL DEFAULT 0,
    anchored_states numeric(30, 0) NOT NULL DEFAULT 0,
    UNIQUE (contract_id, model_id)
) WITH (fillfactor = 70);
CREATE INDEX model_by_first_block ON model (contract_id, first_block);

-- An instance: one registered execution and its trace, whichever keys it lived under (a transfer
-- moves it to the new owner's key). The registration columns are NULL for an instance registered
-- before the first indexed block (it is then known from later events only).
CREATE TABLE instance (
    instance_sk bigint PRIMARY KEY DEFAULT nextval('instance_sk_seq'),
    contract_id integer NOT NULL REFERENCES contract,
    execution bytea CHECK (octet_length(execution) = 32),
    first_block bigint NOT NULL,
    registered_block bigint,
    registered_log_index integer,
    registered_at timestamptz,
    registrant bytea CHECK (octet_length(registrant) = 20),
    model_sk bigint,
    instance_document bytea CHECK (octet_length(instance_document) = 32),
    mode smallint CHECK (mode IN (0, 1)),  -- 0 direct (states as events), 1 anchored (under Merkle roots)
    -- rollups
    owner bytea,
    current_key bytea,
    keys integer NOT NULL DEFAULT 1,
    state_count numeric(20, 0) NOT NULL DEFAULT 0,
    first_state_at timestamptz,
    last_state_at timestamptz,
    attempts bigint NOT NULL DEFAULT 0,
    final boolean NOT NULL DEFAULT false,
    end_document bytea,
    ended_at timestamptz,
    terminated_at timestamptz,
    head bytea,
    transitions bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 70);
CREATE INDEX instance_by_first_block ON instance (contract_id, first_block);
CREATE INDEX instance_by_execution ON instance (execution);
CREATE INDEX instance_by_model ON instance (model_sk);
CREATE INDEX instance_open ON instance (contract_id, registered_at) WHERE NOT final;

-- Every key an instance lived under: the registered one, then one per accepted transfer.
-- States from seq_from on were registered under it.
CREATE TABLE instance_key (
    key_sk integer PRIMARY KEY DEFAULT nextval('key_sk_seq'),
    contract_id integer NOT NULL REFERENCES contract,
    key bytea NOT NULL CHECK (octet_length(key) = 32),
    instance_sk bigint NOT NULL,
    owner bytea CHECK (octet_length(owner) = 20),  -- NULL: registered before the first indexed block
    first_block bigint NOT NULL,
    seq_from numeric(20, 0) NOT NULL DEFAULT 0,
    -- rollups
    moved_block bigint,
    pending_owner bytea,
    UNIQUE (contract_id, key)
) WITH (fillfactor = 80);
CREATE INDEX instance_key_by_instance ON instance_key (instance_sk);
CREATE INDEX instance_key_by_first_block ON instance_key (contract_id, first_block);

-- ------------------------------------------------------------------ facts: one row per log
-- (contract, block number, log index) is where each came from; a rollback deletes by block number.

-- StateRegistered: the largest table, laid out narrow (fixed-width columns first, no NULLs).
CREATE TABLE state (
    contract_id integer NOT NULL,
    log_index integer NOT NULL,
    block_number bigint NOT NULL,
    instance_sk bigint NOT NULL,
    seq bigint NOT NULL CHECK (seq >= 0),
    block_time timestamptz NOT NULL,
    key_sk integer NOT NULL,
    state_id bytea NOT NULL CHECK (octet_length(state_id) = 32),
    PRIMARY KEY (instance_sk, seq)
);
CREATE INDEX state_by_block ON state (contract_id, block_number);
CREATE INDEX state_by_id ON state USING hash (state_id);

CREATE TABLE model_registration (
    contract_id integer NOT NULL,
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    block_time timestamptz NOT NULL,
    publisher bytea NOT NULL CHECK (octet_length(publisher) = 20),
    model_sk bigint NOT NULL,
    PRIMARY KEY (contract_id, block_number, log_index)
);
CREATE INDEX model_registration_by_model ON model_registration (model_sk);

-- AttemptEnded (final false) and InstanceTerminated (final true). added_states: by how much the
-- statement raised an anchored instance's count (0 for direct instances, whose states are facts).
CREATE TABLE attempt_end (
    contract_id integer NOT NULL,
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    block_time timestamptz NOT NULL,
    instance_sk bigint NOT NULL,
    key_sk integer NOT NULL,
    final boolean NOT NULL,
    attempt bigint NOT NULL CHECK (attempt >= 0),
    end_document bytea NOT NULL CHECK (octet_length(end_document) = 32),
    state_count numeric(20, 0) NOT NULL CHECK (state_count >= 0),
    head bytea NOT NULL CHECK (octet_length(head) = 32),
    added_states numeric(20, 0) NOT NULL CHECK (added_states >= 0),
    PRIMARY KEY (contract_id, block_number, log_index)
);
CREATE INDEX attempt_end_by_instance ON attempt_end (instance_sk);

CREATE TABLE transition (
    contract_id integer NOT NULL,
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    block_time timestamptz NOT NULL,
    instance_sk bigint NOT NULL,
    key_sk integer NOT NULL,
    pre_state bytea NOT NULL CHECK (octet_length(pre_state) = 32),
    post_state bytea NOT NULL CHECK (octet_length(post_state) = 32),
    pre_seq bigint NOT NULL CHECK (pre_seq >= 0),
    post_seq bigint NOT NULL CHECK (post_seq > pre_seq),
    PRIMARY KEY (contract_id, block_number, log_index)
);
CREATE INDEX transition_by_instance ON transition (instance_sk);

-- TransferProposed; to_owner is the zero address for a cancellation.
CREATE TABLE transfer_proposal (
    contract_id integer NOT NULL,
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    block_time timestamptz NOT NULL,
    instance_sk bigint NOT NULL,
    key_sk integer NOT NULL,
    from_owner bytea NOT NULL CHECK (octet_length(from_owner) = 20),
    to_owner bytea NOT NULL CHECK (octet_length(to_owner) = 20),
    PRIMARY KEY (contract_id, block_number, log_index)
);
CREATE INDEX transfer_proposal_by_key ON transfer_proposal (key_sk);
CREATE INDEX transfer_proposal_by_instance ON transfer_proposal (instance_sk);

-- InstanceTransferred.
CREATE TABLE transfer (
    contract_id integer NOT NULL,
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    block_time timestamptz NOT NULL,
    instance_sk bigint NOT NULL,
    from_key_sk integer NOT NULL,
    to_key_sk integer NOT NULL,
    execution bytea NOT NULL CHECK (octet_length(execution) = 32),
    from_owner bytea NOT NULL CHECK (octet_length(from_owner) = 20),
    to_owner bytea NOT NULL CHECK (octet_length(to_owner) = 20),
    PRIMARY KEY (contract_id, block_number, log_index)
);
CREATE INDEX transfer_by_from_key ON transfer (from_key_sk);
CREATE INDEX transfer_by_instance ON transfer (instance_sk);

CREATE TABLE operator_change (
    contract_id integer NOT NULL,
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    block_time timestamptz NOT NULL,
    owner bytea NOT NULL CHECK (octet_length(owner) = 20),
    operator bytea NOT NULL CHECK (octet_length(operator) = 20),
    approved boolean NOT NULL,
    PRIMARY KEY (contract_id, block_number, log_index)
);
CREATE INDEX operator_change_by_pair ON operator_change (contract_id, owner, operator);

-- The operators as they stand: the latest OperatorSet of each (owner, operator).
CREATE TABLE operator (
    contract_id integer NOT NULL,
    owner bytea NOT NULL,
    operator bytea NOT NULL,
    approved boolean NOT NULL,
    changed_block bigint NOT NULL,
    changed_at timestamptz NOT NULL,
    changes integer NOT NULL,
    PRIMARY KEY (contract_id, owner, operator)
);

-- ClientIdRegistered: the id as the exact bytes of the log, and a text rendering that never fails
-- (tracker.chain.events.render_text: a backslash doubled, control characters and bytes that are
-- not UTF-8 as \xNN).
CREATE TABLE client_id_registration (
    contract_id integer NOT NULL,
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    block_time timestamptz NOT NULL,
    account bytea NOT NULL CHECK (octet_length(account) = 20),
    client_id bytea NOT NULL,
    client_id_text text NOT NULL,
    PRIMARY KEY (contract_id, block_number, log_index)
);
CREATE INDEX client_id_registration_by_account ON client_id_registration (contract_id, account);

CREATE TABLE certificate_registration (
    contract_id integer NOT NULL,
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    block_time timestamptz NOT NULL,
    account bytea NOT NULL CHECK (octet_length(account) = 20),
    fingerprint bytea NOT NULL CHECK (octet_length(fingerprint) = 32),
    signature bytea NOT NULL,
    PRIMARY KEY (contract_id, block_number, log_index)
);
CREATE INDEX certificate_registration_by_account ON certificate_registration (contract_id, account);

CREATE TABLE anchor (
    contract_id integer NOT NULL,
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    block_time timestamptz NOT NULL,
    submitter bytea NOT NULL CHECK (octet_length(submitter) = 20),
    root bytea NOT NULL CHECK (octet_length(root) = 32),
    leaf_count bigint NOT NULL CHECK (leaf_count > 0),
    PRIMARY KEY (contract_id, block_number, log_index)
);
CREATE INDEX anchor_by_submitter ON anchor (contract_id, submitter);

-- ------------------------------------------------------------------ rollups

-- Per UTC day of block time.
CREATE TABLE day_stats (
    contract_id integer NOT NULL,
    day date NOT NULL,
    direct_states bigint NOT NULL DEFAULT 0,
    anchored_states numeric(30, 0) NOT NULL DEFAULT 0,
    instances bigint NOT NULL DEFAULT 0,
    attempt_ends bigint NOT NULL DEFAULT 0,
    terminations bigint NOT NULL DEFAULT 0,
    transitions bigint NOT NULL DEFAULT 0,
    anchors bigint NOT NULL DEFAULT 0,
    anchored_leaves bigint NOT NULL DEFAULT 0,
    transactions bigint NOT NULL DEFAULT 0,
    gas_used numeric(78, 0) NOT NULL DEFAULT 0,
    fee_wei numeric(78, 0) NOT NULL DEFAULT 0,
    PRIMARY KEY (contract_id, day)
) WITH (fillfactor = 70);

-- Per function called ('' for a transaction that called another contract, which called this one).
CREATE TABLE function_stats (
    contract_id integer NOT NULL,
    function text NOT NULL,
    transactions bigint NOT NULL DEFAULT 0,
    gas_used numeric(78, 0) NOT NULL DEFAULT 0,
    fee_wei numeric(78, 0) NOT NULL DEFAULT 0,
    events bigint NOT NULL DEFAULT 0,
    states bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (contract_id, function)
) WITH (fillfactor = 70);

-- Histograms of durations in seconds, for percentiles: metric 1 is an instance's duration from
-- registration to its final end, metric 2 the time between consecutive states of an instance.
-- Buckets (duration_bucket): one per second below 64 s, then 5% wide.
CREATE TABLE model_histogram (
    contract_id integer NOT NULL,
    model_sk bigint NOT NULL,
    metric smallint NOT NULL CHECK (metric IN (1, 2)),
    bucket integer NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (model_sk, metric, bucket)
) WITH (fillfactor = 70);

-- The same per owner (the account whose key the instance, or the state, was under).
CREATE TABLE owner_histogram (
    contract_id integer NOT NULL,
    owner bytea NOT NULL,
    metric smallint NOT NULL CHECK (metric IN (1, 2)),
    bucket integer NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (contract_id, owner, metric, bucket)
) WITH (fillfactor = 70);

CREATE FUNCTION duration_bucket(seconds numeric) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN seconds < 64 THEN floor(greatest(seconds, 0))::integer
        ELSE 64 + floor(ln(seconds / 64) / ln(1.05))::integer
    END
$$;

-- The smallest duration in a bucket (seconds).
CREATE FUNCTION bucket_floor(bucket integer) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN bucket < 64 THEN bucket::numeric ELSE round(64 * power(1.05::numeric, bucket - 64), 1) END
$$;
