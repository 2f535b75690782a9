// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title PeerIds
/// @notice Recovers the Ethereum address behind a libp2p secp256k1 PeerId.
/// @dev A secp256k1 PeerId inlines its public key as an identity multihash:
///      0x00 (identity) ‖ 0x25 (37 bytes) ‖ protobuf PublicKey{ Type = 2 (Secp256k1), Data = 33-byte
///      compressed point } = 0x00 0x25 0x08 0x02 0x12 0x21 ‖ compressed point.
///      The y coordinate is recovered with the modexp precompile: y = (x³ + 7)^((p + 1) / 4) mod p.
library PeerIds {
    uint256 private constant P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F;
    uint256 private constant SQRT_EXP = (P + 1) / 4;

    /// The PeerId is not an identity-multihash secp256k1 key.
    error UnsupportedPeerId();
    /// The PeerId's key is not a point on secp256k1.
    error InvalidPeerKey();

    /// @notice The Ethereum address of the secp256k1 key inlined in `peerId`.
    function addressOf(bytes calldata peerId) internal view returns (address) {
        if (
            peerId.length != 39 || peerId[0] != 0x00 || peerId[1] != 0x25 || peerId[2] != 0x08 || peerId[3] != 0x02
                || peerId[4] != 0x12 || peerId[5] != 0x21
        ) revert UnsupportedPeerId();
        uint8 prefix = uint8(peerId[6]);
        if (prefix != 0x02 && prefix != 0x03) revert InvalidPeerKey();
        uint256 x = uint256(bytes32(peerId[7:39]));
        if (x >= P) revert InvalidPeerKey();
        uint256 rhs = addmod(mulmod(mulmod(x, x, P), x, P), 7, P);
        uint256 y = _modexp(rhs, SQRT_EXP);
        if (mulmod(y, y, P) != rhs) revert InvalidPeerKey();
        if ((y & 1) != (prefix & 1)) y = P - y;
        return address(uint160(uint256(keccak256(abi.encodePacked(x, y)))));
    }

    function _modexp(uint256 base, uint256 exponent) private view returns (uint256 result) {
        (bool ok, bytes memory out) = address(0x05).staticcall(abi.encode(32, 32, 32, base, exponent, P));
        if (!ok || out.length != 32) revert InvalidPeerKey();
        result = abi.decode(out, (uint256));
    }
}
