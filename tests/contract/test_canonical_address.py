"""The canonical InstanceTracker address: computed offline from the init code, and where the
deployment really lands, on whichever chain the suite runs (ape's in-process chain, anvil, and
the Sepolia fork in bin/fork-tests)."""

from __future__ import annotations

import rlp
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from tracker.chain import canonical
from tracker.identity.deploy import deploy_canonical


def test_the_proxy_deployment_transaction_is_the_published_one():
    raw = canonical.proxy_deployment_transaction()
    # its signer has no known key, and its nonce-0 contract is the proxy's address on every chain
    assert Account.recover_transaction(raw) == canonical.PROXY_SIGNER
    created = keccak(rlp.encode([bytes.fromhex(canonical.PROXY_SIGNER[2:]), 0]))[12:]
    assert to_checksum_address(created) == canonical.PROXY_ADDRESS
    # byte for byte the transaction published with the proxy
    assert raw.hex() == (
        "f8a58085174876e800830186a08080b853604580600e600039806000f350fe7fffffffffffffffffffffffffffffffffffffff"
        "ffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf31ba0"
        + "22" * 32
        + "a0"
        + "22" * 32
    )


def test_the_address_is_computed_offline_from_the_init_code():
    init_code = canonical.init_code()
    digest = keccak(b"\xff" + bytes.fromhex(canonical.PROXY_ADDRESS[2:]) + canonical.SALT + keccak(init_code))
    assert canonical.address() == to_checksum_address(digest[12:])
    # the init code carries the runtime code: no constructor, nothing depends on the deployer
    assert canonical.runtime_code() in init_code


def test_deploying_lands_at_the_computed_address_and_a_second_run_reuses_it(owner, chain):
    first = deploy_canonical(owner)
    assert first.contract.address == canonical.address()
    assert bytes(chain.provider.get_code(canonical.address())) == canonical.runtime_code()
    again = deploy_canonical(owner)
    assert not again.deployed and again.contract.address == first.contract.address
