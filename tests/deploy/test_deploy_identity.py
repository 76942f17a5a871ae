"""set_up_identity on anvil with ENS installed as Sepolia has it: every step, idempotence, dry runs."""

from __future__ import annotations

import datetime

import pytest

from tracker.chain.contract import TrackerContract
from tracker.errors import ConfigurationError
from tracker.identity import ens
from tracker.identity.deploy import IdentityRequest, set_up_identity
from tracker.publish import certificates

URI = "https://tracker.example.org"


def statuses(report) -> dict[str, str]:
    return {step.step: step.status for step in report.steps}


def test_deploy_links_name_registers_certificate_and_client_id(client, give_name, make_certificate):
    name = give_name("acme.eth", client, resolver=None)  # the resolver is set through the NameWrapper
    generated = make_certificate()
    request = IdentityRequest(client_id="acme-1", ens_name=name, uri=URI, certificate_path=generated.path)

    report = set_up_identity(client, request)

    assert set(statuses(report).values()) == {"done"}
    assert ens.resolve_address(name) == client.address
    assert ens.text_record(name, "url") == URI
    assert ens.reverse_name(client.address) == name
    tracker = TrackerContract.at(report.contract)
    record = tracker.certificate(client.address)
    assert record.fingerprint == certificates.fingerprint(generated.certificate) == report.fingerprint
    assert certificates.recover_fingerprint_signer(record.fingerprint, record.signature) == client.address
    assert tracker.client_id(client.address) == "acme-1"

    again = set_up_identity(client, request)

    assert set(statuses(again).values()) == {"skipped"}
    assert again.contract == report.contract
    assert not again.changed


def test_a_new_certificate_rotates_only_the_fingerprint(client, give_name, make_certificate):
    name = give_name("rotate.eth", client)
    first = make_certificate()
    set_up_identity(client, IdentityRequest(ens_name=name, uri=URI, certificate_path=first.path))
    second = make_certificate()

    report = set_up_identity(client, IdentityRequest(ens_name=name, uri=URI, certificate_path=second.path))

    assert statuses(report) == {
        "InstanceTracker": "skipped",
        "ENS resolver": "skipped",
        "ENS addr": "skipped",
        "ENS text url": "skipped",
        "ENS reverse record": "skipped",
        "certificate": "done",
    }
    record = TrackerContract.at(report.contract).certificate(client.address)
    assert record.fingerprint == certificates.fingerprint(second.certificate)


def test_without_cert_the_certificate_the_server_presents_is_registered(client, give_name, tls_server):
    name = give_name("served.eth", client)

    report = set_up_identity(client, IdentityRequest(ens_name=name, uri=tls_server.url))

    record = TrackerContract.at(report.contract).certificate(client.address)
    assert record.fingerprint == certificates.fingerprint(tls_server.certificate)
    assert ens.text_record(name, "url") == tls_server.url


def test_dry_run_estimates_gas_and_sends_nothing(client, give_name, make_certificate, chain):
    name = give_name("dry.eth", client, resolver=None)
    set_up_identity(client, IdentityRequest())  # the contract exists; the rest is new
    height = chain.blocks.height

    report = set_up_identity(
        client,
        IdentityRequest(
            client_id="dry", ens_name=name, uri=URI, certificate_path=make_certificate().path, dry_run=True
        ),
    )

    assert chain.blocks.height == height
    changes = [step for step in report.steps if step.step != "InstanceTracker"]
    assert [step.status for step in changes] == ["would change"] * 6
    assert all(step.gas and step.gas > 20_000 for step in changes)
    assert ens.resolve_address(name) is None
    assert TrackerContract.at(report.contract).certificate(client.address) is None


def test_name_owned_by_another_account_is_refused_naming_the_owner(client, stranger, give_name):
    name = give_name("taken.eth", stranger)

    with pytest.raises(ens.NameNotControlledError) as error:
        set_up_identity(client, IdentityRequest(ens_name=name, uri=URI))

    assert str(error.value) == (
        f"ENS name taken.eth is held by {stranger.address} (wrapped: the NameWrapper's token), not by "
        f"{client.address}: deploy with {stranger.address}, or let it approve {client.address} as a manager on "
        "the NameWrapper (setApprovalForAll)"
    )


def test_unregistered_name_is_refused(client, local_ens):
    with pytest.raises(ens.NameNotControlledError) as error:
        set_up_identity(client, IdentityRequest(ens_name="nobody.eth", uri=URI))

    assert str(error.value) == (
        f"ENS name nobody.eth is not registered: register it to {client.address} first (for a subname, ask "
        "the parent's holder to create it)"
    )


def test_invalid_name_is_refused(client):
    with pytest.raises(ens.InvalidEnsNameError) as error:
        set_up_identity(client, IdentityRequest(ens_name="no spaces.eth", uri=URI))

    assert str(error.value) == "not a valid ENS name: 'no spaces.eth' (expected e.g. myname.eth)"


def test_name_needs_a_uri(client):
    with pytest.raises(ConfigurationError) as error:
        set_up_identity(client, IdentityRequest(ens_name="acme.eth"))

    assert str(error.value) == "--ens-name needs --uri https://HOST (the name's url text record)"


def test_uri_must_be_https(client):
    with pytest.raises(ConfigurationError) as error:
        set_up_identity(client, IdentityRequest(uri="http://tracker.example.org"))

    assert str(error.value) == "--uri must be an https:// URL with a host, got 'http://tracker.example.org'"


def test_client_id_longer_than_the_contract_allows_is_refused(client):
    with pytest.raises(ConfigurationError) as error:
        set_up_identity(client, IdentityRequest(client_id="x" * 65))

    assert str(error.value).startswith("a client id has 1 to 64 bytes, got 65:")


def test_expired_certificate_is_refused_before_anything_is_sent(client, make_certificate, chain):
    expired = make_certificate(valid_from=datetime.timedelta(days=-30), valid_until=datetime.timedelta(days=-1))
    height = chain.blocks.height

    with pytest.raises(certificates.CertificateError) as error:
        set_up_identity(client, IdentityRequest(client_id="late", certificate_path=expired.path))

    assert str(error.value) == f"{expired.path} expired on {expired.certificate.not_valid_after_utc.isoformat()}"
    assert chain.blocks.height == height


def test_unreachable_server_is_one_clear_error(client):
    with pytest.raises(certificates.CertificateFetchError) as error:
        set_up_identity(client, IdentityRequest(uri="https://127.0.0.1:9", fetch_timeout=2))

    assert str(error.value).startswith("cannot fetch the TLS certificate of 127.0.0.1:9: ")


def test_no_ens_registry_is_one_clear_error(client, chain):
    if ens.ens_available():
        chain.provider.set_code(ens.ENS_REGISTRY_ADDRESS, "0x")  # the test's snapshot restores it

    with pytest.raises(ens.EnsNotFoundError) as error:
        set_up_identity(client, IdentityRequest(ens_name="acme.eth", uri=URI))

    assert str(error.value) == f"no ENS registry at {ens.ENS_REGISTRY_ADDRESS} on chain id {chain.chain_id}"
