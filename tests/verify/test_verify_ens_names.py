"""ENS names as the verifier normalises, hashes and DNS-encodes them: plain lowercase ASCII names
skip web3's ENSIP-15 normaliser (its tables cost about 70 MB), everything else goes through it,
and both paths give what the full normaliser gives."""

from __future__ import annotations

import subprocess
import sys

import pytest
from ape_ens.utils.namehash import namehash as ape_namehash
from ens.exceptions import InvalidName
from ens.utils import dns_encode_name
from ens.utils import normalize_name as full_ensip15

from tracker.identity import ens

PLAIN = [
    "demo.eth",
    "bench-client.eth",
    "a.b.c.eth",
    "0x1.eth",
    "-x-.eth",
    "abc-d.eth",
    "70997970c51812dc3a010c7d01b50e0d17dc79c8.addr.reverse",
]
# Upper case, non-ASCII, emoji, underscores, a label extension ("ab--"), an empty label.
NOT_PLAIN = [
    "Demo.ETH",
    "ünï.eth",
    "👍.eth",
    "_service.eth",
    "a_b.eth",
    "ab--cd.eth",
    "xn--demo.eth",
    "demo..eth",
    "de mo.eth",
]


@pytest.mark.parametrize("name", PLAIN)
def test_a_plain_name_is_its_own_ensip15_form_without_the_normaliser(name):
    assert ens.is_plain_name(name)
    assert ens.ensip15(name) == full_ensip15(name) == name
    assert ens.normalize_name(name) == name
    assert ens.namehash(name) == bytes(ape_namehash(full_ensip15(name)))
    assert ens.dns_encode(name) == bytes(dns_encode_name(name))


@pytest.mark.parametrize("name", NOT_PLAIN)
def test_any_other_name_goes_through_the_full_normaliser(name):
    assert not ens.is_plain_name(name)
    try:
        expected = full_ensip15(name)
    except InvalidName:
        with pytest.raises(InvalidName):
            ens.ensip15(name)
        with pytest.raises(ens.InvalidEnsNameError, match="not a valid ENS name"):
            ens.normalize_name(name)
        return
    assert ens.ensip15(name) == expected
    assert ens.normalize_name(name) == expected
    assert ens.namehash(name) == bytes(ape_namehash(expected))
    assert ens.dns_encode(name) == bytes(dns_encode_name(name))


def test_upper_case_and_unicode_are_normalised_and_a_label_extension_refused():
    assert ens.normalize_name("Demo.ETH") == "demo.eth"
    assert ens.normalize_name("ÜNÏ.eth") == "ünï.eth"
    with pytest.raises(ens.InvalidEnsNameError, match=r"'ab--cd\.eth'"):
        ens.normalize_name("ab--cd.eth")


def test_a_plain_label_longer_than_dns_allows_is_refused_as_web3_refuses_it():
    name = "a" * 256 + ".eth"
    with pytest.raises(Exception, match="too long") as raised:
        ens.dns_encode(name)
    with pytest.raises(type(raised.value)):
        dns_encode_name(name)


def _normaliser_loaded_after(name: str) -> bool:
    code = (
        "import sys\n"
        "from tracker.identity import ens\n"
        f"ens.namehash({name!r}); ens.dns_encode({name!r}); ens.normalize_name({name!r})\n"
        "print('ens._normalization' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip() == "True"


def test_the_normaliser_is_loaded_only_for_a_name_that_needs_it():
    assert not _normaliser_loaded_after("bench-client.eth")
    assert _normaliser_loaded_after("Bench-Client.eth")
