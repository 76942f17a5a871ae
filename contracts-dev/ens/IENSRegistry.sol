// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice The part of the ENS registry (EIP-137, ENSRegistry) the stand-ins call.
interface IENSRegistry {
    /// @notice The owner of a node.
    /// @param node The node.
    /// @return The owner.
    function owner(bytes32 node) external view returns (address);

    /// @notice The resolver of a node.
    /// @param node The node.
    /// @return The resolver.
    function resolver(bytes32 node) external view returns (address);

    /// @notice Whether `operator` may manage every name of `holder` in the registry.
    /// @param holder The owner of names.
    /// @param operator The operator.
    /// @return Whether it is approved.
    function isApprovedForAll(address holder, address operator) external view returns (bool);

    /// @notice Gives a subnode to a new owner.
    /// @param node The parent node.
    /// @param label The label hash.
    /// @param newOwner The new owner.
    /// @return The subnode.
    function setSubnodeOwner(bytes32 node, bytes32 label, address newOwner) external returns (bytes32);

    /// @notice Sets a subnode's owner, resolver and TTL.
    /// @param node The parent node.
    /// @param label The label hash.
    /// @param newOwner The new owner.
    /// @param newResolver The resolver.
    /// @param ttl The TTL.
    function setSubnodeRecord(bytes32 node, bytes32 label, address newOwner, address newResolver, uint64 ttl) external;

    /// @notice Sets a node's resolver.
    /// @param node The node.
    /// @param newResolver The resolver.
    function setResolver(bytes32 node, address newResolver) external;

    /// @notice Transfers a node.
    /// @param node The node.
    /// @param newOwner The new owner.
    function setOwner(bytes32 node, address newOwner) external;
}

/// @notice ENSIP-10's extended resolver.
interface IExtendedResolver {
    /// @notice Resolves `data` (a resolver call) for the DNS-encoded `name`.
    /// @param name The DNS-encoded name.
    /// @param data The ABI-encoded resolver call.
    /// @return The ABI-encoded answer.
    function resolve(bytes calldata name, bytes calldata data) external view returns (bytes memory);
}

/// @notice The record writes a registrar controller and the reverse registrar make on a resolver.
interface IRecordWriter {
    /// @notice Sets the reverse name of a node.
    /// @param node The node.
    /// @param newName The name.
    function setName(bytes32 node, string calldata newName) external;

    /// @notice Runs record writes that each name `node`.
    /// @param node The node every call must name.
    /// @param data The calls.
    /// @return results The results.
    function multicallWithNodeCheck(bytes32 node, bytes[] calldata data) external returns (bytes[] memory results);
}

/// @notice ERC-3668 (CCIP-Read): a contract asks the caller to fetch an answer from a gateway.
/// @param sender The contract that reverted.
/// @param urls Gateway URL templates.
/// @param callData The data sent to the gateway.
/// @param callbackFunction The function that checks the gateway's answer.
/// @param extraData Data for the callback.
error OffchainLookup(address sender, string[] urls, bytes callData, bytes4 callbackFunction, bytes extraData);
