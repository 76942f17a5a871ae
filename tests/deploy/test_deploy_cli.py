"""`ape run deploy` as a user runs it: a subprocess against the suite's anvil, JSON or a table on
stdout, and one `Error:` line with a non-zero exit for each bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tracker.identity import ens

PROJECT = Path(__file__).resolve().parents[2]
URI = "https://tracker.example.org"


def ape_run(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("WEB3_ALCHEMY")}
    environment.update(env or {})
    return subprocess.run(
        ["ape", "run", *arguments], cwd=PROJECT, env=environment, capture_output=True, text=True, timeout=180
    )


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


@pytest.fixture
def node_uri(chain) -> str:
    """The suite's anvil, which the command reaches over RPC like any node."""
    if chain.provider.name != "foundry":
        pytest.skip(
            "the command connects over RPC: needs anvil (ape test tests/deploy --network ethereum:local:foundry)"
        )
    return chain.provider.uri


def test_deploy_command_sets_everything_up_then_changes_nothing(node_uri, client, give_name, make_certificate):
    name = give_name("cli.eth", client, resolver=None)
    arguments = (
        "deploy", "--network", node_uri, "--account", "TEST::3", "--client-id", "cli",
        "--ens-name", name, "--uri", URI, "--cert", str(make_certificate().path),
    )  # fmt: skip

    first = ape_run(*arguments, "--json")
    second = ape_run(*arguments)

    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert [step["status"] for step in report["steps"]] == ["done"] * 7
    assert ens.resolve_address(name) == client.address
    assert second.returncode == 0, second.stderr
    assert f"InstanceTracker at {report['contract']}" in second.stdout
    assert second.stdout.count("skipped") == 7
    assert "done" not in second.stdout


def test_name_the_account_does_not_control(node_uri, client, stranger, give_name):
    name = give_name("theirs.eth", stranger)

    result = ape_run("deploy", "--network", node_uri, "--account", "TEST::3", "--ens-name", name, "--uri", URI)

    assert result.returncode == 1
    assert last_line(result.stderr) == (
        f"Error: ENS name theirs.eth is held by {stranger.address} (wrapped: the NameWrapper's token), not by "
        f"{client.address}: deploy with {stranger.address}, or let it approve {client.address} as a manager on "
        "the NameWrapper (setApprovalForAll)"
    )


def test_unknown_account(node_uri):
    result = ape_run("deploy", "--network", node_uri, "--account", "no-such-alias")

    assert result.returncode == 1
    assert (
        last_line(result.stderr)
        == "Error: no ape account named 'no-such-alias' (see `ape accounts list`; TEST::N names a test account)"
    )


def test_sepolia_without_an_alchemy_key():
    result = ape_run("deploy", "--network", "sepolia")

    assert result.returncode == 1
    assert last_line(result.stderr).startswith(
        "Error: network ethereum:sepolia goes through Alchemy: set WEB3_ALCHEMY_API_KEY"
    )


def test_wrong_chain(node_uri):
    result = ape_run(
        "deploy", "--network", "ethereum:sepolia:node", "--account", "TEST::3", env={"SEPOLIA_NODE_URI": node_uri}
    )

    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "Error: cannot connect to ethereum:sepolia:node: Provider connected to chain ID '31337', "
        "which does not match network chain ID '11155111'. Are you connected to 'sepolia'?"
    )


def test_deploy_through_a_hosted_provider_at_its_limits(node_uri, client, give_name, make_certificate):
    """The whole identity set up through the hosted-provider emulator at a free tier's limits
    (60 ms a request, 330 compute units per second, HTTP 429 past them): every step done, the
    provider's refusals waited out by ape's and web3's retries instead of ending the run."""
    from support.hosted_provider import HostedProvider, Rules

    name = give_name("hosted.eth", client, resolver=None)
    rules = Rules(latency=0.06, compute_units_per_second=330, log_rules=True, max_batch=1000)
    with HostedProvider(node_uri, rules) as provider:
        result = ape_run(
            "deploy", "--network", provider.url, "--account", "TEST::3", "--client-id", "hosted",
            "--ens-name", name, "--uri", URI, "--cert", str(make_certificate().path), "--json",
        )  # fmt: skip
        counters = provider.counters
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    statuses = [step["status"] for step in report["steps"]]
    # the contract itself may be deployed already by an earlier test; everything of the new name is done
    assert statuses[0] in ("done", "skipped") and statuses[1:] == ["done"] * 6, report["steps"]
    assert ens.resolve_address(name) == client.address
    assert counters.calls["eth_sendRawTransaction"] >= 6  # it really went through the emulator
