// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IENSRegistry} from "./IENSRegistry.sol";
import {StandInNameWrapper} from "./StandInNameWrapper.sol";

/// @title Test stand-in for ENS's wrapper-aware PublicResolver
/// @notice Imitates the deployed PublicResolver's published interface and authorisation: a record of
/// a node may be written by the registrar controller and reverse registrar it trusts, by the node's
/// owner (the NameWrapper token holder when the registry owner is the NameWrapper), by an operator the
/// owner approved on this resolver (`setApprovalForAll`), or by a delegate the owner approved for
/// that node (`approve`). Operators approved on the registry or the NameWrapper are not enough, as
/// with ENS's. Profiles: addr (ETH and by coin type), text, name, multicall.
/// Left out: record versions (`clearRecords`), contenthash, ABI, pubkey, DNS and interface profiles.
contract StandInPublicResolver {
    uint256 private constant _COIN_TYPE_ETH = 60;

    IENSRegistry public immutable ens;
    StandInNameWrapper public immutable nameWrapper;
    address public immutable trustedETHController;
    address public immutable trustedReverseRegistrar;

    mapping(bytes32 node => mapping(uint256 coinType => bytes)) private _addresses;
    mapping(bytes32 node => mapping(string key => string)) private _texts;
    mapping(bytes32 node => string) private _names;
    mapping(address owner => mapping(address operator => bool)) private _operators;
    mapping(address owner => mapping(bytes32 node => mapping(address delegate => bool))) private _delegates;

    /// @notice The ETH address of a node changed.
    /// @param node The node.
    /// @param a The address.
    event AddrChanged(bytes32 indexed node, address a);
    /// @notice An address of a node changed.
    /// @param node The node.
    /// @param coinType The coin type.
    /// @param newAddress The address.
    event AddressChanged(bytes32 indexed node, uint256 coinType, bytes newAddress);
    /// @notice A text record changed.
    /// @param node The node.
    /// @param indexedKey The key (indexed).
    /// @param key The key.
    /// @param value The value.
    event TextChanged(bytes32 indexed node, string indexed indexedKey, string key, string value);
    /// @notice The reverse name of a node changed.
    /// @param node The node.
    /// @param name The name.
    event NameChanged(bytes32 indexed node, string name);
    /// @notice An operator was approved or revoked.
    /// @param owner The owner.
    /// @param operator The operator.
    /// @param approved Whether approved.
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);
    /// @notice A delegate was approved or revoked for a node.
    /// @param owner The owner.
    /// @param node The node.
    /// @param delegate The delegate.
    /// @param approved Whether approved.
    event Approved(address owner, bytes32 indexed node, address indexed delegate, bool indexed approved);

    error Unauthorised(bytes32 node, address caller);
    error NodeMismatch(bytes32 node, bytes32 called);
    error SelfApproval();

    modifier authorised(bytes32 node) {
        if (!isAuthorised(node, msg.sender)) revert Unauthorised(node, msg.sender);
        _;
    }

    constructor(IENSRegistry registry, StandInNameWrapper wrapper, address controller, address reverseRegistrar) {
        ens = registry;
        nameWrapper = wrapper;
        trustedETHController = controller;
        trustedReverseRegistrar = reverseRegistrar;
    }

    /// @notice Sets the ETH address of a node.
    /// @param node The node.
    /// @param a The address.
    function setAddr(bytes32 node, address a) external authorised(node) {
        _setAddr(node, _COIN_TYPE_ETH, abi.encodePacked(a));
    }

    /// @notice Sets the address of a node for a coin type.
    /// @param node The node.
    /// @param coinType The coin type.
    /// @param a The address bytes.
    function setAddr(bytes32 node, uint256 coinType, bytes calldata a) external authorised(node) {
        _setAddr(node, coinType, a);
    }

    /// @notice Sets a text record.
    /// @param node The node.
    /// @param key The key.
    /// @param value The value.
    function setText(bytes32 node, string calldata key, string calldata value) external authorised(node) {
        _texts[node][key] = value;
        emit TextChanged(node, key, key, value);
    }

    /// @notice Sets the reverse name of a node.
    /// @param node The node.
    /// @param newName The name.
    function setName(bytes32 node, string calldata newName) external authorised(node) {
        _names[node] = newName;
        emit NameChanged(node, newName);
    }

    /// @notice Approves or revokes an operator for every node of the caller on this resolver.
    /// @param operator The operator.
    /// @param approved Whether approved.
    function setApprovalForAll(address operator, bool approved) external {
        if (operator == msg.sender) revert SelfApproval();
        _operators[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    /// @notice Approves or revokes a delegate for one node of the caller.
    /// @param node The node.
    /// @param delegate The delegate.
    /// @param approved Whether approved.
    function approve(bytes32 node, address delegate, bool approved) external {
        if (delegate == msg.sender) revert SelfApproval();
        _delegates[msg.sender][node][delegate] = approved;
        emit Approved(msg.sender, node, delegate, approved);
    }

    /// @notice Runs several record writes in one transaction.
    /// @param data The calls.
    /// @return results Their results.
    function multicall(bytes[] calldata data) external returns (bytes[] memory results) {
        return _multicall(bytes32(0), data);
    }

    /// @notice Runs record writes that must each name `node`.
    /// @param node The node.
    /// @param data The calls.
    /// @return results Their results.
    function multicallWithNodeCheck(bytes32 node, bytes[] calldata data) external returns (bytes[] memory results) {
        return _multicall(node, data);
    }

    /// @notice The ETH address of a node.
    /// @param node The node.
    /// @return The address.
    function addr(bytes32 node) external view returns (address payable) {
        bytes memory a = _addresses[node][_COIN_TYPE_ETH];
        if (a.length != 20) return payable(address(0));
        return payable(address(bytes20(a)));
    }

    /// @notice The address of a node for a coin type.
    /// @param node The node.
    /// @param coinType The coin type.
    /// @return The address bytes.
    function addr(bytes32 node, uint256 coinType) external view returns (bytes memory) {
        return _addresses[node][coinType];
    }

    /// @notice A text record.
    /// @param node The node.
    /// @param key The key.
    /// @return The value.
    function text(bytes32 node, string calldata key) external view returns (string memory) {
        return _texts[node][key];
    }

    /// @notice The reverse name of a node.
    /// @param node The node.
    /// @return The name.
    function name(bytes32 node) external view returns (string memory) {
        return _names[node];
    }

    /// @notice Whether `operator` may write every record of `owner` here.
    /// @param owner The owner.
    /// @param operator The operator.
    /// @return Whether approved.
    function isApprovedForAll(address owner, address operator) public view returns (bool) {
        return _operators[owner][operator];
    }

    /// @notice Whether `delegate` may write the records of `owner`'s `node`.
    /// @param owner The owner.
    /// @param node The node.
    /// @param delegate The delegate.
    /// @return Whether approved.
    function isApprovedFor(address owner, bytes32 node, address delegate) public view returns (bool) {
        return _delegates[owner][node][delegate];
    }

    /// @notice Whether `caller` may write the records of `node`.
    /// @param node The node.
    /// @param caller The account.
    /// @return Whether authorised.
    function isAuthorised(bytes32 node, address caller) public view returns (bool) {
        if (caller == trustedETHController || caller == trustedReverseRegistrar) return true;
        address owner = ens.owner(node);
        if (owner == address(nameWrapper)) owner = nameWrapper.ownerOf(uint256(node));
        return owner != address(0)
            && (owner == caller || isApprovedForAll(owner, caller) || isApprovedFor(owner, node, caller));
    }

    /// @notice ERC-165: addr, addr by coin type, text, name, multicall.
    /// @param interfaceId The interface.
    /// @return Whether supported.
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 || interfaceId == 0x3b3b57de || interfaceId == 0xf1cb7e06
            || interfaceId == 0x59d1d43c || interfaceId == 0x691f3431 || interfaceId == 0xac9650d8;
    }

    function _setAddr(bytes32 node, uint256 coinType, bytes memory a) private {
        _addresses[node][coinType] = a;
        emit AddressChanged(node, coinType, a);
        if (coinType == _COIN_TYPE_ETH) emit AddrChanged(node, a.length == 20 ? address(bytes20(a)) : address(0));
    }

    function _multicall(bytes32 node, bytes[] calldata data) private returns (bytes[] memory results) {
        results = new bytes[](data.length);
        for (uint256 i = 0; i < data.length; ++i) {
            if (node != bytes32(0)) {
                bytes32 called = bytes32(data[i][4:36]);
                if (called != node) revert NodeMismatch(node, called);
            }
            // A delegatecall keeps msg.sender, so each write is authorised as if called directly.
            // solhint-disable-next-line avoid-low-level-calls
            (bool ok, bytes memory answer) = address(this).delegatecall(data[i]);
            if (!ok) {
                assembly {
                    revert(add(answer, 32), mload(answer))
                }
            }
            results[i] = answer;
        }
    }
}
