"""Fixtures for the toolchain tests: the project root, the venv's executables, the installed solc bridge."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def solc_version() -> str:
    """The compiler version ape-config.yaml pins (bin/setup installs the same one behind the bridge)."""
    import yaml

    config = yaml.safe_load((PROJECT_ROOT / "ape-config.yaml").read_text())
    return str(config["solidity"]["version"])


@pytest.fixture(scope="session")
def venv_env() -> dict[str, str]:
    """The environment with the venv's bin (ape, anvil) first on PATH, as bin/test sets it."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.fixture(scope="session")
def ape_executable() -> str:
    path = Path(sys.executable).parent / "ape"
    assert path.is_file(), f"no ape executable beside {sys.executable}"
    return str(path)


@pytest.fixture(scope="session")
def solc_bridge(solc_version: str) -> Path:
    """The compiler entry bin/setup installs where py-solc-x (and so ape-solidity) looks."""
    import solcx

    entry = Path(solcx.get_solcx_install_folder()) / f"solc-v{solc_version}"
    assert entry.is_file(), f"{entry} is missing: run bin/setup"
    return entry
