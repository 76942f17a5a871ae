"""Publishing: directory and S3 targets, the HTTPS protocol server, and server certificates."""
