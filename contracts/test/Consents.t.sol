// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Consents} from "../src/Consents.sol";

contract ConsentsTest is Fixture {

    uint8 internal constant COLLECT = 0;
    uint8 internal constant EXCHANGE = 1;
    bytes32 internal aliceId;
    bytes32 internal tempId;
    bytes32 internal constant PREIMAGE = keccak256("hmac(secret, bob@example.com)");

    function setUp() public override {
        super.setUp();
        vm.prank(alice);
        aliceId = users.create();
        vm.prank(keeper);
        tempId = users.createTemporary(keccak256(abi.encodePacked(PREIMAGE)));
    }

    function one(bytes32 user, uint8 action, bool allowed) internal view returns (Consents.ConsentInput[] memory list) {
        list = new Consents.ConsentInput[](1);
        list[0] = Consents.ConsentInput(user, appId, action, dataTypeId, allowed);
    }

    function signed(uint8 action, bool allowed) internal view returns (Consents.SignedConsent[] memory list) {
        list = new Consents.SignedConsent[](1);
        list[0] = Consents.SignedConsent(appId, action, dataTypeId, allowed);
    }

    function test_ownerWritesDirectly() public {
        vm.expectEmit(address(consents));
        emit Consents.ConsentChanged(aliceId, appId, dataTypeId, COLLECT, true, alice, true);
        vm.prank(alice);
        consents.setConsents(one(aliceId, COLLECT, true));
        assertTrue(consents.isAllowed(aliceId, appId, COLLECT, dataTypeId));
        assertFalse(consents.isAllowed(aliceId, appId, EXCHANGE, dataTypeId));
        assertTrue(consents.setByUser(aliceId, appId, COLLECT, dataTypeId));
    }

    function test_singleConsentGas() public {
        vm.prank(alice);
        consents.setConsents(one(aliceId, COLLECT, true));
    }

    function test_hundredConsentsBatchedGas() public {
        bytes32[] memory types = new bytes32[](50);
        vm.startPrank(provider);
        for (uint256 i = 0; i < 50; i++) {
            types[i] = dataTypes.register(string(abi.encodePacked("type-", bytes32(i))), SCHEMA);
        }
        vm.stopPrank();
        Consents.ConsentInput[] memory list = new Consents.ConsentInput[](100);
        for (uint256 i = 0; i < 100; i++) {
            list[i] = Consents.ConsentInput(aliceId, appId, uint8(i % 2), types[i / 2], true);
        }
        vm.prank(alice);
        consents.setConsents(list);
        assertTrue(consents.isAllowed(aliceId, appId, EXCHANGE, types[49]));
    }

    function test_controllerMayCreateButNotFlipUserConsent() public {
        // The keeper writes for its temporary user.
        vm.expectEmit(address(consents));
        emit Consents.ConsentChanged(tempId, appId, dataTypeId, COLLECT, true, keeper, false);
        vm.prank(keeper);
        consents.setConsents(one(tempId, COLLECT, true));
        assertTrue(consents.isAllowed(tempId, appId, COLLECT, dataTypeId));
        // ...and may change what it set itself.
        vm.roll(block.number + 1);
        vm.prank(keeper);
        consents.setConsents(one(tempId, COLLECT, false));
        assertFalse(consents.isAllowed(tempId, appId, COLLECT, dataTypeId));

        // The user takes the account over and decides.
        vm.prank(keeper);
        users.unlockTemporary(PREIMAGE, bob);
        vm.roll(block.number + 1);
        vm.prank(bob);
        consents.setConsents(one(tempId, COLLECT, false));

        // The keeper (still the controller) can no longer flip it.
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(Consents.SetByUser.selector, tempId, appId, COLLECT, dataTypeId));
        consents.setConsents(one(tempId, COLLECT, true));
        // But it may still create consents the user never set.
        vm.prank(keeper);
        consents.setConsents(one(tempId, EXCHANGE, true));
    }

    function test_unauthorizedWritersRevert() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Consents.NotAuthorized.selector, aliceId, stranger));
        consents.setConsents(one(aliceId, COLLECT, true));

        // A keeper that is not alice's controller.
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(Consents.NotAuthorized.selector, aliceId, keeper));
        consents.setConsents(one(aliceId, COLLECT, true));

        // A removed keeper loses its authority.
        vm.prank(governor);
        controllers.removeController(keeper);
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(Consents.NotAuthorized.selector, tempId, keeper));
        consents.setConsents(one(tempId, COLLECT, true));
    }

    function test_badInputsRevert() public {
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(Consents.InvalidAction.selector, uint8(2)));
        consents.setConsents(one(aliceId, 2, true));
        vm.expectRevert(Consents.EmptyBatch.selector);
        consents.setConsents(new Consents.ConsentInput[](0));

        Consents.ConsentInput[] memory list = one(aliceId, COLLECT, true);
        list[0].appId = keccak256("nope");
        vm.expectRevert(abi.encodeWithSelector(Consents.UnknownApp.selector, keccak256("nope")));
        consents.setConsents(list);
        list = one(aliceId, COLLECT, true);
        list[0].dataTypeId = keccak256("nope");
        vm.expectRevert(abi.encodeWithSelector(Consents.UnknownDataType.selector, keccak256("nope")));
        consents.setConsents(list);
        vm.expectRevert(abi.encodeWithSelector(Consents.UnknownUser.selector, bytes32(uint256(7))));
        consents.setConsents(one(bytes32(uint256(7)), COLLECT, true));
        vm.stopPrank();
    }

    function test_bySignature_relayedByAnyone() public {
        Consents.SignedConsent[] memory batch = signed(EXCHANGE, true);
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 digest = consents.consentBatchDigest(aliceId, batch, 0, deadline);
        bytes memory sig = signDigest(aliceKey, digest);

        vm.expectEmit(address(consents));
        emit Consents.ConsentChanged(aliceId, appId, dataTypeId, EXCHANGE, true, alice, true);
        vm.prank(stranger);
        consents.setConsentsBySig(aliceId, batch, deadline, sig);
        assertTrue(consents.isAllowed(aliceId, appId, EXCHANGE, dataTypeId));
        assertEq(consents.nonces(alice), 1);

        // Replay fails: the nonce moved on, so the signature no longer matches.
        vm.expectRevert(abi.encodeWithSelector(Consents.InvalidSignature.selector, aliceId));
        consents.setConsentsBySig(aliceId, batch, deadline, sig);
    }

    function test_bySignature_rejectsWrongSignerExpiredAndUnknown() public {
        Consents.SignedConsent[] memory batch = signed(COLLECT, true);
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 digest = consents.consentBatchDigest(aliceId, batch, 0, deadline);

        vm.expectRevert(abi.encodeWithSelector(Consents.InvalidSignature.selector, aliceId));
        consents.setConsentsBySig(aliceId, batch, deadline, signDigest(bobKey, digest));

        vm.warp(deadline + 1);
        bytes memory sig = signDigest(aliceKey, digest);
        vm.expectRevert(abi.encodeWithSelector(Consents.SignatureExpired.selector, deadline));
        consents.setConsentsBySig(aliceId, batch, deadline, sig);

        // A temporary account has no owner to sign.
        vm.expectRevert(abi.encodeWithSelector(Consents.UnknownUser.selector, tempId));
        consents.setConsentsBySig(tempId, batch, block.timestamp + 1, sig);
    }

    function test_isAllowedAt_answersForThePast() public {
        vm.roll(100);
        vm.prank(alice);
        consents.setConsents(one(aliceId, COLLECT, true));
        vm.roll(200);
        vm.prank(alice);
        consents.setConsents(one(aliceId, COLLECT, false));
        vm.roll(300);
        vm.prank(alice);
        consents.setConsents(one(aliceId, COLLECT, true));

        assertFalse(consents.isAllowedAt(aliceId, appId, COLLECT, dataTypeId, 99));
        assertTrue(consents.isAllowedAt(aliceId, appId, COLLECT, dataTypeId, 100));
        assertTrue(consents.isAllowedAt(aliceId, appId, COLLECT, dataTypeId, 199));
        assertFalse(consents.isAllowedAt(aliceId, appId, COLLECT, dataTypeId, 200));
        assertFalse(consents.isAllowedAt(aliceId, appId, COLLECT, dataTypeId, 299));
        assertTrue(consents.isAllowedAt(aliceId, appId, COLLECT, dataTypeId, 300));
        assertTrue(consents.isAllowedAt(aliceId, appId, COLLECT, dataTypeId, 1e9));
        assertEq(consents.history(aliceId, appId, COLLECT, dataTypeId).length, 3);
    }

    function test_sameBlockWritesKeepTheLast() public {
        vm.startPrank(alice);
        consents.setConsents(one(aliceId, COLLECT, true));
        consents.setConsents(one(aliceId, COLLECT, false));
        vm.stopPrank();
        assertEq(consents.history(aliceId, appId, COLLECT, dataTypeId).length, 1);
        assertFalse(consents.isAllowedAt(aliceId, appId, COLLECT, dataTypeId, block.number));
    }

    /// Random histories: isAllowedAt agrees with a linear scan of what was written.
    function testFuzz_isAllowedAtMatchesHistory(uint256 seed, uint8 writes, uint256 query) public {
        writes = uint8(bound(writes, 1, 40));
        uint256[] memory blocks = new uint256[](writes);
        bool[] memory values = new bool[](writes);
        uint256 blockNumber = 10;
        for (uint256 i = 0; i < writes; i++) {
            seed = uint256(keccak256(abi.encode(seed, i)));
            blockNumber += seed % 4; // 0 means another write in the same block
            values[i] = (seed >> 8) % 2 == 1;
            blocks[i] = blockNumber;
            vm.roll(blockNumber);
            vm.prank(alice);
            consents.setConsents(one(aliceId, EXCHANGE, values[i]));
        }
        query = bound(query, 0, blockNumber + 5);
        bool expected = false;
        for (uint256 i = 0; i < writes; i++) {
            if (blocks[i] <= query) expected = values[i];
        }
        assertEq(consents.isAllowedAt(aliceId, appId, EXCHANGE, dataTypeId, query), expected);
        assertEq(consents.isAllowed(aliceId, appId, EXCHANGE, dataTypeId), values[writes - 1]);
    }
}
