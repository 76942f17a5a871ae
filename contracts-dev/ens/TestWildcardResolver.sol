// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title A wildcard resolver for tests (ENSIP-10)
/// @notice Answers `addr` and `text` for any name under the names it is set on, from answers its
/// operator stores by full DNS-encoded name; it supports only `resolve(name, data)`, so ENSIP-10
/// clients must call it through that. Imitates what a subname service's resolver does; it is not an
/// ENS contract.
contract TestWildcardResolver {
    struct Answer {
        address addr;
        string url;
    }

    address public immutable operator;
    mapping(bytes32 nameHash => Answer) private _answers;

    error Unauthorised(address caller);
    error UnsupportedProfile(bytes4 selector);

    constructor(address resolverOperator) {
        operator = resolverOperator;
    }

    /// @notice Sets what a name resolves to (the operator only).
    /// @param dnsName The DNS-encoded name.
    /// @param a Its address.
    /// @param url Its url text record.
    function setAnswer(bytes calldata dnsName, address a, string calldata url) external {
        if (msg.sender != operator) revert Unauthorised(msg.sender);
        _answers[keccak256(dnsName)] = Answer(a, url);
    }

    /// @notice ENSIP-10 resolution: `addr(bytes32)` and `text(bytes32,"url")`.
    /// @param name The DNS-encoded name.
    /// @param data The resolver call.
    /// @return The ABI-encoded answer.
    function resolve(bytes calldata name, bytes calldata data) external view returns (bytes memory) {
        Answer storage answer = _answers[keccak256(name)];
        bytes4 selector = bytes4(data);
        if (selector == 0x3b3b57de) return abi.encode(answer.addr);
        if (selector == 0x59d1d43c) {
            (, string memory key) = abi.decode(data[4:], (bytes32, string));
            return abi.encode(keccak256(bytes(key)) == keccak256("url") ? answer.url : "");
        }
        revert UnsupportedProfile(selector);
    }

    /// @notice ERC-165: the extended resolver interface.
    /// @param interfaceId The interface.
    /// @return Whether supported.
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 || interfaceId == 0x9061b923;
    }
}
