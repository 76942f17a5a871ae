"""The command boundary: expected failures are one line with a non-zero exit; Ctrl-C is a clean stop."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from tracker.cli.boundary import command_boundary
from tracker.errors import ConfigurationError


def command_raising(failure: BaseException) -> click.Command:
    @click.command()
    @command_boundary
    def failing() -> None:
        raise failure

    return failing


def test_a_tracker_error_is_one_line_and_exit_1():
    result = CliRunner().invoke(command_raising(ConfigurationError("no account\nsecond line")))
    assert result.exit_code == 1
    assert result.output == "Error: no account\n"


@pytest.mark.parametrize(
    "interrupt", [KeyboardInterrupt(), SystemExit(130)], ids=["KeyboardInterrupt", "ape-sigint-exit"]
)
def test_ctrl_c_says_interrupted_and_exits_130(interrupt):
    result = CliRunner().invoke(command_raising(interrupt))
    assert result.exit_code == 130
    assert result.output == "Interrupted.\n"


def test_other_exits_pass_through_silently():
    result = CliRunner().invoke(command_raising(SystemExit(3)))
    assert result.exit_code == 3
    assert result.output == ""
