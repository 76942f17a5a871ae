"""Documents and their identifiers: what gets hashed. Pure: imports nothing of ours but the error base classes."""
