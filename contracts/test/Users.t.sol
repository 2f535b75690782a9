// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Users} from "../src/Users.sol";

contract UsersTest is Fixture {

    bytes32 internal constant PREIMAGE = keccak256("hmac(keeper-secret, alice@example.com)");
    bytes32 internal identityHash = keccak256(abi.encodePacked(PREIMAGE));

    function test_create() public {
        bytes32 expected = keccak256(abi.encode("airbloc.user", alice));
        vm.expectEmit(address(users));
        emit Users.UserCreated(expected, alice);
        vm.prank(alice);
        bytes32 id = users.create();
        assertEq(id, expected);
        assertEq(users.ownerOf(id), alice);
        assertEq(users.userOf(alice), id);
        assertTrue(users.exists(id));
        assertEq(uint256(users.getUser(id).status), uint256(Users.Status.Active));
    }

    function test_create_oneAccountPerOwner() public {
        vm.startPrank(alice);
        users.create();
        vm.expectRevert(abi.encodeWithSelector(Users.AccountExists.selector, alice));
        users.create();
        vm.stopPrank();
    }

    function test_createTemporary() public {
        bytes32 expected = keccak256(abi.encode("airbloc.user.temporary", identityHash));
        vm.expectEmit(address(users));
        emit Users.TemporaryUserCreated(expected, identityHash, keeper);
        vm.prank(keeper);
        bytes32 id = users.createTemporary(identityHash);
        assertEq(id, expected);
        assertEq(users.userByIdentity(identityHash), id);
        assertEq(users.controllerOf(id), keeper);
        assertEq(users.ownerOf(id), address(0));
        assertEq(uint256(users.getUser(id).status), uint256(Users.Status.Temporary));
    }

    function test_createTemporary_reverts() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Users.NotRegisteredController.selector, stranger));
        users.createTemporary(identityHash);

        vm.startPrank(keeper);
        vm.expectRevert(Users.ZeroIdentity.selector);
        users.createTemporary(bytes32(0));
        users.createTemporary(identityHash);
        vm.expectRevert(abi.encodeWithSelector(Users.IdentityTaken.selector, identityHash));
        users.createTemporary(identityHash);
        vm.stopPrank();
    }

    function test_unlockTemporary() public {
        vm.prank(keeper);
        bytes32 id = users.createTemporary(identityHash);
        vm.expectEmit(address(users));
        emit Users.TemporaryUserUnlocked(id, alice, keeper);
        vm.prank(keeper);
        assertEq(users.unlockTemporary(PREIMAGE, alice), id);
        assertEq(users.ownerOf(id), alice);
        assertEq(users.userOf(alice), id);
        assertEq(uint256(users.getUser(id).status), uint256(Users.Status.Active));

        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(Users.NotTemporary.selector, id));
        users.unlockTemporary(PREIMAGE, bob);
    }

    function test_unlockTemporary_reverts() public {
        vm.prank(keeper);
        bytes32 id = users.createTemporary(identityHash);

        bytes32 wrong = keccak256("guess");
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(Users.UnknownIdentity.selector, keccak256(abi.encodePacked(wrong))));
        users.unlockTemporary(wrong, alice);

        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Users.NotUserController.selector, id, stranger));
        users.unlockTemporary(PREIMAGE, alice);

        vm.prank(keeper);
        vm.expectRevert(Users.ZeroAddress.selector);
        users.unlockTemporary(PREIMAGE, address(0));

        vm.prank(bob);
        users.create();
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(Users.AccountExists.selector, bob));
        users.unlockTemporary(PREIMAGE, bob);
    }

    function test_setController() public {
        vm.prank(alice);
        bytes32 id = users.create();
        vm.expectEmit(address(users));
        emit Users.ControllerChanged(id, keeper);
        vm.prank(alice);
        users.setController(id, keeper);
        assertEq(users.controllerOf(id), keeper);

        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(Users.NotRegisteredController.selector, stranger));
        users.setController(id, stranger);

        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(Users.NotUserOwner.selector, id, keeper));
        users.setController(id, address(0));

        vm.prank(alice);
        users.setController(id, address(0));
        assertEq(users.controllerOf(id), address(0));

        vm.expectRevert(abi.encodeWithSelector(Users.UnknownUser.selector, bytes32(uint256(1))));
        users.setController(bytes32(uint256(1)), keeper);
    }
}
