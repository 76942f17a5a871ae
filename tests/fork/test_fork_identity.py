"""Through a fork of Sepolia: the deployment, ENS link, certificate and client id that
`ape run deploy --network sepolia` set up, and the contract at work on the fork."""

from __future__ import annotations

from tracker.chain import canonical
from tracker.chain.contract import TrackerContract
from tracker.documents.facts import chain_head
from tracker.documents.ids import sha256_hex
from tracker.identity import ens
from tracker.identity.deploy import IdentityRequest, set_up_identity
from tracker.publish import certificates
from tracker.verify.ens_resolution import EnsResolution

SEPOLIA_CHAIN_ID = 11155111


def test_the_fork_is_sepolia_with_the_canonical_deployment(chain, owner):
    assert chain.chain_id == SEPOLIA_CHAIN_ID
    # `ape run deploy` put it at the address computed offline from the code, as on every chain
    assert bytes(chain.provider.get_code(canonical.address())) == canonical.runtime_code()
    assert TrackerContract.at().is_canonical


def test_the_ens_name_links_the_account_and_the_uri(fork_identity):
    assert ens.ens_available()
    assert ens.name_holding(fork_identity.ens_name).holder == fork_identity.account
    assert ens.resolve_address(fork_identity.ens_name) == fork_identity.account
    assert ens.text_record(fork_identity.ens_name, "url") == fork_identity.uri
    assert ens.reverse_name(fork_identity.account) == fork_identity.ens_name


def test_the_link_resolves_through_the_universal_resolver_as_wallets_do(fork_identity):
    resolution = EnsResolution(timeout=10)

    reverse = resolution.reverse_name(fork_identity.account)
    forward = resolution.address(fork_identity.ens_name)
    url = resolution.text(fork_identity.ens_name, "url")

    assert reverse is not None and reverse.value == fork_identity.ens_name
    assert forward is not None and forward.value == fork_identity.account
    assert url is not None and url.value == fork_identity.uri


def test_the_registered_fingerprint_is_the_certificates_and_signed_by_the_account(fork_identity):
    record = TrackerContract.at().certificate(fork_identity.account)

    expected = certificates.fingerprint(certificates.load_certificate(fork_identity.certificate))
    assert record.fingerprint == expected
    assert certificates.recover_fingerprint_signer(record.fingerprint, record.signature) == fork_identity.account


def test_the_client_id_is_registered(fork_identity):
    assert TrackerContract.at().client_id(fork_identity.account) == fork_identity.client_id


def test_deploying_again_would_change_nothing(fork_identity, accounts):
    account = accounts[fork_identity.account]  # impersonated on the fork: only reads are needed
    request = IdentityRequest(
        client_id=fork_identity.client_id,
        ens_name=fork_identity.ens_name,
        uri=fork_identity.uri,
        certificate_path=fork_identity.certificate,
        dry_run=True,
    )

    report = set_up_identity(account, request)

    assert [step.status for step in report.steps] == ["skipped"] * 7


def test_the_contract_registers_and_reads_an_execution_on_the_fork(owner):
    tracker = TrackerContract.at(sender=owner)
    execution = sha256_hex("fork execution")
    model, instance = sha256_hex("fork model"), sha256_hex("fork instance")
    states = [sha256_hex(f"fork state {n}") for n in range(3)]

    tracker.send([tracker.register_execution_call(str(owner.address), execution, model, instance, states)])

    record = tracker.instance(str(owner.address), execution)
    assert (record.owner, record.state_count) == (owner.address[2:].lower(), 3)
    assert record.head == chain_head(execution, model, instance, states)
    assert tracker.model_registered_at(str(owner.address), model) is not None
