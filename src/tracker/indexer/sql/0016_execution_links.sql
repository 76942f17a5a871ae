-- Which execution started which. The contract's events name instances and states, never how
-- executions relate: a Distributed Map's child or a startExecution task's child names its parent
-- and the visit in its instance document, and the parent's state document for that visit names a
-- children document listing the children. So the links are loaded from published documents
-- (`ape run index --documents DIR`), each kept only when both sides agree (`tracker.indexer.links`),
-- and the views show a link only between instances the chain holds, under one owner, from a
-- state the chain registered for the parent.
-- Keyed by child and parent state: a document naming a state the chain never registered is kept
-- but shown by no view, and cannot displace the link of the registered one.
CREATE TABLE execution_link (
    child_instance_document bytea NOT NULL CHECK (octet_length(child_instance_document) = 32),
    parent_instance_document bytea NOT NULL CHECK (octet_length(parent_instance_document) = 32),
    parent_state_id bytea NOT NULL CHECK (octet_length(parent_state_id) = 32),
    parent_event_id bigint NOT NULL,
    parent_state_name text NOT NULL,
    map_run_arn text,
    children_document bytea NOT NULL CHECK (octet_length(children_document) = 32),
    PRIMARY KEY (child_instance_document, parent_state_id)
);
CREATE INDEX execution_link_by_parent ON execution_link (parent_instance_document);

-- Each link between registered instances: the parent's visit, the child and how it stands.
CREATE VIEW execution_tree AS
SELECT p.contract_id,
       encode(p.owner, 'hex') AS owner,
       encode(l.parent_instance_document, 'hex') AS parent_instance_id,
       encode(p.execution, 'hex') AS parent_execution_id,
       l.parent_state_name,
       l.parent_event_id,
       encode(l.parent_state_id, 'hex') AS parent_state_id,
       l.map_run_arn,
       encode(l.child_instance_document, 'hex') AS child_instance_id,
       encode(c.execution, 'hex') AS child_execution_id,
       encode(m.model_id, 'hex') AS child_model_id,
       c.final AS child_final,
       c.state_count AS child_states,
       c.attempts AS child_attempts
FROM execution_link l
JOIN instance p ON p.instance_document = l.parent_instance_document
JOIN instance c ON c.instance_document = l.child_instance_document
               AND c.contract_id = p.contract_id AND c.owner = p.owner
LEFT JOIN model m ON m.model_sk = c.model_sk
WHERE EXISTS (SELECT 1 FROM state s WHERE s.instance_sk = p.instance_sk AND s.state_id = l.parent_state_id);

-- Per visit that started executions (a Map Run, a startExecution task): its children, how many
-- are final, and the states they registered.
CREATE VIEW children_per_visit AS
SELECT contract_id, owner, parent_instance_id, parent_execution_id, parent_state_name, parent_event_id, map_run_arn,
       count(*) AS children,
       count(*) FILTER (WHERE child_final) AS final_children,
       sum(child_states) AS child_states
FROM execution_tree
GROUP BY contract_id, owner, parent_instance_id, parent_execution_id, parent_state_name, parent_event_id, map_run_arn;
