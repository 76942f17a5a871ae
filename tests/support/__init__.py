"""Stand-ins the suites share: a hosted-provider emulator in front of anvil, table snapshots."""
