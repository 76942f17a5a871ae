// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IENSRegistry, IRecordWriter} from "./IENSRegistry.sol";

/// @title Test stand-in for ENS's ReverseRegistrar
/// @notice Imitates the deployed reverse registrar's published interface: it owns `addr.reverse`;
/// `setName` claims `<address>.addr.reverse` for the caller with the default resolver and writes the
/// name there; `setNameForAddr` does the same for an address the caller may act for (itself, an
/// operator approved on the registry, a controller, or the owner of a contract at that address).
/// Like ENS's, it does not check that the name resolves back to the address.
/// Left out: signature-based claims (`setNameForAddrWithSignature`) and Ownable (an immutable admin
/// sets the default resolver and controllers).
contract StandInReverseRegistrar {
    // namehash("addr.reverse")
    bytes32 public constant ADDR_REVERSE_NODE = 0x91d1777781884d03a6757a803996e38de2a42967fb37eeaca72729271025a9e2;

    IENSRegistry public immutable ens;
    address public immutable admin;
    address public defaultResolver;
    mapping(address controller => bool) public controllers;

    /// @notice An address's reverse node was claimed.
    /// @param addr The address.
    /// @param node Its reverse node.
    event ReverseClaimed(address indexed addr, bytes32 indexed node);
    /// @notice The default resolver changed.
    /// @param resolver The resolver.
    event DefaultResolverChanged(address indexed resolver);

    error NotAdmin(address caller);
    error NotAuthorised(address addr, address caller);

    constructor(IENSRegistry registry, address administrator) {
        ens = registry;
        admin = administrator;
    }

    /// @notice Sets the resolver `setName` uses.
    /// @param resolver The resolver.
    function setDefaultResolver(address resolver) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        defaultResolver = resolver;
        emit DefaultResolverChanged(resolver);
    }

    /// @notice Lets a registrar controller set reverse records for its callers.
    /// @param controller The controller.
    /// @param enabled Whether allowed.
    function setController(address controller, bool enabled) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        controllers[controller] = enabled;
    }

    /// @notice Sets the caller's reverse record to `name` with the default resolver.
    /// @param name The name.
    /// @return The reverse node.
    function setName(string calldata name) external returns (bytes32) {
        return _setName(msg.sender, msg.sender, defaultResolver, name);
    }

    /// @notice Sets the reverse record of an address the caller may act for.
    /// @param addr The address.
    /// @param owner The owner of its reverse node afterwards.
    /// @param resolver The resolver.
    /// @param name The name.
    /// @return The reverse node.
    function setNameForAddr(address addr, address owner, address resolver, string calldata name)
        external
        returns (bytes32)
    {
        _requireAuthorised(addr);
        return _setName(addr, owner, resolver, name);
    }

    /// @notice Claims the caller's reverse node for `owner`.
    /// @param owner The owner.
    /// @return The reverse node.
    function claim(address owner) external returns (bytes32) {
        return _claim(msg.sender, owner, defaultResolver);
    }

    /// @notice The reverse node of an address.
    /// @param addr The address.
    /// @return The node.
    function node(address addr) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(ADDR_REVERSE_NODE, _hexLabelHash(addr)));
    }

    function _setName(address addr, address owner, address resolver, string calldata name)
        private
        returns (bytes32 reverseNode)
    {
        reverseNode = _claim(addr, address(this), resolver);
        IRecordWriter(resolver).setName(reverseNode, name);
        if (owner != address(this)) ens.setSubnodeOwner(ADDR_REVERSE_NODE, _hexLabelHash(addr), owner);
    }

    function _claim(address addr, address owner, address resolver) private returns (bytes32 reverseNode) {
        bytes32 label = _hexLabelHash(addr);
        reverseNode = keccak256(abi.encodePacked(ADDR_REVERSE_NODE, label));
        ens.setSubnodeRecord(ADDR_REVERSE_NODE, label, owner, resolver, 0);
        emit ReverseClaimed(addr, reverseNode);
    }

    function _requireAuthorised(address addr) private view {
        if (addr == msg.sender || controllers[msg.sender] || ens.isApprovedForAll(addr, msg.sender)) return;
        if (addr.code.length > 0) {
            (bool ok, bytes memory answer) = addr.staticcall(abi.encodeWithSignature("owner()"));
            if (ok && answer.length == 32 && abi.decode(answer, (address)) == msg.sender) return;
        }
        revert NotAuthorised(addr, msg.sender);
    }

    /// @dev keccak256 of the address as 40 lowercase hex digits, the label of its reverse name.
    function _hexLabelHash(address addr) private pure returns (bytes32) {
        bytes memory digits = "0123456789abcdef";
        bytes memory text = new bytes(40);
        uint160 value = uint160(addr);
        for (uint256 i = 40; i > 0; --i) {
            text[i - 1] = digits[value & 0xf];
            value >>= 4;
        }
        return keccak256(text);
    }
}
