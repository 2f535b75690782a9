// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title DataTypeRegistry
/// @notice Data types by unique name: owner and the keccak256 hash of the JSON Schema (the schema
///         itself travels off chain, served by nodes by hash). Schema updates are versioned; every
///         version's hash stays readable.
contract DataTypeRegistry {
    uint256 public constant MAX_NAME_LENGTH = 64;

    struct DataType {
        address owner;
        bool retired;
        uint32 version;
        bytes32 schemaHash;
        string name;
    }

    mapping(bytes32 => DataType) private _types;
    mapping(bytes32 => mapping(uint32 => bytes32)) private _schemaAt;

    event DataTypeRegistered(bytes32 indexed dataTypeId, string name, address indexed owner, bytes32 schemaHash);
    event SchemaUpdated(bytes32 indexed dataTypeId, uint32 version, bytes32 schemaHash);
    event DataTypeUnregistered(bytes32 indexed dataTypeId);

    error InvalidName();
    error NameUnavailable(string name);
    error ZeroSchemaHash();
    error UnknownDataType(bytes32 dataTypeId);
    error NotDataTypeOwner(bytes32 dataTypeId, address account);

    function register(string calldata name, bytes32 schemaHash) external returns (bytes32 dataTypeId) {
        uint256 length = bytes(name).length;
        if (length == 0 || length > MAX_NAME_LENGTH) revert InvalidName();
        if (schemaHash == bytes32(0)) revert ZeroSchemaHash();
        dataTypeId = keccak256(bytes(name));
        DataType storage t = _types[dataTypeId];
        if (t.owner != address(0) || t.retired) revert NameUnavailable(name);
        t.owner = msg.sender;
        t.version = 1;
        t.schemaHash = schemaHash;
        t.name = name;
        _schemaAt[dataTypeId][1] = schemaHash;
        emit DataTypeRegistered(dataTypeId, name, msg.sender, schemaHash);
    }

    function updateSchema(bytes32 dataTypeId, bytes32 schemaHash) external returns (uint32 version) {
        DataType storage t = _ownedBy(dataTypeId, msg.sender);
        if (schemaHash == bytes32(0)) revert ZeroSchemaHash();
        version = t.version + 1;
        t.version = version;
        t.schemaHash = schemaHash;
        _schemaAt[dataTypeId][version] = schemaHash;
        emit SchemaUpdated(dataTypeId, version, schemaHash);
    }

    function unregister(bytes32 dataTypeId) external {
        DataType storage t = _ownedBy(dataTypeId, msg.sender);
        t.owner = address(0);
        t.retired = true;
        emit DataTypeUnregistered(dataTypeId);
    }

    function getDataType(bytes32 dataTypeId) external view returns (DataType memory) {
        return _types[dataTypeId];
    }

    function exists(bytes32 dataTypeId) external view returns (bool) {
        return _types[dataTypeId].owner != address(0);
    }

    function schemaAt(bytes32 dataTypeId, uint32 version) external view returns (bytes32) {
        return _schemaAt[dataTypeId][version];
    }

    function _ownedBy(bytes32 dataTypeId, address account) private view returns (DataType storage t) {
        t = _types[dataTypeId];
        if (t.owner == address(0)) revert UnknownDataType(dataTypeId);
        if (t.owner != account) revert NotDataTypeOwner(dataTypeId, account);
    }
}
