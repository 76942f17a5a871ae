-- The indexer's star schema. Applied with search_path set to the indexer's own schema, so the
-- names below are unqualified. Identifiers and hashes are bytea of a fixed width (checked),
-- amounts in wei are numeric, times are timestamptz.

-- ------------------------------------------------------------------ dimensions

CREATE TABLE contract (
    contract_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id bigint NOT NULL CHECK (chain_id > 0),
    address bytea NOT NULL CHECK (octet_length(address) = 20),
    UNIQUE (chain_id, address)
);

CREATE TABLE block (
    chain_id bigint NOT NULL,
    block_hash bytea NOT NULL CHECK (octet_length(block_hash) = 32),
    block_number bigint NOT NULL CHECK (block_number >= 0),
    parent_hash bytea NOT NULL CHECK (octet_length(parent_hash) = 32),
    block_time timestamptz NOT NULL,
    PRIMARY KEY (chain_id, block_hash)
);
CREATE INDEX block_by_number ON block (chain_id, block_number);

-- One row per inclusion of a transaction in a block (a reorg may include it again elsewhere).
CREATE TABLE transaction (
    chain_id bigint NOT NULL,
    tx_hash bytea NOT NULL CHECK (octet_length(tx_hash) = 32),
    block_hash bytea NOT NULL,
    from_address bytea NOT NULL CHECK (octet_length(from_address) = 20),
    to_address bytea CHECK (octet_length(to_address) = 20),
    gas_used numeric(78, 0) NOT NULL CHECK (gas_used >= 0),
    effective_gas_price numeric(78, 0) NOT NULL CHECK (effective_gas_price >= 0),
    fee_wei numeric(78, 0) NOT NULL CHECK (fee_wei >= 0),
    PRIMARY KEY (chain_id, tx_hash, block_hash),
    FOREIGN KEY (chain_id, block_hash) REFERENCES block ON DELETE CASCADE
);
CREATE INDEX transaction_by_sender ON transaction (from_address);

CREATE TABLE model (
    model_id bytea PRIMARY KEY CHECK (octet_length(model_id) = 32)
);

CREATE TABLE instance (
    instance_id bytea PRIMARY KEY CHECK (octet_length(instance_id) = 32)
);

CREATE TABLE state (
    state_id bytea PRIMARY KEY CHECK (octet_length(state_id) = 32)
);

-- client_id is the latest id the address registered (on any indexed contract), NULL when none.
CREATE TABLE client (
    address bytea PRIMARY KEY CHECK (octet_length(address) = 20),
    client_id text CHECK (octet_length(client_id) BETWEEN 1 AND 64)
);

-- ------------------------------------------------------------------ indexing progress

-- The last block indexed per contract: committed in the same transaction as the batch it ends.
CREATE TABLE cursor (
    contract_id integer PRIMARY KEY REFERENCES contract,
    block_number bigint NOT NULL CHECK (block_number >= -1),
    block_hash bytea CHECK (octet_length(block_hash) = 32),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Hashes of the blocks this contract's indexing has seen (each batch end and each block with an
-- event): where a reorg is detected, the highest one still on the chain is the fork point.
CREATE TABLE indexed_block (
    contract_id integer NOT NULL REFERENCES contract,
    block_number bigint NOT NULL CHECK (block_number >= 0),
    block_hash bytea NOT NULL CHECK (octet_length(block_hash) = 32),
    PRIMARY KEY (contract_id, block_number)
);

-- ------------------------------------------------------------------ facts
-- Every fact is one log: (contract, block number, log index) identifies it (a reorg deletes the
-- facts above the fork point before the new blocks are loaded, so the number is unambiguous and
-- the key serves the rollback's range deletes); the block and transaction it came from are
-- foreign keys into the dimensions.

CREATE TABLE model_registration (
    contract_id integer NOT NULL REFERENCES contract,
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    tx_hash bytea NOT NULL,
    log_index integer NOT NULL CHECK (log_index >= 0),
    model_id bytea NOT NULL REFERENCES model,
    publisher bytea NOT NULL REFERENCES client,
    PRIMARY KEY (contract_id, block_number, log_index),
    FOREIGN KEY (chain_id, tx_hash, block_hash) REFERENCES transaction
);
CREATE INDEX model_registration_by_model ON model_registration (model_id);

CREATE TABLE instance_registration (
    contract_id integer NOT NULL REFERENCES contract,
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    tx_hash bytea NOT NULL,
    log_index integer NOT NULL CHECK (log_index >= 0),
    instance_id bytea NOT NULL REFERENCES instance,
    model_id bytea NOT NULL REFERENCES model,
    owner bytea NOT NULL REFERENCES client,
    PRIMARY KEY (contract_id, block_number, log_index),
    FOREIGN KEY (chain_id, tx_hash, block_hash) REFERENCES transaction
);
CREATE INDEX instance_registration_by_model ON instance_registration (model_id);
CREATE INDEX instance_registration_by_instance ON instance_registration (instance_id);

CREATE TABLE state_registration (
    contract_id integer NOT NULL REFERENCES contract,
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    tx_hash bytea NOT NULL,
    log_index integer NOT NULL CHECK (log_index >= 0),
    instance_id bytea NOT NULL REFERENCES instance,
    state_id bytea NOT NULL REFERENCES state,
    seq bigint NOT NULL CHECK (seq >= 0),
    PRIMARY KEY (contract_id, block_number, log_index),
    FOREIGN KEY (chain_id, tx_hash, block_hash) REFERENCES transaction
);
CREATE INDEX state_registration_by_instance ON state_registration (instance_id, seq);

CREATE TABLE transition_registration (
    contract_id integer NOT NULL REFERENCES contract,
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    tx_hash bytea NOT NULL,
    log_index integer NOT NULL CHECK (log_index >= 0),
    instance_id bytea NOT NULL REFERENCES instance,
    pre_state_id bytea NOT NULL REFERENCES state,
    post_state_id bytea NOT NULL REFERENCES state,
    pre_seq bigint NOT NULL CHECK (pre_seq >= 0),
    post_seq bigint NOT NULL CHECK (post_seq > pre_seq),
    PRIMARY KEY (contract_id, block_number, log_index),
    FOREIGN KEY (chain_id, tx_hash, block_hash) REFERENCES transaction
);
CREATE INDEX transition_registration_by_instance ON transition_registration (instance_id);

CREATE TABLE termination (
    contract_id integer NOT NULL REFERENCES contract,
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    tx_hash bytea NOT NULL,
    log_index integer NOT NULL CHECK (log_index >= 0),
    instance_id bytea NOT NULL REFERENCES instance,
    end_document_id bytea NOT NULL CHECK (octet_length(end_document_id) = 32),
    state_count bigint NOT NULL CHECK (state_count >= 0),
    head bytea NOT NULL CHECK (octet_length(head) = 32),
    PRIMARY KEY (contract_id, block_number, log_index),
    FOREIGN KEY (chain_id, tx_hash, block_hash) REFERENCES transaction
);
CREATE INDEX termination_by_instance ON termination (instance_id);

CREATE TABLE anchor (
    contract_id integer NOT NULL REFERENCES contract,
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    tx_hash bytea NOT NULL,
    log_index integer NOT NULL CHECK (log_index >= 0),
    root bytea NOT NULL CHECK (octet_length(root) = 32),
    submitter bytea NOT NULL REFERENCES client,
    leaf_count bigint NOT NULL CHECK (leaf_count > 0),
    PRIMARY KEY (contract_id, block_number, log_index),
    FOREIGN KEY (chain_id, tx_hash, block_hash) REFERENCES transaction
);

CREATE TABLE certificate_registration (
    contract_id integer NOT NULL REFERENCES contract,
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    tx_hash bytea NOT NULL,
    log_index integer NOT NULL CHECK (log_index >= 0),
    account bytea NOT NULL REFERENCES client,
    fingerprint bytea NOT NULL CHECK (octet_length(fingerprint) = 32),
    signature bytea NOT NULL,
    PRIMARY KEY (contract_id, block_number, log_index),
    FOREIGN KEY (chain_id, tx_hash, block_hash) REFERENCES transaction
);

-- Account events: ownership transfers, operator approvals, client ids.
CREATE TABLE instance_transfer (
    contract_id integer NOT NULL REFERENCES contract,
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    tx_hash bytea NOT NULL,
    log_index integer NOT NULL CHECK (log_index >= 0),
    instance_id bytea NOT NULL REFERENCES instance,
    from_owner bytea NOT NULL REFERENCES client,
    to_owner bytea NOT NULL REFERENCES client,
    PRIMARY KEY (contract_id, block_number, log_index),
    FOREIGN KEY (chain_id, tx_hash, block_hash) REFERENCES transaction
);

CREATE TABLE operator_change (
    contract_id integer NOT NULL REFERENCES contract,
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    tx_hash bytea NOT NULL,
    log_index integer NOT NULL CHECK (log_index >= 0),
    owner bytea NOT NULL REFERENCES client,
    operator bytea NOT NULL REFERENCES client,
    approved boolean NOT NULL,
    PRIMARY KEY (contract_id, block_number, log_index),
    FOREIGN KEY (chain_id, tx_hash, block_hash) REFERENCES transaction
);

CREATE TABLE client_id_registration (
    contract_id integer NOT NULL REFERENCES contract,
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    tx_hash bytea NOT NULL,
    log_index integer NOT NULL CHECK (log_index >= 0),
    account bytea NOT NULL REFERENCES client,
    client_id text NOT NULL,
    PRIMARY KEY (contract_id, block_number, log_index),
    FOREIGN KEY (chain_id, tx_hash, block_hash) REFERENCES transaction
);
CREATE INDEX client_id_registration_by_account ON client_id_registration (account);
