"""Every ape plugin the project pins loads: a plugin that fails to import silently drops its commands."""

from __future__ import annotations

import subprocess

REQUIRED_PLUGINS = ("alchemy", "ens", "foundry", "solidity")


def test_every_plugin_loads(ape_executable, project_root, venv_env):
    result = subprocess.run(
        [ape_executable, "plugins", "list"],
        cwd=project_root,
        env=venv_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Unable to load" not in output
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line.strip()}
    assert set(REQUIRED_PLUGINS) <= listed, output
