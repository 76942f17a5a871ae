"""mkdocs hook: the Ape scripts in scripts/ as importable modules, for the mkdocs-click extension.

`ape run NAME` loads scripts/NAME.py by path, so scripts/ is not a package and nothing can import
it. mkdocs-click imports the module a page names (`:module: scripts.verify`), so before any page
is rendered this hook registers a package called `scripts` whose search path is the scripts/
folder, and imports every script in it afresh (so `mkdocs serve` shows edited options).

Click help is plain text, but mkdocs-click puts it into Markdown, where a placeholder such as
`APE_ACCOUNTS_<ALIAS>_PASSPHRASE` would be read as an HTML tag and vanish. The hook escapes `<`
in the help texts of the imported commands; this changes the objects in the docs build's own
process only, never the scripts.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

import click

PACKAGE = "scripts"
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def on_config(config: Any, **_: Any) -> Any:
    for name in [module for module in sys.modules if module == PACKAGE or module.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    package = types.ModuleType(PACKAGE, "The Ape scripts in scripts/, importable for the docs build.")
    package.__path__ = [str(SCRIPTS)]
    sys.modules[PACKAGE] = package
    for script in sorted(SCRIPTS.glob("*.py")):
        module = importlib.import_module(f"{PACKAGE}.{script.stem}")
        command = getattr(module, "cli", None)
        if isinstance(command, click.Command):
            _escape_help(command)
    return config


def _escape_help(command: click.Command) -> None:
    """Makes the command's and its options' help safe to place in Markdown (see the module docstring)."""
    if command.help:
        command.help = command.help.replace("<", "&lt;")
    for parameter in command.params:
        help_text = getattr(parameter, "help", None)
        if help_text:
            parameter.help = help_text.replace("<", "&lt;")  # type: ignore[attr-defined]
