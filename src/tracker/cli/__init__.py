"""What every script shares: the options, the connection to a chain and the command boundary. Click lives only here and in scripts/."""
