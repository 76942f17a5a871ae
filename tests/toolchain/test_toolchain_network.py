"""The shared --network option: bare names work, full choices pass, a missing Alchemy key is one line."""

from __future__ import annotations

import subprocess

import pytest

from tracker.cli.options import normalize_network_choice


@pytest.mark.parametrize(
    "given, expected",
    [
        ("sepolia", "ethereum:sepolia"),
        ("local", "ethereum:local"),
        ("ethereum:local:foundry", "ethereum:local:foundry"),
        ("ethereum:sepolia:alchemy", "ethereum:sepolia:alchemy"),
        ("ethereum", "ethereum"),
        (None, None),
    ],
)
def test_bare_network_names_gain_the_ecosystem(given, expected):
    assert normalize_network_choice(given) == expected


def test_deploy_to_sepolia_without_alchemy_key_is_one_line(ape_executable, project_root, venv_env):
    env = {k: v for k, v in venv_env.items() if k not in ("WEB3_ALCHEMY_API_KEY", "WEB3_ALCHEMY_PROJECT_ID")}
    result = subprocess.run(
        [ape_executable, "run", "deploy", "--network", "sepolia"],
        cwd=project_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    assert "WEB3_ALCHEMY_API_KEY" in lines[0]
