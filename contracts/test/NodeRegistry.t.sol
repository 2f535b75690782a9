// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {NodeRegistry} from "../src/NodeRegistry.sol";
import {PeerIds} from "../src/lib/PeerIds.sol";

contract PeerIdsHarness {
    function addressOf(bytes calldata peerId) external view returns (address) {
        return PeerIds.addressOf(peerId);
    }
}

contract NodeRegistryTest is Fixture {
    PeerIdsHarness internal peerIds;


    function setUp() public override {
        super.setUp();
        peerIds = new PeerIdsHarness();
    }

    function addrs(string memory a) internal pure returns (string[] memory list) {
        list = new string[](1);
        list[0] = a;
    }

    function test_register_emitsAndStores() public {
        bytes memory peerId = peerIdOf(providerKey);
        string[] memory ma = addrs("/ip4/127.0.0.1/tcp/9650");
        vm.expectEmit(address(nodes));
        emit NodeRegistry.NodeRegistered(provider, 1 | 2, peerId, ma);
        vm.prank(provider);
        nodes.register(1 | 2, peerId, ma);

        NodeRegistry.Node memory n = nodes.getNode(provider);
        assertTrue(n.active);
        assertEq(uint256(n.roles), 3);
        assertEq(keccak256(n.peerId), keccak256(peerId));
        assertEq(n.multiaddrs[0], ma[0]);
        assertTrue(nodes.hasRole(provider, nodes.ROLE_PROVIDER()));
        assertFalse(nodes.hasRole(provider, nodes.ROLE_KEEPER()));
        assertEq(nodes.activeCount(), 1);
        assertEq(nodes.activeNodes(0, 10)[0], provider);
    }

    function test_register_revertsOnSomeoneElsesPeerId() public {
        bytes memory peerId = peerIdOf(aliceKey);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.PeerIdMismatch.selector, provider, alice));
        vm.prank(provider);
        nodes.register(1, peerId, new string[](0));
    }

    function test_register_revertsOnBadPeerIdAndRoles() public {
        vm.prank(provider);
        vm.expectRevert(PeerIds.UnsupportedPeerId.selector);
        nodes.register(1, hex"0025080212", new string[](0));

        bytes memory peerId = peerIdOf(providerKey);
        peerId[6] = 0x05;
        vm.prank(provider);
        vm.expectRevert(PeerIds.InvalidPeerKey.selector);
        nodes.register(1, peerId, new string[](0));

        bytes memory good = peerIdOf(providerKey);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.InvalidRoles.selector, uint8(0)));
        nodes.register(0, good, new string[](0));
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.InvalidRoles.selector, uint8(16)));
        nodes.register(16, good, new string[](0));
    }

    function test_register_revertsOnTooManyOrLongMultiaddrs() public {
        bytes memory peerId = peerIdOf(providerKey);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.TooManyMultiaddrs.selector, 9));
        nodes.register(1, peerId, new string[](9));

        string[] memory long = new string[](1);
        long[0] = string(new bytes(257));
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.MultiaddrTooLong.selector, 0));
        nodes.register(1, peerId, long);
    }

    function test_register_twiceReverts() public {
        bytes memory peerId = peerIdOf(providerKey);
        vm.startPrank(provider);
        nodes.register(1, peerId, new string[](0));
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.AlreadyActive.selector, provider));
        nodes.register(1, peerId, new string[](0));
        vm.stopPrank();
    }

    function test_update_and_deactivate() public {
        vm.startPrank(provider);
        nodes.register(1, peerIdOf(providerKey), new string[](0));
        string[] memory ma = addrs("/dns4/p.example/tcp/9650");
        vm.expectEmit(address(nodes));
        emit NodeRegistry.NodeUpdated(provider, 5, ma);
        nodes.update(5, ma);
        assertEq(uint256(nodes.getNode(provider).roles), 5);

        vm.expectEmit(address(nodes));
        emit NodeRegistry.NodeDeactivated(provider);
        nodes.deactivate();
        assertFalse(nodes.isActive(provider));
        assertEq(nodes.activeCount(), 0);

        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotActive.selector, provider));
        nodes.deactivate();
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotActive.selector, provider));
        nodes.update(1, ma);

        // Re-activation with the same key.
        nodes.register(2, peerIdOf(providerKey), new string[](0));
        assertTrue(nodes.isActive(provider));
        vm.stopPrank();
    }

    function test_activeList_staysConsistent() public {
        uint256[4] memory keys = [uint256(11), 12, 13, 14];
        for (uint256 i = 0; i < keys.length; i++) {
            vm.prank(vm.addr(keys[i]));
            nodes.register(1, peerIdOf(keys[i]), new string[](0));
        }
        vm.prank(vm.addr(12));
        nodes.deactivate();
        address[] memory page = nodes.activeNodes(0, 10);
        assertEq(page.length, 3);
        for (uint256 i = 0; i < page.length; i++) {
            assertTrue(page[i] != vm.addr(12));
            assertTrue(nodes.isActive(page[i]));
        }
        assertEq(nodes.activeNodes(2, 10).length, 1);
        assertEq(nodes.activeNodes(5, 10).length, 0);
    }

    function testFuzz_peerIdRecoversTheAddress(uint256 secret) public {
        secret = bound(secret, 1, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140);
        assertEq(peerIds.addressOf(peerIdOf(secret)), vm.addr(secret));
    }
}
