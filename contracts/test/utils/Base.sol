// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The forge cheatcodes these tests use (forge's cheatcode address and signatures).
interface Vm {
    function prank(address) external;
    function startPrank(address) external;
    function stopPrank() external;
    function deal(address, uint256) external;
    function warp(uint256) external;
    function roll(uint256) external;
    function addr(uint256) external pure returns (address);
    function sign(uint256, bytes32) external pure returns (uint8, bytes32, bytes32);
    function label(address, string calldata) external;
    function assume(bool) external pure;
    function expectRevert() external;
    function expectRevert(bytes4) external;
    function expectRevert(bytes calldata) external;
    function expectEmit() external;
    function expectEmit(address) external;
    function expectEmit(bool, bool, bool, bool) external;
    function expectEmit(bool, bool, bool, bool, address) external;
    function assertEq(uint256, uint256, string calldata) external pure;
    function assertEq(int256, int256, string calldata) external pure;
    function assertEq(address, address, string calldata) external pure;
    function assertEq(bytes32, bytes32, string calldata) external pure;
    function assertEq(bool, bool, string calldata) external pure;
    function assertEq(string calldata, string calldata, string calldata) external pure;
    function assertEq(bytes calldata, bytes calldata, string calldata) external pure;
    function assertTrue(bool, string calldata) external pure;
    function assertFalse(bool, string calldata) external pure;
    function assertGe(uint256, uint256, string calldata) external pure;
}

/// @notice Base for the airbloc forge tests: cheatcodes, assertions, helpers.
abstract contract Base {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    // Targets for invariant tests; filled by the tests that declare handlers.
    address[] private _targets;

    function targetContracts() public view returns (address[] memory) {
        return _targets;
    }

    function targetContract(address target) internal {
        _targets.push(target);
    }

    function assertEq(uint256 a, uint256 b) internal pure {
        vm.assertEq(a, b, "");
    }

    function assertEq(uint256 a, uint256 b, string memory why) internal pure {
        vm.assertEq(a, b, why);
    }

    function assertEq(address a, address b) internal pure {
        vm.assertEq(a, b, "");
    }

    function assertEq(bytes32 a, bytes32 b) internal pure {
        vm.assertEq(a, b, "");
    }

    function assertEq(bool a, bool b) internal pure {
        vm.assertEq(a, b, "");
    }

    function assertEq(string memory a, string memory b) internal pure {
        vm.assertEq(a, b, "");
    }

    function assertTrue(bool a) internal pure {
        vm.assertTrue(a, "");
    }

    function assertTrue(bool a, string memory why) internal pure {
        vm.assertTrue(a, why);
    }

    function assertFalse(bool a) internal pure {
        vm.assertFalse(a, "");
    }

    function assertFalse(bool a, string memory why) internal pure {
        vm.assertFalse(a, why);
    }

    /// Maps `x` into `[min, max]` (uniformly enough for fuzzing).
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        return min + (x % (max - min + 1));
    }

    /// A secp256k1 PeerId (identity multihash of the protobuf public key) for `secret`.
    function peerIdOf(uint256 secret) internal returns (bytes memory) {
        (uint256 x, uint256 y) = _publicKey(secret);
        return abi.encodePacked(hex"002508021221", y % 2 == 0 ? bytes1(0x02) : bytes1(0x03), bytes32(x));
    }

    /// The uncompressed public key (0x04 ‖ x ‖ y) for `secret`.
    function publicKeyOf(uint256 secret) internal returns (bytes memory) {
        (uint256 x, uint256 y) = _publicKey(secret);
        return abi.encodePacked(bytes1(0x04), bytes32(x), bytes32(y));
    }

    function _publicKey(uint256 secret) private returns (uint256 x, uint256 y) {
        (bool ok, bytes memory out) = address(vm).call(abi.encodeWithSignature("createWallet(uint256)", secret));
        require(ok, "createWallet cheatcode failed");
        // Wallet { address addr; uint256 publicKeyX; uint256 publicKeyY; uint256 privateKey; }
        (, x, y,) = abi.decode(out, (address, uint256, uint256, uint256));
    }

    function signDigest(uint256 secret, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(secret, digest);
        return abi.encodePacked(r, s, v);
    }
}
