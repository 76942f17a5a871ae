"""The indexer: InstanceTracker logs from a chain into a Postgres star schema, and reports from it."""
