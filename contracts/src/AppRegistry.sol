// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title AppRegistry
/// @notice Apps (data collectors) by unique name. The id is `keccak256(bytes(name))`. The owner may
///         authorize other addresses (its provider nodes) to act for the app; a transfer or an
///         unregister clears every authorization. A name, once unregistered, is retired for good,
///         so an app id never changes hands behind the data registered under it.
contract AppRegistry {
    uint256 public constant MAX_NAME_LENGTH = 64;

    struct App {
        address owner;
        bool retired;
        uint64 epoch;
        string name;
    }

    mapping(bytes32 => App) private _apps;
    /// appId => epoch => account => authorized
    mapping(bytes32 => mapping(uint64 => mapping(address => bool))) private _authorized;

    event AppRegistered(bytes32 indexed appId, string name, address indexed owner);
    event AppOwnershipTransferred(bytes32 indexed appId, address indexed previousOwner, address indexed newOwner);
    event AppUnregistered(bytes32 indexed appId);
    event AppAuthorizationChanged(bytes32 indexed appId, address indexed account, bool authorized);

    error InvalidName();
    error NameUnavailable(string name);
    error UnknownApp(bytes32 appId);
    error NotAppOwner(bytes32 appId, address account);
    error ZeroAddress();

    function register(string calldata name) external returns (bytes32 appId) {
        uint256 length = bytes(name).length;
        if (length == 0 || length > MAX_NAME_LENGTH) revert InvalidName();
        appId = keccak256(bytes(name));
        App storage app = _apps[appId];
        if (app.owner != address(0) || app.retired) revert NameUnavailable(name);
        app.owner = msg.sender;
        app.name = name;
        emit AppRegistered(appId, name, msg.sender);
    }

    function transferOwnership(bytes32 appId, address newOwner) external {
        App storage app = _ownedBy(appId, msg.sender);
        if (newOwner == address(0)) revert ZeroAddress();
        app.owner = newOwner;
        app.epoch += 1;
        emit AppOwnershipTransferred(appId, msg.sender, newOwner);
    }

    function unregister(bytes32 appId) external {
        App storage app = _ownedBy(appId, msg.sender);
        app.owner = address(0);
        app.retired = true;
        app.epoch += 1;
        emit AppUnregistered(appId);
    }

    /// @notice Lets `account` (e.g. a provider node) act for the app, or stops it.
    function setAuthorized(bytes32 appId, address account, bool authorized) external {
        App storage app = _ownedBy(appId, msg.sender);
        if (account == address(0)) revert ZeroAddress();
        _authorized[appId][app.epoch][account] = authorized;
        emit AppAuthorizationChanged(appId, account, authorized);
    }

    function getApp(bytes32 appId) external view returns (App memory) {
        return _apps[appId];
    }

    function exists(bytes32 appId) external view returns (bool) {
        return _apps[appId].owner != address(0);
    }

    function ownerOf(bytes32 appId) external view returns (address) {
        return _apps[appId].owner;
    }

    /// @notice Whether `account` is the owner of a live app or authorized by its current owner.
    function isAuthorized(bytes32 appId, address account) external view returns (bool) {
        App storage app = _apps[appId];
        if (app.owner == address(0)) return false;
        return app.owner == account || _authorized[appId][app.epoch][account];
    }

    function _ownedBy(bytes32 appId, address account) private view returns (App storage app) {
        app = _apps[appId];
        if (app.owner == address(0)) revert UnknownApp(appId);
        if (app.owner != account) revert NotAppOwner(appId, account);
    }
}
