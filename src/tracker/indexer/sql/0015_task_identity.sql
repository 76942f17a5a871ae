-- What each Task state ran: the code identity of every state whose state document names a task
-- document, loaded from published documents (`ape run index --documents DIR`), each checked
-- against its id. Keyed by the state id, so it does not depend on which block registered the
-- state: a rollback of the state's registration leaves it, and the views join it to the states
-- the chain holds.
CREATE TABLE state_task (
    state_id bytea PRIMARY KEY CHECK (octet_length(state_id) = 32),
    task_id bytea NOT NULL CHECK (octet_length(task_id) = 32),
    instance_document bytea NOT NULL CHECK (octet_length(instance_document) = 32),
    state_name text NOT NULL,
    entered_at timestamptz NOT NULL,  -- when the state was entered (its state document's timestamp)
    state_type text NOT NULL,
    service text NOT NULL,
    integration text,
    code_identity text NOT NULL,
    function_arn text,
    function_version text,
    code_sha256 text,
    image_digest text,
    task_definition_arn text,
    containers jsonb,
    data jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX state_task_by_function ON state_task (function_arn, function_version);

-- Each registered state and what it ran, with its instance and model.
CREATE VIEW state_code AS
SELECT s.contract_id,
       s.instance_sk,
       encode(m.model_id, 'hex') AS model_id,
       encode(i.execution, 'hex') AS execution_id,
       s.seq,
       s.block_time,
       t.entered_at,
       encode(s.state_id, 'hex') AS state_id,
       t.state_name,
       t.service,
       t.integration,
       t.code_identity,
       t.function_arn,
       t.function_version,
       t.code_sha256,
       t.image_digest,
       t.task_definition_arn,
       t.containers,
       t.data
FROM state s
JOIN state_task t ON t.state_id = s.state_id
JOIN instance i ON i.instance_sk = s.instance_sk
LEFT JOIN model m ON m.model_sk = i.model_sk;

-- Which executions ran which version (and code) of each function.
CREATE VIEW function_version_runs AS
SELECT function_arn,
       function_version,
       code_sha256,
       bool_or(code_identity = 'read after the fact') AS read_after_the_fact,
       count(DISTINCT instance_sk) AS executions,
       count(*) AS states,
       min(entered_at) AS first_run,
       max(entered_at) AS last_run
FROM state_code
WHERE function_arn IS NOT NULL
GROUP BY function_arn, function_version, code_sha256;

-- When the code behind a model changed: per model and function (or task definition), each code
-- in the order it first ran, with the code before it.
CREATE VIEW model_code_changes AS
WITH firsts AS (
    SELECT model_id,
           coalesce(function_arn, regexp_replace(task_definition_arn, ':[0-9]+$', '')) AS code_of,
           coalesce(code_sha256, task_definition_arn) AS code,
           min(function_version) AS version,
           min(entered_at) AS first_run,
           count(DISTINCT instance_sk) AS executions
    FROM state_code
    WHERE function_arn IS NOT NULL OR task_definition_arn IS NOT NULL
    GROUP BY 1, 2, 3
)
SELECT model_id,
       code_of,
       code,
       version,
       first_run,
       executions,
       lag(code) OVER (PARTITION BY model_id, code_of ORDER BY first_run) AS previous_code
FROM firsts;
