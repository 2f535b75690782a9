// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {ControllerRegistry} from "../src/ControllerRegistry.sol";
import {AppRegistry} from "../src/AppRegistry.sol";
import {DataTypeRegistry} from "../src/DataTypeRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract ControllerRegistryTest is Fixture {

    function test_addAndRemove() public {
        vm.expectEmit(address(controllers));
        emit ControllerRegistry.ControllerAdded(bob);
        vm.prank(governor);
        controllers.addController(bob);
        assertTrue(controllers.isController(bob));

        vm.prank(governor);
        vm.expectRevert(abi.encodeWithSelector(ControllerRegistry.AlreadyController.selector, bob));
        controllers.addController(bob);

        vm.expectEmit(address(controllers));
        emit ControllerRegistry.ControllerRemoved(bob);
        vm.prank(governor);
        controllers.removeController(bob);
        assertFalse(controllers.isController(bob));

        vm.prank(governor);
        vm.expectRevert(abi.encodeWithSelector(ControllerRegistry.NotController.selector, bob));
        controllers.removeController(bob);

        vm.prank(governor);
        vm.expectRevert(ControllerRegistry.ZeroAddress.selector);
        controllers.addController(address(0));
    }

    function test_onlyOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        controllers.addController(bob);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        controllers.removeController(keeper);
    }

    function test_twoStepOwnership() public {
        vm.prank(governor);
        controllers.transferOwnership(alice);
        assertEq(controllers.owner(), governor);
        vm.prank(alice);
        controllers.acceptOwnership();
        assertEq(controllers.owner(), alice);
    }
}

contract AppRegistryTest is Fixture {

    function test_register() public {
        bytes32 id = keccak256(bytes("fitness"));
        vm.expectEmit(address(apps));
        emit AppRegistry.AppRegistered(id, "fitness", alice);
        vm.prank(alice);
        assertEq(apps.register("fitness"), id);
        assertEq(apps.ownerOf(id), alice);
        assertTrue(apps.exists(id));
        assertEq(apps.getApp(id).name, "fitness");
    }

    function test_register_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(AppRegistry.NameUnavailable.selector, "weather-app"));
        apps.register("weather-app");
        vm.expectRevert(AppRegistry.InvalidName.selector);
        apps.register("");
        vm.expectRevert(AppRegistry.InvalidName.selector);
        apps.register(string(new bytes(65)));
    }

    function test_transfer_clearsAuthorizations() public {
        vm.startPrank(provider);
        vm.expectEmit(address(apps));
        emit AppRegistry.AppAuthorizationChanged(appId, bob, true);
        apps.setAuthorized(appId, bob, true);
        assertTrue(apps.isAuthorized(appId, bob));
        vm.expectEmit(address(apps));
        emit AppRegistry.AppOwnershipTransferred(appId, provider, alice);
        apps.transferOwnership(appId, alice);
        vm.stopPrank();
        assertFalse(apps.isAuthorized(appId, bob), "authorizations die with the transfer");
        assertTrue(apps.isAuthorized(appId, alice));
        assertFalse(apps.isAuthorized(appId, provider));
    }

    function test_onlyOwnerMayChangeOrUnregister() public {
        // Airbloc's first registry let anyone unregister an app; here only the owner can.
        vm.startPrank(stranger);
        vm.expectRevert(abi.encodeWithSelector(AppRegistry.NotAppOwner.selector, appId, stranger));
        apps.unregister(appId);
        vm.expectRevert(abi.encodeWithSelector(AppRegistry.NotAppOwner.selector, appId, stranger));
        apps.transferOwnership(appId, stranger);
        vm.expectRevert(abi.encodeWithSelector(AppRegistry.NotAppOwner.selector, appId, stranger));
        apps.setAuthorized(appId, stranger, true);
        vm.stopPrank();

        vm.prank(provider);
        vm.expectRevert(AppRegistry.ZeroAddress.selector);
        apps.transferOwnership(appId, address(0));
        vm.prank(provider);
        vm.expectRevert(AppRegistry.ZeroAddress.selector);
        apps.setAuthorized(appId, address(0), true);
    }

    function test_unregister_retiresTheName() public {
        vm.expectEmit(address(apps));
        emit AppRegistry.AppUnregistered(appId);
        vm.prank(provider);
        apps.unregister(appId);
        assertFalse(apps.exists(appId));
        assertFalse(apps.isAuthorized(appId, provider));
        vm.expectRevert(abi.encodeWithSelector(AppRegistry.NameUnavailable.selector, "weather-app"));
        vm.prank(alice);
        apps.register("weather-app");
        vm.expectRevert(abi.encodeWithSelector(AppRegistry.UnknownApp.selector, appId));
        vm.prank(provider);
        apps.unregister(appId);
    }
}

contract DataTypeRegistryTest is Fixture {

    function test_register() public {
        bytes32 id = keccak256(bytes("heart-rate"));
        vm.expectEmit(address(dataTypes));
        emit DataTypeRegistry.DataTypeRegistered(id, "heart-rate", alice, SCHEMA);
        vm.prank(alice);
        assertEq(dataTypes.register("heart-rate", SCHEMA), id);
        DataTypeRegistry.DataType memory t = dataTypes.getDataType(id);
        assertEq(t.owner, alice);
        assertEq(uint256(t.version), 1);
        assertEq(t.schemaHash, SCHEMA);
    }

    function test_register_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(DataTypeRegistry.NameUnavailable.selector, "location"));
        dataTypes.register("location", SCHEMA);
        vm.expectRevert(DataTypeRegistry.ZeroSchemaHash.selector);
        dataTypes.register("x", bytes32(0));
        vm.expectRevert(DataTypeRegistry.InvalidName.selector);
        dataTypes.register("", SCHEMA);
    }

    function test_updateSchema_isVersioned() public {
        bytes32 v2 = keccak256("v2");
        vm.expectEmit(address(dataTypes));
        emit DataTypeRegistry.SchemaUpdated(dataTypeId, 2, v2);
        vm.prank(provider);
        assertEq(uint256(dataTypes.updateSchema(dataTypeId, v2)), 2);
        assertEq(dataTypes.schemaAt(dataTypeId, 1), SCHEMA);
        assertEq(dataTypes.schemaAt(dataTypeId, 2), v2);
        assertEq(dataTypes.getDataType(dataTypeId).schemaHash, v2);

        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(DataTypeRegistry.NotDataTypeOwner.selector, dataTypeId, stranger));
        dataTypes.updateSchema(dataTypeId, v2);
        vm.prank(provider);
        vm.expectRevert(DataTypeRegistry.ZeroSchemaHash.selector);
        dataTypes.updateSchema(dataTypeId, bytes32(0));
    }

    function test_unregister() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(DataTypeRegistry.NotDataTypeOwner.selector, dataTypeId, stranger));
        dataTypes.unregister(dataTypeId);
        vm.expectEmit(address(dataTypes));
        emit DataTypeRegistry.DataTypeUnregistered(dataTypeId);
        vm.prank(provider);
        dataTypes.unregister(dataTypeId);
        assertFalse(dataTypes.exists(dataTypeId));
        vm.expectRevert(abi.encodeWithSelector(DataTypeRegistry.UnknownDataType.selector, dataTypeId));
        vm.prank(provider);
        dataTypes.updateSchema(dataTypeId, SCHEMA);
    }
}
