"""The solc bridge (npm solc behind a native-style CLI), driven the way py-solc-x drives native solc."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

LIBRARY = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;
library Numbers { function one() internal pure returns (uint256) { return 1; } }
"""


def _importer(import_path: str) -> str:
    return f"""// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;
import {{Numbers}} from "{import_path}";
contract Main {{ function f() external pure returns (uint256) {{ return Numbers.one(); }} }}
"""


def _compile(bridge: Path, source: str, *options: str) -> dict:
    request = {
        "language": "Solidity",
        "sources": {"Main.sol": {"content": source}},
        "settings": {"outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
    }
    result = subprocess.run(
        [str(bridge), "--standard-json", *options],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _errors(output: dict) -> list[str]:
    return [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]


def test_version_answers_in_native_format(solc_bridge, solc_version):
    result = subprocess.run([str(solc_bridge), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "solc, the solidity compiler commandline interface"
    assert re.fullmatch(rf"Version: {re.escape(solc_version)}\+commit\.[0-9a-f]{{8}}\..+", lines[1]), lines


def test_py_solc_x_sees_the_bridge_as_an_installed_compiler(solc_bridge, solc_version):
    import solcx
    from solcx.install import get_executable
    from solcx.wrapper import get_solc_version

    assert solc_version in {str(version) for version in solcx.get_installed_solc_versions()}
    assert get_executable(solc_version) == solc_bridge
    assert str(get_solc_version(solc_bridge, with_commit_hash=False)) == solc_version


def test_installed_bridge_is_the_repository_version(solc_bridge, solc_version, project_root):
    installed = solc_bridge.parent / f"bridge-{solc_version}" / "solc-bridge.cjs"
    assert installed.read_bytes() == (project_root / "tools" / "solc-bridge.cjs").read_bytes()


def test_standard_json_resolves_imports_through_base_path(solc_bridge, tmp_path):
    base = tmp_path / "base"
    (base / "lib").mkdir(parents=True)
    (base / "lib" / "Numbers.sol").write_text(LIBRARY)
    output = _compile(solc_bridge, _importer("lib/Numbers.sol"), "--base-path", str(base))
    assert _errors(output) == []
    assert set(output["sources"]) == {"Main.sol", "lib/Numbers.sol"}
    assert len(output["contracts"]["Main.sol"]["Main"]["evm"]["bytecode"]["object"]) > 100


def test_import_outside_the_allowed_paths_is_refused(solc_bridge, tmp_path):
    base, outside = tmp_path / "base", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    secret = outside / "Numbers.sol"
    secret.write_text(LIBRARY)
    output = _compile(solc_bridge, _importer(str(secret)), "--base-path", str(base))
    errors = _errors(output)
    assert len(errors) == 1
    assert f"File outside of allowed directories: {secret}" in errors[0]
    assert "contracts" not in output or not output["contracts"].get("Main.sol")


def test_allow_paths_admits_an_outside_import(solc_bridge, tmp_path):
    base, outside = tmp_path / "base", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (outside / "Numbers.sol").write_text(LIBRARY)
    output = _compile(
        solc_bridge, _importer(str(outside / "Numbers.sol")), "--base-path", str(base), "--allow-paths", str(outside)
    )
    assert _errors(output) == []
    assert output["contracts"]["Main.sol"]["Main"]["evm"]["bytecode"]["object"]


def test_missing_import_names_the_searched_paths(solc_bridge, tmp_path):
    output = _compile(solc_bridge, _importer("lib/Missing.sol"), "--base-path", str(tmp_path))
    errors = _errors(output)
    assert len(errors) == 1
    assert f"File not found: lib/Missing.sol (searched {tmp_path})" in errors[0]


def test_unknown_option_exits_non_zero_with_a_message(solc_bridge):
    result = subprocess.run([str(solc_bridge), "--bogus"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "solc-bridge: unsupported option --bogus (this bridge serves --version and --standard-json)"
    )


def test_no_mode_exits_non_zero_with_a_message(solc_bridge):
    result = subprocess.run([str(solc_bridge)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip() == "solc-bridge: no input mode given (use --standard-json or --version)"


def test_option_without_its_value_exits_non_zero_with_a_message(solc_bridge):
    result = subprocess.run([str(solc_bridge), "--base-path"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip() == "solc-bridge: option --base-path needs a value"
