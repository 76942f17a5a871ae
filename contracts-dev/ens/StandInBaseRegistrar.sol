// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IENSRegistry} from "./IENSRegistry.sol";

/// @title Test stand-in for ENS's .eth BaseRegistrarImplementation
/// @notice Imitates the deployed registrar's published interface and behaviour: each .eth 2LD is an
/// ERC-721 token (id = labelhash) with an expiry; `ownerOf` reverts once the name has expired; an
/// expired name stays unavailable for a 90-day grace period; controllers register and renew and set
/// the registry owner; the token holder can `reclaim` the registry record.
/// Left out: the legacy registrar migration, `registerOnly`, ERC-721 name/symbol metadata (a copied
/// deployment has no constructor storage), and Ownable (one immutable admin adds controllers).
contract StandInBaseRegistrar is ERC721 {
    uint256 public constant GRACE_PERIOD = 90 days;
    bytes4 private constant _RECLAIM_ID = bytes4(keccak256("reclaim(uint256,address)"));

    IENSRegistry public immutable ens;
    bytes32 public immutable baseNode;
    address public immutable admin;

    mapping(address controller => bool) public controllers;
    mapping(uint256 id => uint256) private _expiries;

    /// @notice A controller was added.
    /// @param controller The controller.
    event ControllerAdded(address indexed controller);
    /// @notice A name was registered.
    /// @param id The labelhash.
    /// @param owner The registrant.
    /// @param expires Its expiry.
    event NameRegistered(uint256 indexed id, address indexed owner, uint256 expires);
    /// @notice A name was renewed.
    /// @param id The labelhash.
    /// @param expires Its new expiry.
    event NameRenewed(uint256 indexed id, uint256 expires);

    error NotAdmin(address caller);
    error NotController(address caller);
    error NotLive();
    error NameNotAvailable(uint256 id);
    error NameExpired(uint256 id, uint256 expiredAt);
    error NotOwnerOrApproved(uint256 id, address caller);

    modifier live() {
        if (ens.owner(baseNode) != address(this)) revert NotLive();
        _;
    }

    modifier onlyController() {
        if (!controllers[msg.sender]) revert NotController(msg.sender);
        _;
    }

    constructor(IENSRegistry registry, bytes32 node, address administrator) ERC721("", "") {
        ens = registry;
        baseNode = node;
        admin = administrator;
    }

    /// @notice Authorises a controller to register and renew names.
    /// @param controller The controller.
    function addController(address controller) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        controllers[controller] = true;
        emit ControllerAdded(controller);
    }

    /// @notice Registers a name for `duration` seconds and makes `owner` its registry owner.
    /// @param id The labelhash.
    /// @param owner The registrant.
    /// @param duration Seconds.
    /// @return The expiry.
    function register(uint256 id, address owner, uint256 duration) external live onlyController returns (uint256) {
        if (!available(id)) revert NameNotAvailable(id);
        uint256 expires = block.timestamp + duration;
        _expiries[id] = expires;
        if (_ownerOf(id) != address(0)) _burn(id);
        _mint(owner, id);
        ens.setSubnodeOwner(baseNode, bytes32(id), owner);
        emit NameRegistered(id, owner, expires);
        return expires;
    }

    /// @notice Extends a registration that has not left its grace period.
    /// @param id The labelhash.
    /// @param duration Seconds.
    /// @return The new expiry.
    function renew(uint256 id, uint256 duration) external live onlyController returns (uint256) {
        if (_expiries[id] + GRACE_PERIOD < block.timestamp) revert NameExpired(id, _expiries[id]);
        _expiries[id] += duration;
        emit NameRenewed(id, _expiries[id]);
        return _expiries[id];
    }

    /// @notice Sets the registry owner of a name the caller holds (or may manage).
    /// @param id The labelhash.
    /// @param owner The new registry owner.
    function reclaim(uint256 id, address owner) external live {
        if (!_isAuthorized(ownerOf(id), msg.sender, id)) revert NotOwnerOrApproved(id, msg.sender);
        ens.setSubnodeOwner(baseNode, bytes32(id), owner);
    }

    /// @notice When a name expires (0 if never registered).
    /// @param id The labelhash.
    /// @return The expiry.
    function nameExpires(uint256 id) external view returns (uint256) {
        return _expiries[id];
    }

    /// @notice Whether a name can be registered (never registered, or past its grace period).
    /// @param id The labelhash.
    /// @return Whether it is available.
    function available(uint256 id) public view returns (bool) {
        return _expiries[id] + GRACE_PERIOD < block.timestamp;
    }

    /// @inheritdoc ERC721
    function ownerOf(uint256 tokenId) public view override returns (address) {
        if (_expiries[tokenId] <= block.timestamp) revert NameExpired(tokenId, _expiries[tokenId]);
        return super.ownerOf(tokenId);
    }

    /// @inheritdoc ERC721
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == _RECLAIM_ID || super.supportsInterface(interfaceId);
    }

    /// @dev Holders cannot transfer an expired name (the registrar itself still burns and mints).
    function _update(address to, uint256 tokenId, address auth) internal override returns (address) {
        if (auth != address(0) && _expiries[tokenId] <= block.timestamp) {
            revert NameExpired(tokenId, _expiries[tokenId]);
        }
        return super._update(to, tokenId, auth);
    }
}
