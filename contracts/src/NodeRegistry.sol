// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {PeerIds} from "./lib/PeerIds.sol";

/// @title NodeRegistry
/// @notice The airblocd nodes of the network: roles, libp2p PeerId and announced multiaddrs.
///         Peers admit only nodes with an active entry. A node registers itself: its address is
///         `msg.sender`, and its PeerId must carry the same secp256k1 key, so nobody can claim
///         another node's PeerId.
contract NodeRegistry {
    uint8 public constant ROLE_PROVIDER = 1;
    uint8 public constant ROLE_CONSUMER = 2;
    uint8 public constant ROLE_KEEPER = 4;
    uint8 public constant ROLE_BOOTNODE = 8;
    uint8 public constant ALL_ROLES = 15;
    uint256 public constant MAX_MULTIADDRS = 8;
    uint256 public constant MAX_MULTIADDR_LENGTH = 256;

    struct Node {
        uint8 roles;
        bool active;
        uint64 registeredAt;
        uint64 updatedAt;
        bytes peerId;
        string[] multiaddrs;
    }

    mapping(address => Node) private _nodes;
    address[] private _active;
    /// 1-based position in `_active`; 0 when inactive.
    mapping(address => uint256) private _activeIndex;

    event NodeRegistered(address indexed node, uint8 roles, bytes peerId, string[] multiaddrs);
    event NodeUpdated(address indexed node, uint8 roles, string[] multiaddrs);
    event NodeDeactivated(address indexed node);

    error InvalidRoles(uint8 roles);
    error AlreadyActive(address node);
    error NotActive(address node);
    error PeerIdMismatch(address expected, address actual);
    error TooManyMultiaddrs(uint256 count);
    error MultiaddrTooLong(uint256 index);

    /// @notice Registers (or re-activates) the calling node.
    function register(uint8 roles, bytes calldata peerId, string[] memory multiaddrs) external {
        Node storage node = _nodes[msg.sender];
        if (node.active) revert AlreadyActive(msg.sender);
        _checkRoles(roles);
        _checkMultiaddrs(multiaddrs);
        address owner = PeerIds.addressOf(peerId);
        if (owner != msg.sender) revert PeerIdMismatch(msg.sender, owner);

        node.roles = roles;
        node.active = true;
        node.peerId = peerId;
        node.multiaddrs = multiaddrs;
        node.registeredAt = uint64(block.number);
        node.updatedAt = uint64(block.number);
        _active.push(msg.sender);
        _activeIndex[msg.sender] = _active.length;
        emit NodeRegistered(msg.sender, roles, peerId, multiaddrs);
    }

    /// @notice Changes the calling node's roles and multiaddrs.
    function update(uint8 roles, string[] memory multiaddrs) external {
        Node storage node = _nodes[msg.sender];
        if (!node.active) revert NotActive(msg.sender);
        _checkRoles(roles);
        _checkMultiaddrs(multiaddrs);
        node.roles = roles;
        node.multiaddrs = multiaddrs;
        node.updatedAt = uint64(block.number);
        emit NodeUpdated(msg.sender, roles, multiaddrs);
    }

    /// @notice Deactivates the calling node; peers stop admitting it.
    function deactivate() external {
        Node storage node = _nodes[msg.sender];
        if (!node.active) revert NotActive(msg.sender);
        node.active = false;
        node.updatedAt = uint64(block.number);
        uint256 index = _activeIndex[msg.sender] - 1;
        address last = _active[_active.length - 1];
        _active[index] = last;
        _activeIndex[last] = index + 1;
        _active.pop();
        delete _activeIndex[msg.sender];
        emit NodeDeactivated(msg.sender);
    }

    function getNode(address node) external view returns (Node memory) {
        return _nodes[node];
    }

    function isActive(address node) external view returns (bool) {
        return _nodes[node].active;
    }

    function hasRole(address node, uint8 role) external view returns (bool) {
        Node storage n = _nodes[node];
        return n.active && (n.roles & role) == role;
    }

    function activeCount() external view returns (uint256) {
        return _active.length;
    }

    /// @notice Active nodes in `[offset, offset + limit)`; order changes when nodes deactivate.
    function activeNodes(uint256 offset, uint256 limit) external view returns (address[] memory page) {
        uint256 total = _active.length;
        if (offset >= total) return new address[](0);
        uint256 end = offset + limit > total ? total : offset + limit;
        page = new address[](end - offset);
        for (uint256 i = offset; i < end; i++) {
            page[i - offset] = _active[i];
        }
    }

    function _checkRoles(uint8 roles) private pure {
        if (roles == 0 || roles > ALL_ROLES) revert InvalidRoles(roles);
    }

    function _checkMultiaddrs(string[] memory multiaddrs) private pure {
        if (multiaddrs.length > MAX_MULTIADDRS) revert TooManyMultiaddrs(multiaddrs.length);
        for (uint256 i = 0; i < multiaddrs.length; i++) {
            if (bytes(multiaddrs[i]).length > MAX_MULTIADDR_LENGTH) revert MultiaddrTooLong(i);
        }
    }
}
