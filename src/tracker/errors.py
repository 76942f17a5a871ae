"""Failures a user can act on, and the one place where commands turn them into a line of text."""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

import click

F = TypeVar("F", bound=Callable)


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


def command_boundary(function: F) -> F:
    """Runs a command body and prints any `TrackerError` as `Error: <cause>` with a non-zero exit."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except TrackerError as error:
            click.echo(f"Error: {one_line(error)}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except SystemExit as stop:
            if stop.code == 130:  # ape's own SIGINT handler turns Ctrl-C into sys.exit(130)
                click.echo("Interrupted.", err=True)
            raise

    return wrapper  # type: ignore[return-value]
