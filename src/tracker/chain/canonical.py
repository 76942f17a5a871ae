"""The canonical InstanceTracker: the same address on every chain, computed offline from the code.

InstanceTracker is deployed with CREATE2 through the standard deterministic-deployment proxy at
`0x4e59b44847b379578588920cA78FbF26c0B4956C` (present on mainnet, Sepolia and most L2s; it
deploys the init code it is sent, prefixed by a 32-byte salt). Its address is therefore
keccak256(0xff ++ proxy ++ salt ++ keccak256(init code))[12:], a function of the compiled init
code alone: anyone with this repository can compute it, and a verifier trusts the contract at that
address, never one named by a document it is verifying.

On a chain without the proxy (a fresh local chain), `install_proxy` places it: anvil's own
`anvil_setCode` where the node has it, otherwise the proxy's published one-time deployment
transaction (pre-EIP-155, so valid on any chain id), after funding its one-time signer.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_utils import keccak, to_checksum_address

from tracker.errors import ChainError, one_line

PROXY_ADDRESS = "0x4e59b44847b379578588920cA78FbF26c0B4956C"
# The proxy's runtime code, and its one-time deployment transaction as published with it: nonce 0,
# gas price 100 gwei, gas limit 100,000, no chain id (pre-EIP-155), signature v=27 with r = s =
# 0x2222...22, whose signer nobody holds the key of (0x3fab1846...45362), so that it deploys the
# proxy at the same address on every chain.
PROXY_RUNTIME = bytes.fromhex(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f5801515"
    "6039578182fd5b8082525050506014600cf3"
)
PROXY_INIT_CODE = bytes.fromhex("604580600e600039806000f350fe") + PROXY_RUNTIME
PROXY_SIGNER = "0x3fAB184622Dc19b6109349B94811493BF2a45362"
PROXY_GAS_PRICE_WEI = 100 * 10**9
PROXY_GAS_LIMIT = 100_000
PROXY_DEPLOYMENT_COST_WEI = PROXY_GAS_PRICE_WEI * PROXY_GAS_LIMIT


def proxy_deployment_transaction() -> bytes:
    """The proxy's published one-time deployment transaction, RLP-encoded."""
    import rlp

    signature_value = int("22" * 32, 16)
    fields = [0, PROXY_GAS_PRICE_WEI, PROXY_GAS_LIMIT, b"", 0, PROXY_INIT_CODE, 27, signature_value, signature_value]
    return bytes(rlp.encode(fields))


# Fixed for this contract: changing it moves the canonical address.
SALT = keccak(text="instance-tracker/InstanceTracker/v2")


def create2_address(init_code: bytes, salt: bytes = SALT, deployer: str = PROXY_ADDRESS) -> str:
    """The address CREATE2 gives `init_code` deployed by `deployer` with `salt` (checksummed)."""
    digest = keccak(b"\xff" + bytes.fromhex(deployer[2:]) + salt + keccak(init_code))
    return to_checksum_address(digest[12:])


@cache
def init_code() -> bytes:
    """InstanceTracker's compiled init code (it takes no constructor arguments)."""
    from ape import project

    return bytes.fromhex(project.InstanceTracker.contract_type.deployment_bytecode.bytecode.removeprefix("0x"))


@cache
def runtime_code() -> bytes:
    """InstanceTracker's compiled runtime code, what the canonical address must hold."""
    from ape import project

    return bytes.fromhex(project.InstanceTracker.contract_type.runtime_bytecode.bytecode.removeprefix("0x"))


def address() -> str:
    """The canonical InstanceTracker address of this build, the same on every chain."""
    return create2_address(init_code())


def deployment_data() -> bytes:
    """What is sent to the proxy to deploy the canonical contract: salt, then init code."""
    return SALT + init_code()


def proxy_present() -> bool:
    from ape import chain

    return bytes(chain.provider.get_code(PROXY_ADDRESS)) == PROXY_RUNTIME


def install_proxy(funder: Any) -> str:
    """Puts the deterministic-deployment proxy on a chain that lacks it; returns how.

    Raises `ChainError` when the chain refuses both ways (then it is not a development chain and
    the proxy must be deployed by its published transaction from a funded signer).
    """
    from ape import chain

    if proxy_present():
        return "present"
    provider = chain.provider
    try:
        provider.make_request("anvil_setCode", [PROXY_ADDRESS, "0x" + PROXY_RUNTIME.hex()])
        if proxy_present():
            return "anvil_setCode"
    except Exception:  # not anvil: fall through to the one-time deployment transaction
        pass
    try:
        funder.transfer(PROXY_SIGNER, PROXY_DEPLOYMENT_COST_WEI)
        sent = provider.web3.eth.send_raw_transaction(proxy_deployment_transaction())
        provider.web3.eth.wait_for_transaction_receipt(sent, timeout=60)
    except Exception as error:  # the node refuses pre-EIP-155 transactions, or the funder is poor
        raise ChainError(f"cannot install the deterministic-deployment proxy: {one_line(error)}") from error
    if not proxy_present():
        raise ChainError("the deterministic-deployment proxy's deployment transaction left no proxy code")
    return "one-time deployment transaction"
