// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IENSRegistry} from "./IENSRegistry.sol";
import {StandInBaseRegistrar} from "./StandInBaseRegistrar.sol";

/// @title Test stand-in for ENS's NameWrapper
/// @notice Imitates the deployed NameWrapper's published interface and documented rules: a wrapped
/// name is an ERC-1155 token (id = namehash) whose data packs owner, fuses and expiry, while the
/// registry owner of the node is this contract. A .eth 2LD is wrapped with PARENT_CANNOT_CONTROL and
/// IS_DOT_ETH and an expiry of the registrar's plus the 90-day grace period; in that grace period its
/// holder can no longer modify it. Past its expiry an emancipated name has no owner and every name
/// loses its fuses. The holder or an operator approved here (`setApprovalForAll`) may set the
/// resolver (unless CANNOT_SET_RESOLVER is burned) and create wrapped subnames with fuses and an
/// expiry capped at the parent's; burning parent-controlled fuses needs the parent's CANNOT_UNWRAP,
/// owner-controlled ones need PARENT_CANNOT_CONTROL and CANNOT_UNWRAP.
/// Left out: ERC-1155 batch transfers, receiver hooks and metadata, wrapping an existing unwrapped
/// name (`wrap`, `wrapETH2LD`), renewals, `setChildFuses`, `setRecord`, `setTTL`, token approvals and
/// the upgrade path.
contract StandInNameWrapper {
    uint32 public constant CANNOT_UNWRAP = 1;
    uint32 public constant CANNOT_BURN_FUSES = 2;
    uint32 public constant CANNOT_TRANSFER = 4;
    uint32 public constant CANNOT_SET_RESOLVER = 8;
    uint32 public constant CANNOT_SET_TTL = 16;
    uint32 public constant CANNOT_CREATE_SUBDOMAIN = 32;
    uint32 public constant CANNOT_APPROVE = 64;
    uint32 public constant PARENT_CANNOT_CONTROL = 1 << 16;
    uint32 public constant IS_DOT_ETH = 1 << 17;
    uint32 public constant CAN_EXTEND_EXPIRY = 1 << 18;
    uint32 private constant _PARENT_CONTROLLED_FUSES = 0xFFFF0000;
    uint32 private constant _USER_SETTABLE_FUSES = 0xFFFDFFFF;
    uint64 public constant GRACE_PERIOD = 90 days;
    // namehash("eth")
    bytes32 public constant ETH_NODE = 0x93cdeb708b7545dc668eb9280176169d1c33cfd8ed6f04690a0bcc88a93fc4ae;

    IENSRegistry public immutable ens;
    StandInBaseRegistrar public immutable registrar;
    address public immutable admin;

    // owner in bits 0-159, fuses in 160-191, expiry in 192-255 (as the deployed wrapper packs them)
    mapping(uint256 id => uint256) private _tokens;
    mapping(address holder => mapping(address operator => bool)) private _operators;
    mapping(bytes32 node => bytes) public names;
    mapping(address controller => bool) public controllers;

    /// @notice ERC-1155 transfer (mint and burn included).
    /// @param operator Who moved it.
    /// @param from Previous owner.
    /// @param to New owner.
    /// @param id The token (namehash).
    /// @param value Always 1.
    event TransferSingle(
        address indexed operator, address indexed from, address indexed to, uint256 id, uint256 value
    );
    /// @notice ERC-1155 operator approval.
    /// @param account The holder.
    /// @param operator The operator.
    /// @param approved Whether approved.
    event ApprovalForAll(address indexed account, address indexed operator, bool approved);
    /// @notice A name was wrapped.
    /// @param node The node.
    /// @param name The DNS-encoded name.
    /// @param owner The holder.
    /// @param fuses The fuses.
    /// @param expiry The expiry.
    event NameWrapped(bytes32 indexed node, bytes name, address owner, uint32 fuses, uint64 expiry);
    /// @notice A name was unwrapped.
    /// @param node The node.
    /// @param owner The new registry owner.
    event NameUnwrapped(bytes32 indexed node, address owner);
    /// @notice Fuses were burned.
    /// @param node The node.
    /// @param fuses All fuses now burned.
    event FusesSet(bytes32 indexed node, uint32 fuses);
    /// @notice A controller was added or removed.
    /// @param controller The controller.
    /// @param active Whether it may register.
    event ControllerChanged(address indexed controller, bool active);

    error Unauthorised(bytes32 node, address addr);
    error OperationProhibited(bytes32 node);
    error IncorrectTargetOwner(address owner);
    error LabelTooShort();
    error LabelTooLong(string label);
    error NotAdmin(address caller);
    error NotController(address caller);
    error InvalidAmount(uint256 amount);

    modifier onlyTokenOwner(bytes32 node) {
        if (!canModifyName(node, msg.sender)) revert Unauthorised(node, msg.sender);
        _;
    }

    constructor(IENSRegistry registry, StandInBaseRegistrar baseRegistrar, address administrator) {
        ens = registry;
        registrar = baseRegistrar;
        admin = administrator;
    }

    /// @notice Adds or removes a registrar controller.
    /// @param controller The controller.
    /// @param active Whether it may register.
    function setController(address controller, bool active) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        controllers[controller] = active;
        emit ControllerChanged(controller, active);
    }

    /// @notice Registers a .eth 2LD in the registrar and wraps it for `wrappedOwner` (controllers only).
    /// @param label The label.
    /// @param wrappedOwner The holder of the token.
    /// @param duration Seconds.
    /// @param resolver Resolver to set (or zero).
    /// @param ownerControlledFuses Fuses to burn at once.
    /// @return registrarExpiry The registrar's expiry.
    function registerAndWrapETH2LD(
        string calldata label,
        address wrappedOwner,
        uint256 duration,
        address resolver,
        uint16 ownerControlledFuses
    ) external returns (uint256 registrarExpiry) {
        if (!controllers[msg.sender]) revert NotController(msg.sender);
        uint256 length = bytes(label).length;
        if (length == 0) revert LabelTooShort();
        if (length > 255) revert LabelTooLong(label);
        bytes32 labelhash = keccak256(bytes(label));
        registrarExpiry = registrar.register(uint256(labelhash), address(this), duration);
        bytes32 node = keccak256(abi.encodePacked(ETH_NODE, labelhash));
        names[node] = abi.encodePacked(uint8(length), label, hex"03657468", uint8(0));
        if (resolver != address(0)) ens.setResolver(node, resolver);
        uint32 fuses = uint32(ownerControlledFuses) | PARENT_CANNOT_CONTROL | IS_DOT_ETH;
        _canFusesBeBurned(node, fuses);
        _setToken(node, wrappedOwner, fuses, uint64(registrarExpiry) + GRACE_PERIOD);
    }

    /// @notice Unwraps a .eth 2LD: the registrant gets the ERC-721, `controller` the registry record.
    /// @param labelhash The label hash.
    /// @param registrant The new ERC-721 holder.
    /// @param controller The new registry owner.
    function unwrapETH2LD(bytes32 labelhash, address registrant, address controller)
        external
        onlyTokenOwner(keccak256(abi.encodePacked(ETH_NODE, labelhash)))
    {
        bytes32 node = keccak256(abi.encodePacked(ETH_NODE, labelhash));
        if (registrant == address(this)) revert IncorrectTargetOwner(registrant);
        (, uint32 fuses,) = getData(uint256(node));
        if (fuses & CANNOT_UNWRAP != 0) revert OperationProhibited(node);
        _setToken(node, address(0), 0, 0);
        ens.setOwner(node, controller);
        registrar.transferFrom(address(this), registrant, uint256(labelhash));
        emit NameUnwrapped(node, controller);
    }

    /// @notice Creates or replaces a wrapped subname with its owner, fuses and expiry.
    /// @param parentNode The parent node.
    /// @param label The label.
    /// @param owner The holder.
    /// @param fuses Fuses to burn.
    /// @param expiry The expiry (capped at the parent's).
    /// @return node The subnode.
    function setSubnodeOwner(bytes32 parentNode, string calldata label, address owner, uint32 fuses, uint64 expiry)
        external
        onlyTokenOwner(parentNode)
        returns (bytes32 node)
    {
        bytes32 labelhash = keccak256(bytes(label));
        node = _prepareSubnode(parentNode, labelhash, label, fuses);
        expiry = _normalisedExpiry(parentNode, node, expiry);
        ens.setSubnodeOwner(parentNode, labelhash, address(this));
        _wrapSubnode(node, owner, fuses, expiry);
    }

    /// @notice Like `setSubnodeOwner`, also setting the subname's resolver and TTL in the registry.
    /// @param parentNode The parent node.
    /// @param label The label.
    /// @param owner The holder.
    /// @param resolver The resolver.
    /// @param ttl The TTL.
    /// @param fuses Fuses to burn.
    /// @param expiry The expiry (capped at the parent's).
    /// @return node The subnode.
    function setSubnodeRecord(
        bytes32 parentNode,
        string calldata label,
        address owner,
        address resolver,
        uint64 ttl,
        uint32 fuses,
        uint64 expiry
    ) external onlyTokenOwner(parentNode) returns (bytes32 node) {
        bytes32 labelhash = keccak256(bytes(label));
        node = _prepareSubnode(parentNode, labelhash, label, fuses);
        expiry = _normalisedExpiry(parentNode, node, expiry);
        ens.setSubnodeRecord(parentNode, labelhash, address(this), resolver, ttl);
        _wrapSubnode(node, owner, fuses, expiry);
    }

    /// @notice Sets the registry resolver of a wrapped name.
    /// @param node The node.
    /// @param resolver The resolver.
    function setResolver(bytes32 node, address resolver) external onlyTokenOwner(node) {
        (, uint32 fuses,) = getData(uint256(node));
        if (fuses & CANNOT_SET_RESOLVER != 0) revert OperationProhibited(node);
        ens.setResolver(node, resolver);
    }

    /// @notice Burns owner-controlled fuses of a name.
    /// @param node The node.
    /// @param ownerControlledFuses Fuses to burn.
    /// @return The fuses now burned.
    function setFuses(bytes32 node, uint16 ownerControlledFuses) external onlyTokenOwner(node) returns (uint32) {
        (address owner, uint32 oldFuses, uint64 expiry) = getData(uint256(node));
        if (oldFuses & CANNOT_BURN_FUSES != 0) revert OperationProhibited(node);
        uint32 fuses = oldFuses | uint32(ownerControlledFuses);
        _canFusesBeBurned(node, fuses);
        _tokens[uint256(node)] = _pack(owner, fuses, expiry);
        emit FusesSet(node, fuses);
        return fuses;
    }

    /// @notice Approves or revokes an operator for every name of the caller.
    /// @param operator The operator.
    /// @param approved Whether approved.
    function setApprovalForAll(address operator, bool approved) external {
        _operators[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    /// @notice Transfers a wrapped name (ERC-1155, amount 1).
    /// @param from The holder.
    /// @param to The new holder.
    /// @param id The token (namehash).
    /// @param amount Must be 1.
    /// @param data Ignored (no receiver hook in this stand-in).
    function safeTransferFrom(address from, address to, uint256 id, uint256 amount, bytes calldata data) external {
        data;
        if (amount != 1) revert InvalidAmount(amount);
        if (from != msg.sender && !_operators[from][msg.sender]) revert Unauthorised(bytes32(id), msg.sender);
        (address owner, uint32 fuses, uint64 expiry) = getData(id);
        if (owner != from || to == address(0)) revert IncorrectTargetOwner(to);
        if (fuses & CANNOT_TRANSFER != 0) revert OperationProhibited(bytes32(id));
        _tokens[id] = _pack(to, fuses, expiry);
        emit TransferSingle(msg.sender, from, to, id, 1);
    }

    /// @notice Owner, fuses and expiry of a token; an expired name has no fuses, and no owner when emancipated.
    /// @param id The token (namehash).
    /// @return owner The holder.
    /// @return fuses The fuses in force.
    /// @return expiry The expiry.
    function getData(uint256 id) public view returns (address owner, uint32 fuses, uint64 expiry) {
        uint256 packed = _tokens[id];
        owner = address(uint160(packed));
        fuses = uint32(packed >> 160);
        expiry = uint64(packed >> 192);
        if (expiry < block.timestamp) {
            if (fuses & PARENT_CANNOT_CONTROL != 0) owner = address(0);
            fuses = 0;
        }
    }

    /// @notice The holder of a wrapped name (zero when unwrapped or expired).
    /// @param id The token (namehash).
    /// @return owner The holder.
    function ownerOf(uint256 id) public view returns (address owner) {
        (owner,,) = getData(id);
    }

    /// @notice ERC-1155 balance: 1 for the holder of a name.
    /// @param account The account.
    /// @param id The token.
    /// @return 1 or 0.
    function balanceOf(address account, uint256 id) external view returns (uint256) {
        return ownerOf(id) == account ? 1 : 0;
    }

    /// @notice Whether `operator` may manage every name of `account`.
    /// @param account The holder.
    /// @param operator The operator.
    /// @return Whether approved.
    function isApprovedForAll(address account, address operator) public view returns (bool) {
        return _operators[account][operator];
    }

    /// @notice Whether `addr` may modify a name: its holder or operator, outside a .eth 2LD's grace period.
    /// @param node The node.
    /// @param addr The account.
    /// @return Whether it may.
    function canModifyName(bytes32 node, address addr) public view returns (bool) {
        (address owner, uint32 fuses, uint64 expiry) = getData(uint256(node));
        bool inGracePeriod = fuses & IS_DOT_ETH != 0 && expiry - GRACE_PERIOD < block.timestamp;
        return owner != address(0) && (owner == addr || isApprovedForAll(owner, addr)) && !inGracePeriod;
    }

    /// @notice Whether a name is wrapped here (has a holder and the registry record is this contract's).
    /// @param node The node.
    /// @return Whether wrapped.
    function isWrapped(bytes32 node) public view returns (bool) {
        return ownerOf(uint256(node)) != address(0) && ens.owner(node) == address(this);
    }

    /// @notice ERC-165.
    /// @param interfaceId The interface.
    /// @return Whether supported.
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 || interfaceId == 0xd9b67a26;
    }

    function _prepareSubnode(bytes32 parentNode, bytes32 labelhash, string calldata label, uint32 fuses)
        private
        returns (bytes32 node)
    {
        node = keccak256(abi.encodePacked(parentNode, labelhash));
        (, uint32 parentFuses,) = getData(uint256(parentNode));
        if (isWrapped(node)) {
            (, uint32 childFuses,) = getData(uint256(node));
            if (childFuses & PARENT_CANNOT_CONTROL != 0) revert OperationProhibited(node);
        } else if (parentFuses & CANNOT_CREATE_SUBDOMAIN != 0) {
            revert OperationProhibited(node);
        }
        if (fuses | _USER_SETTABLE_FUSES != _USER_SETTABLE_FUSES) revert OperationProhibited(node);
        if (fuses & _PARENT_CONTROLLED_FUSES != 0 && parentFuses & CANNOT_UNWRAP == 0) {
            revert OperationProhibited(node);
        }
        uint256 length = bytes(label).length;
        if (length == 0) revert LabelTooShort();
        if (length > 255) revert LabelTooLong(label);
        names[node] = abi.encodePacked(uint8(length), label, names[parentNode]);
    }

    function _normalisedExpiry(bytes32 parentNode, bytes32 node, uint64 expiry) private view returns (uint64) {
        uint64 oldExpiry = uint64(_tokens[uint256(node)] >> 192);
        uint64 maxExpiry = uint64(_tokens[uint256(parentNode)] >> 192);
        if (expiry > maxExpiry) expiry = maxExpiry;
        if (expiry < oldExpiry) expiry = oldExpiry;
        return expiry;
    }

    function _wrapSubnode(bytes32 node, address owner, uint32 fuses, uint64 expiry) private {
        _canFusesBeBurned(node, fuses);
        _setToken(node, owner, fuses, expiry);
    }

    function _canFusesBeBurned(bytes32 node, uint32 fuses) private pure {
        uint32 emancipatedAndLocked = PARENT_CANNOT_CONTROL | CANNOT_UNWRAP;
        if (fuses & ~_PARENT_CONTROLLED_FUSES != 0 && fuses & emancipatedAndLocked != emancipatedAndLocked) {
            revert OperationProhibited(node);
        }
    }

    function _setToken(bytes32 node, address owner, uint32 fuses, uint64 expiry) private {
        address previous = address(uint160(_tokens[uint256(node)]));
        _tokens[uint256(node)] = owner == address(0) ? 0 : _pack(owner, fuses, expiry);
        emit TransferSingle(msg.sender, previous, owner, uint256(node), 1);
        if (owner != address(0)) emit NameWrapped(node, names[node], owner, fuses, expiry);
    }

    function _pack(address owner, uint32 fuses, uint64 expiry) private pure returns (uint256) {
        return uint256(uint160(owner)) | (uint256(fuses) << 160) | (uint256(expiry) << 192);
    }
}
