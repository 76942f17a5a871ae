"""Checks 4 and 5 with ENS installed as Sepolia has it on anvil (names registered through the
controller, so wrapped): the whole chain of trust passes, and a wrong url record, a missing or
foreign reverse record, and a certificate signature by another key are each named by the failing
check.

ENS is installed with `anvil_setCode`, so this module needs anvil (marker `anvil`: bin/test runs it
with `--network ethereum:local:foundry`).
"""

from __future__ import annotations

import json

import pytest
from eth_abi import encode
from eth_utils import keccak

from tracker.dev import ens as dev_ens
from tracker.identity import ens
from tracker.publish.certificates import recover_fingerprint_signer, sign_fingerprint
from tracker.verify.locate import locate_protocol
from tracker.verify.report import CHECK_CERTIFICATE, CHECK_ENS, VerifyOptions
from tracker.verify.verifier import verify_protocol

NAME = "verifier-client.eth"
# Storage slot of InstanceTracker._certificates: after instances, _heads, pendingOwner,
# _modelRegisteredAt, _anchors, isOperator and clientIdOf.
CERTIFICATES_SLOT = 7
FAST = VerifyOptions(timeout=3.0)
pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module", autouse=True)
def on_anvil(chain):
    if chain.provider.name != "foundry":
        pytest.skip(
            "needs anvil (ENS via anvil_setCode): ape test tests/verify/test_verify_ens.py --network ethereum:local:foundry"
        )


@pytest.fixture(scope="module")
def local_ens(on_anvil, accounts):
    return dev_ens.install_local_ens(accounts[0])


@pytest.fixture
def client(accounts):
    return accounts[5]


@pytest.fixture
def linked(publish_execution, client, local_ens, accounts):
    """An execution published by `client`, whose ENS name resolves to it, names it back, and has url = the server."""
    published = publish_execution(client)
    if ens.name_holding(NAME).holder is None:
        dev_ens.register_name(client, NAME)
    ens.link_identity(client, NAME, published.server.origin)
    return published


def test_everything_passes_with_ens_and_the_registered_certificate(linked, client):
    report = verify_protocol(linked.url, linked.tracker, FAST)
    assert report.passed and report.verdict == "passed", [c.to_json() for c in report.checks]
    assert report.check(CHECK_ENS).reason == (
        f"{str(client.address).lower()} <-> {NAME} (name onchain; reverse onchain), url {linked.server.origin}"
    )


def test_instance_id_and_owner_find_the_protocol_through_ens_and_url(linked):
    assert locate_protocol(linked.tracker, linked.execution.instance_id, linked.owner_address) == linked.url


def test_an_ens_name_is_taken_as_the_owner(linked):
    from tracker.verify.locate import owner_address

    assert owner_address(NAME) == linked.owner_address


def test_url_record_pointing_elsewhere_fails_check_4(linked, client):
    ens.link_identity(client, NAME, "https://elsewhere.example:8443")
    report = verify_protocol(linked.url, linked.tracker, FAST)
    assert report.failed_checks == [CHECK_ENS]
    assert report.check(CHECK_ENS).reason == (
        f"{NAME} url record is https://elsewhere.example:8443, not the protocol's origin {linked.server.origin}"
    )


def test_address_without_reverse_record_fails_check_4(publish_execution, local_ens, accounts):
    stranger = accounts[6]
    published = publish_execution(stranger)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_ENS]
    assert report.check(CHECK_ENS).reason == f"{str(stranger.address).lower()} has no ENS reverse record"
    from tracker.verify.locate import ProtocolNotFoundError

    with pytest.raises(ProtocolNotFoundError) as error:
        locate_protocol(published.tracker, published.execution.instance_id, published.owner_address)
    assert str(error.value) == (
        f"the instance owner {str(stranger.address).lower()} has no ENS reverse record: give the protocol URL"
    )


def test_reverse_record_naming_someone_elses_name_fails_check_4(linked, client, local_ens, accounts, publish_execution):
    from ape.contracts import ContractInstance

    impostor = accounts[7]
    published = publish_execution(impostor)
    registrar = ContractInstance(local_ens.reverse_registrar, ens.contract_type("ReverseRegistrar"))
    registrar.setName(NAME, sender=impostor)  # anyone may claim any name in their own reverse record
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.failed_checks == [CHECK_ENS]
    assert report.check(CHECK_ENS).reason == (
        f"forward and reverse disagree: the reverse record of {str(impostor.address).lower()} names {NAME}, "
        f"but {NAME} resolves to {client.address}"
    )


def _write_signature(chain, contract_address: str, account: str, signature: bytes) -> None:
    """Overwrites the stored signature of `account`'s certificate (a 65-byte `bytes` in long form)."""
    base = int.from_bytes(keccak(encode(["address", "uint256"], [account, CERTIFICATES_SLOT])), "big")
    length_slot = base + 2
    data_slot = int.from_bytes(keccak(length_slot.to_bytes(32, "big")), "big")
    words = [signature[i : i + 32].ljust(32, b"\0") for i in range(0, len(signature), 32)]
    writes = [(length_slot, (len(signature) * 2 + 1).to_bytes(32, "big"))]
    writes += [(data_slot + index, word) for index, word in enumerate(words)]
    for slot, value in writes:
        chain.provider.make_request("anvil_setStorageAt", [contract_address, hex(slot), "0x" + value.hex()])


def test_fingerprint_signature_by_another_key_fails_check_5(linked, client, accounts, chain):
    foreign = sign_fingerprint(accounts[8], linked.server.fingerprint)
    _write_signature(chain, linked.tracker.address, str(client.address), foreign)
    record = linked.tracker.certificate(str(client.address))
    assert record.signature == foreign  # the chain now holds a signature by another key
    report = verify_protocol(linked.url, linked.tracker, FAST)
    assert report.failed_checks == [CHECK_CERTIFICATE]
    signer = recover_fingerprint_signer(linked.server.fingerprint, foreign)
    assert signer == accounts[8].address
    assert report.check(CHECK_CERTIFICATE).reason == (
        f"registered signature recovers to {signer}, not to {str(client.address).lower()}"
    )


def test_anchored_execution_passes_all_five_checks_over_json_rpc(publish_execution, client, local_ens, accounts):
    """Anchor mode on anvil: StatesAnchored logs and Merkle proofs read over JSON-RPC, pinned by the termination."""
    published = publish_execution(client, anchored=True)
    published.end("SUCCEEDED", final=True)
    if ens.name_holding(NAME).holder is None:
        dev_ens.register_name(client, NAME)
    ens.link_identity(client, NAME, published.server.origin)
    report = verify_protocol(published.url, published.tracker, FAST)
    assert report.passed, [c.to_json() for c in report.checks if not c.ok]
    assert all("anchored under" in state.reason for state in report.states)


HOSTED_STATES = 120


def test_the_command_through_a_hosted_provider_in_a_few_round_trips(publish_execution, client, local_ens):
    """`ape run verify` through the hosted-provider emulator at a free tier's limits (60 ms a
    request, 330 compute units per second, HTTP 429 past them): every check passes, and the
    verification takes a fixed handful of round trips however many states (a verifier reading
    per state would need more than a hundred here, and trip over the budget)."""
    from click.testing import CliRunner
    from support.hosted_provider import HostedProvider, Rules

    from tracker.chain.contract import TrackerContract

    published = publish_execution(client, states=HOSTED_STATES, label="hosted")
    if ens.name_holding(NAME).holder is None:
        dev_ens.register_name(client, NAME)
    ens.link_identity(client, NAME, published.server.origin)
    rules = Rules(latency=0.06, compute_units_per_second=330, log_rules=True, max_batch=1000)
    with HostedProvider(chain_uri(), rules) as provider:
        arguments = [published.url, "--json", "--network", f"ethereum:local:{provider.url}"]
        arguments += ["--contract", published.tracker.address]
        result = CliRunner(mix_stderr=False).invoke(verify_script().cli, arguments, catch_exceptions=False)
        command_trips = provider.counters.requests
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["verdict"] == "passed"

        from ape import networks

        with networks.parse_network_choice(provider.url):
            tracker = TrackerContract.at(published.tracker.address)
            tracker.deployment_block()
            before = provider.counters.requests
            report = verify_protocol(published.url, tracker, FAST)
            trips = provider.counters.requests - before
    assert report.verdict == "passed", [c.to_json() for c in report.checks]
    assert len(report.states) == HOSTED_STATES
    assert trips <= 15, f"{trips} round trips for one verification"
    assert command_trips <= 30, f"the command took {command_trips} round trips"


def chain_uri() -> str:
    from ape import chain

    return chain.provider.uri


def verify_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "verify.py"
    spec = importlib.util.spec_from_file_location("verify_script_hosted", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Peak RSS of `ape run verify` on a small protocol: measured 154-158 MB here (eth-ape 0.8, web3 7,
# Python 3.11), 252 MB before ENS names skipped web3's normaliser (+75 MB), contract reads
# skipped ape's contract objects (IPython, +40 MB) and `ape run` stopped importing the indexer
# and the server (+24 MB). The bound leaves about 30 MB for other versions of those libraries and
# still fails if any one of those comes back.
COMMAND_PEAK_RSS_MB = 190


def test_the_command_verifies_a_small_protocol_in_little_memory(linked):
    """`ape run verify` in its own process, as a user runs it: every check passes, and the kernel's
    count of its peak resident memory stays under COMMAND_PEAK_RSS_MB."""
    import sys
    from pathlib import Path

    from tracker.dev.memory import run_measured

    root = Path(__file__).resolve().parents[2]
    command = [str(Path(sys.executable).parent / "ape"), "run", "verify", linked.url, "--json"]
    command += ["--network", f"ethereum:local:{chain_uri()}", "--contract", linked.tracker.address]
    measured = run_measured(command, cwd=root)
    assert measured.exit_code == 0, measured.stderr.decode(errors="replace")[-500:]
    output = measured.stdout.decode()
    assert json.loads(output[output.find("{") :])["verdict"] == "passed"
    assert 50 < measured.peak_rss_mb <= COMMAND_PEAK_RSS_MB, f"peak RSS {measured.peak_rss_mb} MB"
