// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {DataRegistry} from "../src/DataRegistry.sol";

contract DataRegistryTest is Fixture {

    function test_registerBundle() public {
        bytes32[] memory leaves = recordLeaves(keccak256("u"), 5);
        bytes32 root = rootOf(leaves);
        bytes32 expected = data.bundleIdOf(provider, appId, dataTypeId, root, 5, keccak256("body"), 1000);
        vm.expectEmit(address(data));
        emit DataRegistry.BundleRegistered(expected, appId, dataTypeId, provider, root, 5, keccak256("body"), 1000, "loc");
        vm.prank(provider);
        bytes32 id = data.registerBundle(appId, dataTypeId, root, 5, keccak256("body"), 1000, "loc");
        assertEq(id, expected);
        DataRegistry.Bundle memory b = data.getBundle(id);
        assertEq(b.merkleRoot, root);
        assertEq(b.provider, provider);
        assertEq(uint256(b.recordCount), 5);
        assertTrue(b.active);
    }

    function test_registerBundle_sameBundleTwiceRevertsNamed() public {
        (bytes32 id,) = registerBundle(3);
        bytes32[] memory leaves = recordLeaves(keccak256("user"), 3);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.BundleExists.selector, id));
        data.registerBundle(appId, dataTypeId, rootOf(leaves), 3, keccak256("body"), 4096, "");
    }

    function test_registerBundle_byAuthorizedNodeOnly() public {
        bytes32 root = keccak256("root");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.NotAuthorizedForApp.selector, appId, bob));
        data.registerBundle(appId, dataTypeId, root, 1, 0, 0, "");

        vm.prank(provider);
        apps.setAuthorized(appId, bob, true);
        vm.prank(bob);
        bytes32 id = data.registerBundle(appId, dataTypeId, root, 1, 0, 0, "");
        assertEq(data.getBundle(id).provider, bob);
    }

    function test_registerBundle_badInputs() public {
        vm.startPrank(provider);
        vm.expectRevert(DataRegistry.EmptyBundle.selector);
        data.registerBundle(appId, dataTypeId, keccak256("r"), 0, 0, 0, "");
        vm.expectRevert(DataRegistry.ZeroRoot.selector);
        data.registerBundle(appId, dataTypeId, bytes32(0), 1, 0, 0, "");
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.UnknownDataType.selector, keccak256("x")));
        data.registerBundle(appId, keccak256("x"), keccak256("r"), 1, 0, 0, "");
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.LocatorTooLong.selector, 257));
        data.registerBundle(appId, dataTypeId, keccak256("r"), 1, 0, 0, string(new bytes(257)));
        vm.stopPrank();
    }

    function test_gasIsConstantInRecordCount() public {
        // Counts with the same number of non-zero bytes, so calldata costs the same too
        // (forge's gas report isolates calls and charges calldata).
        bytes32 small = rootOf(recordLeaves(keccak256("a"), 3));
        bytes32 large = rootOf(recordLeaves(keccak256("b"), 300));
        vm.startPrank(provider);
        // Warm the registries' storage so both measured calls pay the same access costs.
        data.registerBundle(appId, dataTypeId, keccak256("warm"), 1, keccak256("w"), 10, "");
        uint256 g0 = gasleft();
        data.registerBundle(appId, dataTypeId, small, 3, keccak256("x"), 10, "");
        uint256 g1 = gasleft();
        data.registerBundle(appId, dataTypeId, large, 0x0300000000, keccak256("y"), 10, "");
        uint256 g2 = gasleft();
        vm.stopPrank();
        assertEq(g0 - g1, g1 - g2, "same gas for 3 and 12,884,901,888 records");
    }

    function test_verify() public {
        (bytes32 id, bytes32[] memory leaves) = registerBundle(7);
        for (uint256 i = 0; i < leaves.length; i++) {
            assertTrue(data.verify(id, leaves[i], proofOf(leaves, i)));
        }
        assertFalse(data.verify(id, keccak256("forged"), proofOf(leaves, 0)));
        assertFalse(data.verify(keccak256("no bundle"), leaves[0], proofOf(leaves, 0)));

        bytes32 user = keccak256("user");
        assertTrue(data.verifyRecord(id, user, 3, keccak256(abi.encode("ciphertext", uint256(3))), proofOf(leaves, 3)));
        assertFalse(data.verifyRecord(id, user, 4, keccak256(abi.encode("ciphertext", uint256(3))), proofOf(leaves, 3)));
    }

    function test_verifyMulti() public {
        // Two leaves of a 2-leaf tree: the multiproof needs no proof nodes, one flag.
        bytes32[] memory leaves = recordLeaves(keccak256("m"), 2);
        vm.prank(provider);
        bytes32 id = data.registerBundle(appId, dataTypeId, rootOf(leaves), 2, 0, 0, "");
        bool[] memory flags = new bool[](1);
        flags[0] = true;
        assertTrue(data.verifyMulti(id, new bytes32[](0), flags, leaves));
    }

    function test_unregister() public {
        (bytes32 id, bytes32[] memory leaves) = registerBundle(2);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.NotBundleOwner.selector, id, stranger));
        data.unregister(id);
        vm.expectEmit(address(data));
        emit DataRegistry.BundleUnregistered(id);
        vm.prank(provider);
        data.unregister(id);
        assertFalse(data.isActive(id));
        assertFalse(data.verify(id, leaves[0], proofOf(leaves, 0)), "withdrawn bundles verify nothing");
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.UnknownBundle.selector, id));
        data.unregister(id);
    }

    function testFuzz_proofsOfEveryLeafVerify(uint8 count, uint256 pick) public {
        count = uint8(bound(count, 1, 60));
        bytes32[] memory leaves = recordLeaves(keccak256(abi.encode(count)), count);
        vm.prank(provider);
        bytes32 id = data.registerBundle(appId, dataTypeId, rootOf(leaves), count, 0, 0, "");
        uint256 i = bound(pick, 0, count - 1);
        assertTrue(data.verify(id, leaves[i], proofOf(leaves, i)));
    }
}
