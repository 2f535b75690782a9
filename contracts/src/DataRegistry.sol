// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {AppRegistry} from "./AppRegistry.sol";
import {DataTypeRegistry} from "./DataTypeRegistry.sol";

/// @title DataRegistry
/// @notice Bundles of encrypted records: one Merkle root per bundle (gas is constant in the
///         number of records). The tree is OpenZeppelin's standard Merkle tree: leaf =
///         keccak256(keccak256(abi.encode(userId, recordIndex, ciphertextHash))), sorted pairs.
/// @dev The bundle id is derived from the content and the sender, so registering the same bundle
///      twice reverts with `BundleExists` — a node that retries a registration can tell it
///      already went through.
contract DataRegistry {
    uint256 public constant MAX_LOCATOR_LENGTH = 256;

    struct Bundle {
        bytes32 appId;
        bytes32 dataTypeId;
        bytes32 merkleRoot;
        bytes32 ciphertextHash;
        address provider;
        uint64 recordCount;
        uint64 size;
        uint64 registeredAt;
        bool active;
        string locator;
    }

    AppRegistry public immutable apps;
    DataTypeRegistry public immutable dataTypes;

    mapping(bytes32 => Bundle) private _bundles;

    event BundleRegistered(
        bytes32 indexed bundleId,
        bytes32 indexed appId,
        bytes32 indexed dataTypeId,
        address provider,
        bytes32 merkleRoot,
        uint64 recordCount,
        bytes32 ciphertextHash,
        uint64 size,
        string locator
    );
    event BundleUnregistered(bytes32 indexed bundleId);

    error NotAuthorizedForApp(bytes32 appId, address account);
    error UnknownDataType(bytes32 dataTypeId);
    error BundleExists(bytes32 bundleId);
    error UnknownBundle(bytes32 bundleId);
    error NotBundleOwner(bytes32 bundleId, address account);
    error EmptyBundle();
    error ZeroRoot();
    error LocatorTooLong(uint256 length);

    constructor(AppRegistry apps_, DataTypeRegistry dataTypes_) {
        apps = apps_;
        dataTypes = dataTypes_;
    }

    function registerBundle(
        bytes32 appId,
        bytes32 dataTypeId,
        bytes32 merkleRoot,
        uint64 recordCount,
        bytes32 ciphertextHash,
        uint64 size,
        string calldata locator
    ) external returns (bytes32 bundleId) {
        if (!apps.isAuthorized(appId, msg.sender)) revert NotAuthorizedForApp(appId, msg.sender);
        if (!dataTypes.exists(dataTypeId)) revert UnknownDataType(dataTypeId);
        if (recordCount == 0) revert EmptyBundle();
        if (merkleRoot == bytes32(0)) revert ZeroRoot();
        if (bytes(locator).length > MAX_LOCATOR_LENGTH) revert LocatorTooLong(bytes(locator).length);
        bundleId = bundleIdOf(msg.sender, appId, dataTypeId, merkleRoot, recordCount, ciphertextHash, size);
        if (_bundles[bundleId].provider != address(0)) revert BundleExists(bundleId);
        _bundles[bundleId] = Bundle({
            appId: appId,
            dataTypeId: dataTypeId,
            merkleRoot: merkleRoot,
            ciphertextHash: ciphertextHash,
            provider: msg.sender,
            recordCount: recordCount,
            size: size,
            registeredAt: uint64(block.number),
            active: true,
            locator: locator
        });
        emit BundleRegistered(
            bundleId, appId, dataTypeId, msg.sender, merkleRoot, recordCount, ciphertextHash, size, locator
        );
    }

    /// @notice Withdraws a bundle; by its provider or the app's owner.
    function unregister(bytes32 bundleId) external {
        Bundle storage bundle = _bundles[bundleId];
        if (!bundle.active) revert UnknownBundle(bundleId);
        if (bundle.provider != msg.sender && apps.ownerOf(bundle.appId) != msg.sender) {
            revert NotBundleOwner(bundleId, msg.sender);
        }
        bundle.active = false;
        emit BundleUnregistered(bundleId);
    }

    /// @notice Whether `leaf` (already double-hashed) is in the active bundle's tree.
    function verify(bytes32 bundleId, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        Bundle storage bundle = _bundles[bundleId];
        return bundle.active && MerkleProof.verifyCalldata(proof, bundle.merkleRoot, leaf);
    }

    /// @notice Whether the record (user, index, ciphertext hash) is in the active bundle's tree.
    function verifyRecord(
        bytes32 bundleId,
        bytes32 userId,
        uint64 recordIndex,
        bytes32 ciphertextHash,
        bytes32[] calldata proof
    ) external view returns (bool) {
        Bundle storage bundle = _bundles[bundleId];
        return bundle.active
            && MerkleProof.verifyCalldata(proof, bundle.merkleRoot, leafOf(userId, recordIndex, ciphertextHash));
    }

    /// @notice Whether all `leaves` are in the active bundle's tree (OpenZeppelin multiproof).
    function verifyMulti(bytes32 bundleId, bytes32[] calldata proof, bool[] calldata proofFlags, bytes32[] calldata leaves)
        external
        view
        returns (bool)
    {
        Bundle storage bundle = _bundles[bundleId];
        return bundle.active && MerkleProof.multiProofVerifyCalldata(proof, proofFlags, bundle.merkleRoot, leaves);
    }

    function getBundle(bytes32 bundleId) external view returns (Bundle memory) {
        return _bundles[bundleId];
    }

    function isActive(bytes32 bundleId) external view returns (bool) {
        return _bundles[bundleId].active;
    }

    /// @notice The standard-tree leaf of one record.
    function leafOf(bytes32 userId, uint64 recordIndex, bytes32 ciphertextHash) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(userId, recordIndex, ciphertextHash))));
    }

    /// @notice The id `registerBundle` gives a bundle.
    function bundleIdOf(
        address provider,
        bytes32 appId,
        bytes32 dataTypeId,
        bytes32 merkleRoot,
        uint64 recordCount,
        bytes32 ciphertextHash,
        uint64 size
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(provider, appId, dataTypeId, merkleRoot, recordCount, ciphertextHash, size));
    }
}
