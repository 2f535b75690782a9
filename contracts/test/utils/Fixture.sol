// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {NodeRegistry} from "../../src/NodeRegistry.sol";
import {ControllerRegistry} from "../../src/ControllerRegistry.sol";
import {Users} from "../../src/Users.sol";
import {AppRegistry} from "../../src/AppRegistry.sol";
import {DataTypeRegistry} from "../../src/DataTypeRegistry.sol";
import {Consents} from "../../src/Consents.sol";
import {DataRegistry} from "../../src/DataRegistry.sol";
import {Exchange} from "../../src/Exchange.sol";
import {TestToken} from "../../src/TestToken.sol";

/// @notice Every contract deployed the way the deployer does, plus named actors.
abstract contract Fixture is Base {
    NodeRegistry internal nodes;
    ControllerRegistry internal controllers;
    Users internal users;
    AppRegistry internal apps;
    DataTypeRegistry internal dataTypes;
    Consents internal consents;
    DataRegistry internal data;
    Exchange internal exchange;
    TestToken internal token;

    address internal governor = address(0x60D);
    uint256 internal keeperKey = 0xC0FFEE;
    address internal keeper;
    uint256 internal aliceKey = 0xA11CE;
    address internal alice;
    uint256 internal bobKey = 0xB0B;
    address internal bob;
    uint256 internal providerKey = 0x9E0;
    address internal provider;
    uint256 internal consumerKey = 0xC0C;
    address internal consumer;
    address internal stranger = address(0x5757);

    bytes32 internal appId;
    bytes32 internal dataTypeId;
    bytes32 internal constant SCHEMA = keccak256('{"type":"object"}');

    function setUp() public virtual {
        keeper = vm.addr(keeperKey);
        alice = vm.addr(aliceKey);
        bob = vm.addr(bobKey);
        provider = vm.addr(providerKey);
        consumer = vm.addr(consumerKey);

        nodes = new NodeRegistry();
        controllers = new ControllerRegistry(governor);
        users = new Users(controllers);
        apps = new AppRegistry();
        dataTypes = new DataTypeRegistry();
        consents = new Consents(users, apps, dataTypes);
        data = new DataRegistry(apps, dataTypes);
        exchange = new Exchange(data, apps);
        token = new TestToken();

        vm.prank(governor);
        controllers.addController(keeper);
        vm.prank(provider);
        appId = apps.register("weather-app");
        vm.prank(provider);
        dataTypeId = dataTypes.register("location", SCHEMA);
    }

    /// Leaves of a standard Merkle tree over `count` records of `user`.
    function recordLeaves(bytes32 user, uint256 count) internal view returns (bytes32[] memory leaves) {
        leaves = new bytes32[](count);
        for (uint256 i = 0; i < count; i++) {
            leaves[i] = data.leafOf(user, uint64(i), keccak256(abi.encode("ciphertext", i)));
        }
    }

    /// Root of a sorted-pair tree over `leaves` (pairs hashed bottom up; an odd node rises).
    function rootOf(bytes32[] memory leaves) internal pure returns (bytes32) {
        uint256 n = leaves.length;
        bytes32[] memory level = leaves;
        while (n > 1) {
            uint256 m = (n + 1) / 2;
            bytes32[] memory next = new bytes32[](m);
            for (uint256 i = 0; i < n / 2; i++) {
                next[i] = hashPair(level[2 * i], level[2 * i + 1]);
            }
            if (n % 2 == 1) next[m - 1] = level[n - 1];
            level = next;
            n = m;
        }
        return level[0];
    }

    /// Proof for leaf `index` in the tree `rootOf` builds.
    function proofOf(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory proof) {
        bytes32[] memory path = new bytes32[](64);
        uint256 depth = 0;
        uint256 n = leaves.length;
        bytes32[] memory level = leaves;
        while (n > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < n) path[depth++] = level[sibling];
            uint256 m = (n + 1) / 2;
            bytes32[] memory next = new bytes32[](m);
            for (uint256 i = 0; i < n / 2; i++) {
                next[i] = hashPair(level[2 * i], level[2 * i + 1]);
            }
            if (n % 2 == 1) next[m - 1] = level[n - 1];
            level = next;
            n = m;
            index /= 2;
        }
        proof = new bytes32[](depth);
        for (uint256 i = 0; i < depth; i++) {
            proof[i] = path[i];
        }
    }

    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encodePacked(a, b)) : keccak256(abi.encodePacked(b, a));
    }

    /// Registers a bundle of `count` records as the provider; returns its id and leaves.
    function registerBundle(uint256 count) internal returns (bytes32 bundleId, bytes32[] memory leaves) {
        leaves = recordLeaves(keccak256("user"), count);
        vm.prank(provider);
        bundleId = data.registerBundle(appId, dataTypeId, rootOf(leaves), uint64(count), keccak256("body"), 4096, "");
    }
}
