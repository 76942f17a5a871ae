// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {OffchainLookup} from "./IENSRegistry.sol";

/// @notice What the gateway is asked: the name and the resolver call.
interface IResolverService {
    /// @notice Resolves `data` for `name` offchain.
    /// @param name The DNS-encoded name.
    /// @param data The resolver call.
    /// @return result The answer.
    /// @return expires Until when the signature holds.
    /// @return sig The signer's signature.
    function resolve(bytes calldata name, bytes calldata data)
        external
        view
        returns (bytes memory result, uint64 expires, bytes memory sig);
}

/// @title An offchain (CCIP-Read) resolver for tests
/// @notice Imitates ENS's published offchain-resolver design: `resolve` reverts with EIP-3668
/// `OffchainLookup` naming its gateway URL; `resolveWithProof` accepts the gateway's answer only when
/// it is signed by a signer this resolver trusts, for this resolver and this request, and not
/// expired. The signed hash is keccak256(0x1900, resolver, expires, keccak256(request),
/// keccak256(result)).
contract TestOffchainResolver {
    string public url;
    address public immutable signer;

    error SignatureExpired(uint64 expires);
    error UnknownSigner(address recovered);

    constructor(string memory gatewayUrl, address trustedSigner) {
        url = gatewayUrl;
        signer = trustedSigner;
    }

    /// @notice Asks the caller to fetch the answer from the gateway (EIP-3668).
    /// @param name The DNS-encoded name.
    /// @param data The resolver call.
    /// @return Never returns.
    function resolve(bytes calldata name, bytes calldata data) external view returns (bytes memory) {
        bytes memory callData = abi.encodeCall(IResolverService.resolve, (name, data));
        string[] memory urls = new string[](1);
        urls[0] = url;
        revert OffchainLookup(address(this), urls, callData, this.resolveWithProof.selector, callData);
    }

    /// @notice Checks the gateway's signed answer and returns it.
    /// @param response ABI-encoded (result, expires, sig) from the gateway.
    /// @param extraData The request sent to the gateway.
    /// @return The answer.
    function resolveWithProof(bytes calldata response, bytes calldata extraData) external view returns (bytes memory) {
        (bytes memory result, uint64 expires, bytes memory sig) = abi.decode(response, (bytes, uint64, bytes));
        if (expires < block.timestamp) revert SignatureExpired(expires);
        bytes32 digest = keccak256(
            abi.encodePacked(hex"1900", address(this), expires, keccak256(extraData), keccak256(result))
        );
        address recovered = ECDSA.recover(digest, sig);
        if (recovered != signer) revert UnknownSigner(recovered);
        return result;
    }

    /// @notice ERC-165: the extended resolver interface.
    /// @param interfaceId The interface.
    /// @return Whether supported.
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 || interfaceId == 0x9061b923;
    }
}
