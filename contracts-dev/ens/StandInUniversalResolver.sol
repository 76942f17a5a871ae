// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IENSRegistry, IExtendedResolver, OffchainLookup} from "./IENSRegistry.sol";

/// @notice ENSIP-21's batch gateway: the UniversalResolver asks its caller to run these lookups.
interface IBatchGateway {
    struct Request {
        address sender;
        string[] urls;
        bytes data;
    }

    /// @notice Runs several EIP-3668 lookups.
    /// @param requests The lookups.
    /// @return failures Which failed.
    /// @return responses Their answers or errors.
    function query(Request[] memory requests) external view returns (bool[] memory failures, bytes[] memory responses);
}

/// @title Test stand-in for ENS's UniversalResolver (ENSIP-23)
/// @notice Imitates `findResolver`, `resolve` and `resolveWithGateways` as ENSIP-23 specifies them:
/// the resolver is found by walking up the name's labels (ENSIP-10); an extended resolver
/// (interface 0x9061b923) is called with `resolve(name, data)`, a plain one with `data` and only
/// for an exact match; a resolver's EIP-3668 `OffchainLookup` (whose sender must be the resolver) is
/// re-raised by this contract as a batch-gateway lookup (ENSIP-21) whose callback, `resolveCallback`,
/// hands the gateway's answer to the resolver's own callback, which checks it. Errors are ENSIP-23's.
/// The batch gateway is `x-batch-gateway:true`: the caller runs the lookups itself.
/// Left out: `reverse` and `reverseWithGateways` (primary names: the verifier resolves the reverse
/// name with `resolve`, as web3.py's ENS module does), smart multicall, contracts without EIP-140
/// reverts, the proxy.
contract StandInUniversalResolver {
    bytes4 private constant _EXTENDED_RESOLVER = 0x9061b923;

    IENSRegistry public immutable registry;

    error ResolverNotFound(bytes name);
    error ResolverNotContract(bytes name, address resolver);
    error UnsupportedResolverProfile(bytes4 selector);
    error ResolverError(bytes errorData);
    error HttpError(uint16 status, string message);
    error InvalidBatchGatewayResponse();
    error DNSDecodingFailed(bytes dns);

    struct Lookup {
        address resolver;
        bool extended;
        bytes4 callbackFunction;
        bytes extraData;
        bytes4 selector;
        string[] gateways;
    }

    constructor(IENSRegistry ens) {
        registry = ens;
    }

    /// @notice The first resolver set on `name` or one of its ancestors (ENSIP-10).
    /// @param name The DNS-encoded name.
    /// @return resolver The resolver, or zero.
    /// @return node The namehash of `name`.
    /// @return offset Where the name that has the resolver starts in `name`.
    function findResolver(bytes memory name) public view returns (address resolver, bytes32 node, uint256 offset) {
        node = _namehash(name, 0);
        for (offset = 0; offset < name.length; offset += uint8(name[offset]) + 1) {
            resolver = registry.resolver(_namehash(name, offset));
            if (resolver != address(0) || name[offset] == 0) return (resolver, node, offset);
        }
        revert DNSDecodingFailed(name);
    }

    /// @notice Resolves `data` for `name` with the default batch gateway.
    /// @param name The DNS-encoded name.
    /// @param data The resolver call.
    /// @return result The ABI-encoded answer.
    /// @return resolver The resolver that answered.
    function resolve(bytes calldata name, bytes calldata data)
        external
        view
        returns (bytes memory result, address resolver)
    {
        string[] memory gateways = new string[](1);
        gateways[0] = "x-batch-gateway:true";
        return resolveWithGateways(name, data, gateways);
    }

    /// @notice Resolves `data` for `name`; offchain lookups go through `gateways` (ENSIP-21).
    /// @param name The DNS-encoded name.
    /// @param data The resolver call.
    /// @param gateways Batch gateway URLs.
    /// @return result The ABI-encoded answer.
    /// @return resolver The resolver that answered.
    function resolveWithGateways(bytes calldata name, bytes calldata data, string[] memory gateways)
        public
        view
        returns (bytes memory result, address resolver)
    {
        uint256 offset;
        (resolver,, offset) = findResolver(name);
        if (resolver == address(0)) revert ResolverNotFound(name);
        if (resolver.code.length == 0) revert ResolverNotContract(name, resolver);
        bool extended = _supportsInterface(resolver, _EXTENDED_RESOLVER);
        if (!extended && offset != 0) revert ResolverNotFound(name);
        bytes memory call = extended ? abi.encodeCall(IExtendedResolver.resolve, (name, data)) : data;
        (bool ok, bytes memory answer) = resolver.staticcall(call);
        Lookup memory lookup = Lookup(resolver, extended, bytes4(0), "", bytes4(data), gateways);
        return (_answer(ok, answer, lookup), resolver);
    }

    /// @notice Completes an offchain lookup: the batch gateway's answer goes to the resolver's callback.
    /// @param response ABI-encoded `(bool[] failures, bytes[] responses)`.
    /// @param extraData What `_answer` packed.
    /// @return result The ABI-encoded answer.
    /// @return resolver The resolver that answered.
    function resolveCallback(bytes calldata response, bytes calldata extraData)
        external
        view
        returns (bytes memory result, address resolver)
    {
        Lookup memory lookup = abi.decode(extraData, (Lookup));
        (bool[] memory failures, bytes[] memory responses) = abi.decode(response, (bool[], bytes[]));
        if (failures.length != 1 || responses.length != 1) revert InvalidBatchGatewayResponse();
        if (failures[0]) _bubble(responses[0]);
        (bool ok, bytes memory answer) = lookup.resolver.staticcall(
            abi.encodeWithSelector(lookup.callbackFunction, responses[0], lookup.extraData)
        );
        return (_answer(ok, answer, lookup), lookup.resolver);
    }

    /// @notice ERC-165.
    /// @param interfaceId The interface.
    /// @return Whether supported.
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7;
    }

    /// @dev The resolver's answer, or the ENSIP-23 error for its revert; an OffchainLookup becomes ours.
    function _answer(bool ok, bytes memory answer, Lookup memory lookup) private view returns (bytes memory) {
        if (ok) return lookup.extended ? abi.decode(answer, (bytes)) : answer;
        if (answer.length == 0) revert UnsupportedResolverProfile(lookup.selector);
        if (bytes4(answer) != OffchainLookup.selector) revert ResolverError(answer);
        (address sender, string[] memory urls, bytes memory callData, bytes4 callback, bytes memory extra) =
            abi.decode(_afterSelector(answer), (address, string[], bytes, bytes4, bytes));
        if (sender != lookup.resolver) revert ResolverError(answer);
        IBatchGateway.Request[] memory requests = new IBatchGateway.Request[](1);
        requests[0] = IBatchGateway.Request(sender, urls, callData);
        lookup.callbackFunction = callback;
        lookup.extraData = extra;
        revert OffchainLookup(
            address(this),
            lookup.gateways,
            abi.encodeCall(IBatchGateway.query, (requests)),
            this.resolveCallback.selector,
            abi.encode(lookup)
        );
    }

    function _supportsInterface(address target, bytes4 interfaceId) private view returns (bool) {
        (bool ok, bytes memory answer) =
            target.staticcall{gas: 30_000}(abi.encodeWithSignature("supportsInterface(bytes4)", interfaceId));
        return ok && answer.length >= 32 && abi.decode(answer, (bool));
    }

    /// @dev EIP-137 namehash of the DNS-encoded name starting at `offset`.
    function _namehash(bytes memory name, uint256 offset) private pure returns (bytes32) {
        if (offset >= name.length) revert DNSDecodingFailed(name);
        uint256 length = uint8(name[offset]);
        if (length == 0) return bytes32(0);
        if (offset + 1 + length >= name.length) revert DNSDecodingFailed(name);
        bytes32 label;
        assembly {
            label := keccak256(add(add(name, 33), offset), length)
        }
        return keccak256(abi.encodePacked(_namehash(name, offset + 1 + length), label));
    }

    function _afterSelector(bytes memory data) private pure returns (bytes memory rest) {
        rest = new bytes(data.length - 4);
        for (uint256 i = 0; i < rest.length; ++i) {
            rest[i] = data[i + 4];
        }
    }

    function _bubble(bytes memory data) private pure {
        assembly {
            revert(add(data, 32), mload(data))
        }
    }
}
