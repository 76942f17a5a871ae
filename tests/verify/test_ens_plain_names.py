"""The verifier reads ENS names without web3.py's ENSIP-15 normaliser when a name is plain
lowercase ASCII (its tables cost a process about 70 MB): these tests try to find a name for which
that shortcut answers differently from the normaliser, or lets through a name ENSIP-15 refuses."""

from __future__ import annotations

import random

import pytest
from ape_ens.utils.namehash import namehash as ape_namehash
from ens.exceptions import InvalidName
from ens.utils import dns_encode_name
from ens.utils import normalize_name as web3_ensip15

from tracker.identity import ens

PLAIN = ["verifier-client.eth", "a.eth", "0x12.eth", "sub.name.eth", "ab-c.eth", "-a.eth", "a-.eth", "9.eth"]
# Not plain: each takes the normaliser (mapped, refused, or valid but not ASCII-lowercase).
NOT_PLAIN = ["Verifier.eth", "ab--c.eth", "_a.eth", "a_b.eth", "a..eth", ".eth", "a.eth.", "nick😀.eth", "xn--ls8h.eth"]


@pytest.mark.parametrize("name", PLAIN)
def test_a_plain_name_is_what_the_normaliser_makes_of_it(name):
    assert ens.is_plain_name(name)
    assert ens.normalize_name(name) == web3_ensip15(name) == name
    assert ens.namehash(name) == bytes(ape_namehash(name))
    assert ens.dns_encode(name) == bytes(dns_encode_name(name))


@pytest.mark.parametrize("name", NOT_PLAIN)
def test_any_other_name_goes_through_the_normaliser(name):
    assert not ens.is_plain_name(name)
    try:
        expected = web3_ensip15(name)
    except InvalidName:
        with pytest.raises(ens.InvalidEnsNameError):
            ens.normalize_name(name)
        return
    assert ens.normalize_name(name) == expected
    assert ens.namehash(name) == bytes(ape_namehash(expected))


def test_no_random_ascii_name_tells_the_shortcut_from_the_normaliser():
    """Thousands of names drawn from letters of both cases, digits, hyphens, underscores and dots:
    wherever the shortcut applies, the normaliser accepts the name and leaves it as it is."""
    draw = random.Random(13)
    alphabet = "abz09-_.AZ"
    checked = 0
    for _ in range(5_000):
        name = "".join(draw.choice(alphabet) for _ in range(draw.randint(1, 9))) + ".eth"
        if not ens.is_plain_name(name):
            continue
        checked += 1
        assert web3_ensip15(name) == name, name
        assert ens.namehash(name) == bytes(ape_namehash(name)), name
    assert checked > 500  # the draw reached the shortcut often enough to mean something


def test_the_reverse_node_is_ens_s():
    address = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
    assert ens.reverse_node(address) == bytes(ape_namehash(f"{address[2:].lower()}.addr.reverse"))
