// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IRecordWriter} from "./IENSRegistry.sol";
import {StandInBaseRegistrar} from "./StandInBaseRegistrar.sol";
import {StandInNameWrapper} from "./StandInNameWrapper.sol";
import {StandInReverseRegistrar} from "./StandInReverseRegistrar.sol";

/// @title Test stand-in for ENS's price oracle
/// @notice Imitates the `price(name, expires, duration)` interface of ENS's StablePriceOracle with a
/// flat rent per second and no premium. Left out: prices by name length, the USD/ETH feed, the
/// premium after expiry.
contract StandInPriceOracle {
    struct Price {
        uint256 base;
        uint256 premium;
    }

    /// @notice About 0.001 ether a year.
    uint256 public constant WEI_PER_SECOND = 31_709_791;

    /// @notice The rent for registering or renewing `name` for `duration` seconds.
    /// @param name The label.
    /// @param expires Its current expiry.
    /// @param duration Seconds.
    /// @return The price (base rent, premium).
    function price(string calldata name, uint256 expires, uint256 duration) external pure returns (Price memory) {
        name;
        expires;
        return Price(duration * WEI_PER_SECOND, 0);
    }
}

/// @title Test stand-in for ENS's wrapping ETHRegistrarController
/// @notice Imitates the published interface of the controller that registers .eth names through the
/// NameWrapper: commit `makeCommitment(...)`, wait at least `minCommitmentAge` (at most
/// `maxCommitmentAge`), then `register` with the rent: the name is registered for at least 28 days
/// and wrapped for its owner with the fuses asked for; records in `data` are written through the
/// resolver, and `reverseRecord` sets the caller's reverse record. Errors carry the deployed names.
/// Left out: renewals' referrer events, name validity by Unicode length (bytes are counted here),
/// withdrawals of the collected rent.
contract StandInETHRegistrarController {
    uint256 public constant MIN_REGISTRATION_DURATION = 28 days;
    // ENS's getter names, kept so that callers of the deployed controller read them the same way.
    // solhint-disable-next-line const-name-snakecase
    uint256 public constant minCommitmentAge = 60;
    // solhint-disable-next-line const-name-snakecase
    uint256 public constant maxCommitmentAge = 1 days;
    // namehash("eth")
    bytes32 private constant _ETH_NODE = 0x93cdeb708b7545dc668eb9280176169d1c33cfd8ed6f04690a0bcc88a93fc4ae;

    StandInBaseRegistrar public immutable base;
    StandInNameWrapper public immutable nameWrapper;
    StandInReverseRegistrar public immutable reverseRegistrar;
    StandInPriceOracle public immutable prices;

    mapping(bytes32 commitment => uint256 timestamp) public commitments;

    /// @notice A name was registered.
    /// @param name The label.
    /// @param label Its hash.
    /// @param owner The holder.
    /// @param baseCost The rent paid.
    /// @param premium The premium paid.
    /// @param expires The registrar expiry.
    event NameRegistered(
        string name, bytes32 indexed label, address indexed owner, uint256 baseCost, uint256 premium, uint256 expires
    );

    error CommitmentTooNew(bytes32 commitment);
    error CommitmentTooOld(bytes32 commitment);
    error NameNotAvailable(string name);
    error DurationTooShort(uint256 duration);
    error ResolverRequiredWhenDataSupplied();
    error UnexpiredCommitmentExists(bytes32 commitment);
    error InsufficientValue();
    error RefundFailed();

    constructor(
        StandInBaseRegistrar baseRegistrar,
        StandInNameWrapper wrapper,
        StandInReverseRegistrar reverse,
        StandInPriceOracle oracle
    ) {
        base = baseRegistrar;
        nameWrapper = wrapper;
        reverseRegistrar = reverse;
        prices = oracle;
    }

    /// @notice The rent for `name` for `duration` seconds.
    /// @param name The label.
    /// @param duration Seconds.
    /// @return price The price.
    function rentPrice(string calldata name, uint256 duration)
        public
        view
        returns (StandInPriceOracle.Price memory price)
    {
        return prices.price(name, base.nameExpires(uint256(keccak256(bytes(name)))), duration);
    }

    /// @notice Whether a label may be registered here (three bytes or more).
    /// @param name The label.
    /// @return Whether valid.
    function valid(string calldata name) public pure returns (bool) {
        return bytes(name).length >= 3;
    }

    /// @notice Whether a label is valid and free.
    /// @param name The label.
    /// @return Whether available.
    function available(string calldata name) public view returns (bool) {
        return valid(name) && base.available(uint256(keccak256(bytes(name))));
    }

    /// @notice The commitment to a registration.
    /// @param name The label.
    /// @param owner The future holder.
    /// @param duration Seconds.
    /// @param secret A secret.
    /// @param resolver The resolver.
    /// @param data Record writes.
    /// @param reverseRecord Whether to set the caller's reverse record.
    /// @param ownerControlledFuses Fuses to burn.
    /// @return The commitment.
    function makeCommitment(
        string calldata name,
        address owner,
        uint256 duration,
        bytes32 secret,
        address resolver,
        bytes[] calldata data,
        bool reverseRecord,
        uint16 ownerControlledFuses
    ) public pure returns (bytes32) {
        if (data.length > 0 && resolver == address(0)) revert ResolverRequiredWhenDataSupplied();
        return keccak256(
            abi.encode(
                keccak256(bytes(name)), owner, duration, secret, resolver, data, reverseRecord, ownerControlledFuses
            )
        );
    }

    /// @notice Records a commitment (the first half of commit and reveal).
    /// @param commitment The commitment.
    function commit(bytes32 commitment) external {
        if (commitments[commitment] + maxCommitmentAge >= block.timestamp) revert UnexpiredCommitmentExists(commitment);
        commitments[commitment] = block.timestamp;
    }

    /// @notice Registers and wraps a committed name, paying its rent (the excess is refunded).
    /// @param name The label.
    /// @param owner The holder.
    /// @param duration Seconds.
    /// @param secret The secret committed to.
    /// @param resolver The resolver.
    /// @param data Record writes.
    /// @param reverseRecord Whether to set the caller's reverse record.
    /// @param ownerControlledFuses Fuses to burn.
    function register(
        string calldata name,
        address owner,
        uint256 duration,
        bytes32 secret,
        address resolver,
        bytes[] calldata data,
        bool reverseRecord,
        uint16 ownerControlledFuses
    ) external payable {
        uint256 cost = _consumeCommitment(
            name, duration, makeCommitment(name, owner, duration, secret, resolver, data, reverseRecord, ownerControlledFuses)
        );
        uint256 expires = nameWrapper.registerAndWrapETH2LD(name, owner, duration, resolver, ownerControlledFuses);
        _setRecords(name, resolver, data, reverseRecord);
        emit NameRegistered(name, keccak256(bytes(name)), owner, cost, 0, expires);
        if (msg.value > cost) {
            (bool refunded,) = payable(msg.sender).call{value: msg.value - cost}("");
            if (!refunded) revert RefundFailed();
        }
    }

    function _consumeCommitment(string calldata name, uint256 duration, bytes32 commitment)
        private
        returns (uint256 cost)
    {
        StandInPriceOracle.Price memory price = rentPrice(name, duration);
        cost = price.base + price.premium;
        if (msg.value < cost) revert InsufficientValue();
        if (commitments[commitment] + minCommitmentAge > block.timestamp) revert CommitmentTooNew(commitment);
        if (commitments[commitment] + maxCommitmentAge <= block.timestamp) revert CommitmentTooOld(commitment);
        if (!available(name)) revert NameNotAvailable(name);
        delete commitments[commitment];
        if (duration < MIN_REGISTRATION_DURATION) revert DurationTooShort(duration);
    }

    function _setRecords(string calldata name, address resolver, bytes[] calldata data, bool reverseRecord) private {
        if (data.length > 0) {
            bytes32 node = keccak256(abi.encodePacked(_ETH_NODE, keccak256(bytes(name))));
            IRecordWriter(resolver).multicallWithNodeCheck(node, data);
        }
        if (reverseRecord) {
            reverseRegistrar.setNameForAddr(msg.sender, msg.sender, resolver, string.concat(name, ".eth"));
        }
    }
}
