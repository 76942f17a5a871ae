"""The indexer: InstanceTracker logs from a chain into a Postgres star schema, and reports from it."""

# The Postgres schema the indexer writes to by default (here, so that `ape run index` builds its
# options without importing psycopg).
DEFAULT_SCHEMA = "tracker"
