"""The command boundary: the one place where an expected failure becomes one line of text and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import click

from tracker.errors import TrackerError, one_line

F = TypeVar("F", bound=Callable)


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
