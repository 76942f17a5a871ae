"""`ape run deploy --ens-name` with ENS as it is deployed today, on anvil: wrapped and unwrapped
.eth names, a wrapped subname its parent's holder created, managers approved on the registry or
the NameWrapper, and names expired or in their grace period (anvil's clock moved forward).

Each refusal is checked word for word: it names the real holder, the expiry where there is one,
and what to do.
"""

from __future__ import annotations

import datetime

import pytest

from tracker.dev import ens as dev_ens
from tracker.identity import ens
from tracker.identity.deploy import IdentityRequest, set_up_identity

URI = "https://tracker.example.org"
DAY = 24 * 3600
pytestmark = pytest.mark.anvil


@pytest.fixture
def request_for(make_certificate):
    """`request_for(name)`: what `ape run deploy --ens-name NAME --uri URI --cert FILE` asks."""
    return lambda name: IdentityRequest(ens_name=name, uri=URI, certificate_path=make_certificate().path)


def statuses(report) -> dict[str, str]:
    return {step.step: step.status for step in report.steps}


def date(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def wrapper():
    return dev_ens.standin("StandInNameWrapper", ens.SEPOLIA.name_wrapper)


def public_resolver():
    return dev_ens.standin("StandInPublicResolver", ens.SEPOLIA.public_resolver)


def assert_linked(name: str, account) -> None:
    assert ens.resolve_address(name) == account.address
    assert ens.text_record(name, "url") == URI
    assert ens.reverse_name(account.address) == name


def test_a_wrapped_name_registered_through_the_controller_is_linked(request_for, client, give_name):
    name = give_name("wrapped.eth", client)
    holding = ens.name_holding(name)
    assert (holding.wrapped, holding.registry_owner, holding.holder) == (True, ens.SEPOLIA.name_wrapper, client.address)

    report = set_up_identity(client, request_for(name))

    assert statuses(report)["ENS resolver"] == "skipped"  # the controller set the public resolver
    assert [statuses(report)[step] for step in ("ENS addr", "ENS text url", "ENS reverse record")] == ["done"] * 3
    assert_linked(name, client)


def test_an_unwrapped_name_is_linked_through_the_registry(request_for, client, give_name):
    name = give_name("plain.eth", client, resolver=None)
    wrapper().unwrapETH2LD(ens.labelhash("plain"), client.address, client.address, sender=client)
    holding = ens.name_holding(name)
    assert (holding.wrapped, holding.holder) == (False, client.address)

    report = set_up_identity(client, request_for(name))

    resolver_step = next(step for step in report.steps if step.step == "ENS resolver")
    assert resolver_step.status == "done"
    assert "NameWrapper" not in resolver_step.detail
    assert ens.resolver_of(name) == ens.SEPOLIA.public_resolver
    assert_linked(name, client)


def test_a_wrapped_subname_created_by_the_parent_is_linked_through_the_namewrapper(
    request_for, client, stranger, give_name
):
    parent = give_name("acme-parent.eth", stranger, fuses=ens.CANNOT_UNWRAP)
    name = dev_ens.create_subname(
        stranger, f"protocol.{parent}", client.address, fuses=ens.PARENT_CANNOT_CONTROL | ens.CANNOT_UNWRAP
    )
    holding = ens.name_holding(name)
    assert (holding.wrapped, holding.holder) == (True, client.address)
    assert holding.fuses & ens.PARENT_CANNOT_CONTROL

    report = set_up_identity(client, request_for(name))

    resolver_step = next(step for step in report.steps if step.step == "ENS resolver")
    assert (resolver_step.status, resolver_step.detail) == (
        "done",
        f"{name} -> {ens.SEPOLIA.public_resolver} (through the NameWrapper)",
    )
    assert_linked(name, client)


def test_a_subname_whose_resolver_fuse_is_burned_is_refused(request_for, client, stranger, give_name, chain):
    parent = give_name("locked-parent.eth", stranger, fuses=ens.CANNOT_UNWRAP)
    name = dev_ens.create_subname(
        stranger,
        f"locked.{parent}",
        client.address,
        fuses=ens.PARENT_CANNOT_CONTROL | ens.CANNOT_UNWRAP | ens.CANNOT_SET_RESOLVER,
    )
    height = chain.blocks.height

    with pytest.raises(ens.NameNotControlledError) as error:
        set_up_identity(client, request_for(name))

    assert str(error.value) == (
        f"ENS name {name} has no resolver and its CANNOT_SET_RESOLVER fuse is burned: no resolver can be set"
    )
    assert chain.blocks.height == height


def test_a_manager_approved_on_the_namewrapper_needs_the_resolvers_approval_too(
    request_for, client, stranger, give_name
):
    name = give_name("managed.eth", stranger, resolver=None)
    wrapper().setApprovalForAll(client.address, True, sender=stranger)

    with pytest.raises(ens.NameNotControlledError) as error:
        set_up_identity(client, request_for(name))

    resolver = ens.SEPOLIA.public_resolver
    assert str(error.value) == (
        f"{client.address} manages ENS name {name} as NameWrapper manager for its holder {stranger.address}, "
        f"but the resolver {resolver} takes records only from {stranger.address} or an account it approved "
        f"there: let {stranger.address} approve {client.address} on the resolver (setApprovalForAll, or "
        f"approve for this name), or deploy with {stranger.address}"
    )

    public_resolver().approve(ens.namehash(name), client.address, True, sender=stranger)
    report = set_up_identity(client, request_for(name))

    assert statuses(report)["ENS resolver"] == "done"  # set by the manager through the NameWrapper
    assert_linked(name, client)
    assert ens.name_holding(name).holder == stranger.address  # managing does not move the name


def test_an_operator_approved_on_the_registry_links_an_unwrapped_name(request_for, client, stranger, give_name):
    name = give_name("operated.eth", stranger)
    wrapper().unwrapETH2LD(ens.labelhash("operated"), stranger.address, stranger.address, sender=stranger)
    ens.registry().setApprovalForAll(client.address, True, sender=stranger)
    public_resolver().setApprovalForAll(client.address, True, sender=stranger)

    report = set_up_identity(client, request_for(name))

    assert statuses(report)["ENS addr"] == "done"
    assert_linked(name, client)


def test_a_name_in_its_grace_period_is_refused_with_its_dates(request_for, client, give_name, chain):
    name = give_name("late.eth", client, duration=28 * DAY)
    expiry = ens.name_holding(name).expiry
    dev_ens.advance_time(29 * DAY)

    with pytest.raises(ens.NameNotControlledError) as error:
        set_up_identity(client, request_for(name))

    assert str(error.value) == (
        f"ENS name late.eth expired on {date(expiry)} and is in its grace period until "
        f"{date(expiry + 90 * DAY)}: its holder {client.address} must renew it before it can be linked"
    )


def test_an_expired_name_is_refused_with_its_dates(request_for, client, give_name):
    name = give_name("gone.eth", client, duration=28 * DAY)
    expiry = ens.name_holding(name).expiry
    dev_ens.advance_time(28 * DAY + 91 * DAY)

    with pytest.raises(ens.NameNotControlledError) as error:
        set_up_identity(client, request_for(name))

    assert str(error.value) == (
        f"ENS name gone.eth expired on {date(expiry)} and its grace period ended on {date(expiry + 90 * DAY)}: "
        f"register it again to {client.address} first"
    )
    assert ens.name_holding(name).holder is None  # the NameWrapper no longer names a holder
