"""A client's on-chain identity: deployment, client id, ENS link and certificate fingerprint, and new accounts."""
