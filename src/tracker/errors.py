"""Failures a user can act on, and the one place where commands turn them into a line of text."""

from __future__ import annotations


class TrackerError(Exception):
    """Base of every expected failure: its message is printed as one line, without a traceback."""

    exit_code = 1


class ConfigurationError(TrackerError):
    """A setting, option or environment variable is missing or wrong."""


class ContractNotFoundError(TrackerError):
    """No InstanceTracker is deployed (or recorded) on the chosen network."""


class ChainError(TrackerError):
    """The chain refused or could not carry out a call (revert, funds, connection)."""


def one_line(message: object) -> str:
    """Collapses a message to its first non-empty line, the form every command prints."""
    for line in str(message).splitlines():
        if line.strip():
            return line.strip()
    return type(message).__name__ if not isinstance(message, str) else "unknown error"
