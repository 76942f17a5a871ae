"""The parts of ENS's deployed contracts the tracker calls, as JSON ABIs.

The registry's comes from ENS's own npm build (`@ensdomains/ens`, which also has its bytecode for
local installs); the UniversalResolver's and the reverse registrar's come from web3.py's `ens`
module; the NameWrapper's, the .eth registrar's and the wrapper-aware public resolver's are written
here from ENS's published interfaces (INameWrapper, IBaseRegistrar, PublicResolver), only the
functions and errors we call or decode.
"""

from __future__ import annotations

from typing import Any


def _params(specs: str) -> list[dict[str, str]]:
    """'uint256 id, address owner' -> ABI parameters."""
    params = []
    for index, spec in enumerate(part.strip() for part in specs.split(",") if part.strip()):
        kind, _, name = spec.partition(" ")
        params.append({"type": kind, "name": name or f"arg{index}", "internalType": kind})
    return params


def _function(name: str, inputs: str, outputs: str = "", mutability: str = "view") -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "inputs": _params(inputs),
        "outputs": _params(outputs),
        "stateMutability": mutability,
    }


def _error(name: str, inputs: str) -> dict[str, Any]:
    return {"type": "error", "name": name, "inputs": _params(inputs)}


NAME_WRAPPER = [
    _function("getData", "uint256 id", "address owner, uint32 fuses, uint64 expiry"),
    _function("ownerOf", "uint256 id", "address owner"),
    _function("isApprovedForAll", "address account, address operator", "bool"),
    _function("canModifyName", "bytes32 node, address addr", "bool"),
    _function("setResolver", "bytes32 node, address resolver", "", "nonpayable"),
    _function("setApprovalForAll", "address operator, bool approved", "", "nonpayable"),
    _error("Unauthorised", "bytes32 node, address addr"),
    _error("OperationProhibited", "bytes32 node"),
]

BASE_REGISTRAR = [
    _function("nameExpires", "uint256 id", "uint256"),
    _function("available", "uint256 id", "bool"),
    _function("GRACE_PERIOD", "", "uint256"),
]

PUBLIC_RESOLVER = [
    _function("addr", "bytes32 node", "address"),
    _function("text", "bytes32 node, string key", "string"),
    _function("name", "bytes32 node", "string"),
    _function("setAddr", "bytes32 node, address a", "", "nonpayable"),
    _function("setText", "bytes32 node, string key, string value", "", "nonpayable"),
    _function("isApprovedForAll", "address account, address operator", "bool"),
    _function("isApprovedFor", "address owner, bytes32 node, address delegate", "bool"),
    _function("setApprovalForAll", "address operator, bool approved", "", "nonpayable"),
    _function("approve", "bytes32 node, address delegate, bool approved", "", "nonpayable"),
]


def universal_resolver() -> list[dict[str, Any]]:
    """web3.py's UniversalResolver ABI (ENSIP-23) with the errors ENSIP-23 names."""
    from ens import abis  # type: ignore[import-untyped]

    return [
        *abis.UNIVERSAL_RESOLVER,
        _error("ResolverNotFound", "bytes name"),
        _error("ResolverNotContract", "bytes name, address resolver"),
        _error("UnsupportedResolverProfile", "bytes4 selector"),
        _error("ResolverError", "bytes errorData"),
        _error("HttpError", "uint16 status, string message"),
    ]


def reverse_registrar() -> list[dict[str, Any]]:
    from ens import abis

    return list(abis.REVERSE_REGISTRAR)
