// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ControllerRegistry} from "./ControllerRegistry.sol";

/// @title Users
/// @notice User accounts. A user with a wallet calls `create()`. An identity keeper (a registered
///         controller) creates a temporary account for a user without one from a salted identity
///         hash; later the keeper hands the account over to a real wallet with `unlockTemporary`,
///         proving knowledge of the hash's preimage.
/// @dev Ids are derived from content: `keccak256("airbloc.user", owner)` for wallet accounts and
///      `keccak256("airbloc.user.temporary", identityHash)` for temporary ones. The identity hash
///      is `keccak256(preimage)`, where the keeper computes the preimage as a keyed hash (HMAC) of
///      the identity, so nobody can test guesses of e-mail addresses against the chain.
contract Users {
    enum Status {
        None,
        Active,
        Temporary
    }

    struct User {
        Status status;
        address owner;
        address controller;
        bytes32 identityHash;
    }

    ControllerRegistry public immutable controllers;

    mapping(bytes32 => User) private _users;
    mapping(address => bytes32) private _byOwner;
    mapping(bytes32 => bytes32) private _byIdentity;

    event UserCreated(bytes32 indexed userId, address indexed owner);
    event TemporaryUserCreated(bytes32 indexed userId, bytes32 indexed identityHash, address indexed controller);
    event TemporaryUserUnlocked(bytes32 indexed userId, address indexed newOwner, address indexed controller);
    event ControllerChanged(bytes32 indexed userId, address indexed controller);

    error AccountExists(address owner);
    error IdentityTaken(bytes32 identityHash);
    error NotRegisteredController(address account);
    error UnknownUser(bytes32 userId);
    error UnknownIdentity(bytes32 identityHash);
    error NotUserController(bytes32 userId, address account);
    error NotUserOwner(bytes32 userId, address account);
    error NotTemporary(bytes32 userId);
    error ZeroIdentity();
    error ZeroAddress();

    constructor(ControllerRegistry controllers_) {
        controllers = controllers_;
    }

    /// @notice Creates the caller's account. One account per owner address.
    function create() external returns (bytes32 userId) {
        if (_byOwner[msg.sender] != bytes32(0)) revert AccountExists(msg.sender);
        userId = keccak256(abi.encode("airbloc.user", msg.sender));
        _users[userId] = User({status: Status.Active, owner: msg.sender, controller: address(0), identityHash: 0});
        _byOwner[msg.sender] = userId;
        emit UserCreated(userId, msg.sender);
    }

    /// @notice Creates a temporary account held by the calling controller.
    function createTemporary(bytes32 identityHash) external returns (bytes32 userId) {
        if (!controllers.isController(msg.sender)) revert NotRegisteredController(msg.sender);
        if (identityHash == bytes32(0)) revert ZeroIdentity();
        if (_byIdentity[identityHash] != bytes32(0)) revert IdentityTaken(identityHash);
        userId = keccak256(abi.encode("airbloc.user.temporary", identityHash));
        _users[userId] =
            User({status: Status.Temporary, owner: address(0), controller: msg.sender, identityHash: identityHash});
        _byIdentity[identityHash] = userId;
        emit TemporaryUserCreated(userId, identityHash, msg.sender);
    }

    /// @notice Hands a temporary account to `newOwner`. Only its controller, with the preimage of
    ///         the identity hash. The controller stays until the new owner changes it.
    function unlockTemporary(bytes32 identityPreimage, address newOwner) external returns (bytes32 userId) {
        if (newOwner == address(0)) revert ZeroAddress();
        bytes32 identityHash = keccak256(abi.encodePacked(identityPreimage));
        userId = _byIdentity[identityHash];
        if (userId == bytes32(0)) revert UnknownIdentity(identityHash);
        User storage user = _users[userId];
        if (user.status != Status.Temporary) revert NotTemporary(userId);
        if (user.controller != msg.sender) revert NotUserController(userId, msg.sender);
        if (_byOwner[newOwner] != bytes32(0)) revert AccountExists(newOwner);
        user.status = Status.Active;
        user.owner = newOwner;
        _byOwner[newOwner] = userId;
        emit TemporaryUserUnlocked(userId, newOwner, msg.sender);
    }

    /// @notice The owner sets (or with zero, removes) the controller acting for the account.
    function setController(bytes32 userId, address controller) external {
        User storage user = _users[userId];
        if (user.status == Status.None) revert UnknownUser(userId);
        if (user.owner != msg.sender) revert NotUserOwner(userId, msg.sender);
        if (controller != address(0) && !controllers.isController(controller)) {
            revert NotRegisteredController(controller);
        }
        user.controller = controller;
        emit ControllerChanged(userId, controller);
    }

    function getUser(bytes32 userId) external view returns (User memory) {
        return _users[userId];
    }

    function exists(bytes32 userId) external view returns (bool) {
        return _users[userId].status != Status.None;
    }

    function ownerOf(bytes32 userId) external view returns (address) {
        return _users[userId].owner;
    }

    function controllerOf(bytes32 userId) external view returns (address) {
        return _users[userId].controller;
    }

    function userOf(address owner) external view returns (bytes32) {
        return _byOwner[owner];
    }

    function userByIdentity(bytes32 identityHash) external view returns (bytes32) {
        return _byIdentity[identityHash];
    }
}
