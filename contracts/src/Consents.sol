// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {Users} from "./Users.sol";
import {AppRegistry} from "./AppRegistry.sol";
import {DataTypeRegistry} from "./DataTypeRegistry.sol";

/// @title Consents
/// @notice What each user allowed each app to do with each data type, with full history:
///         user × app × action {collect, exchange} × data type → [(allowed, block)].
///         `isAllowedAt` answers for any past block.
///
///         Writers: the user's owner address directly; anyone relaying the owner's EIP-712
///         signature (nonce + deadline, replay-proof; ERC-1271 wallets too); or the user's
///         controller (a registered identity keeper). A controller may create a consent or change
///         one it set, but never flip one the user set themselves.
contract Consents is EIP712, Nonces {
    uint8 public constant ACTION_COLLECT = 0;
    uint8 public constant ACTION_EXCHANGE = 1;

    bytes32 public constant CONSENT_TYPEHASH =
        keccak256("Consent(bytes32 app,uint8 action,bytes32 dataType,bool allowed)");
    bytes32 public constant CONSENT_BATCH_TYPEHASH = keccak256(
        "ConsentBatch(bytes32 user,Consent[] consents,uint256 nonce,uint256 deadline)Consent(bytes32 app,uint8 action,bytes32 dataType,bool allowed)"
    );

    /// One consent change by a direct writer (owner or controller).
    struct ConsentInput {
        bytes32 userId;
        bytes32 appId;
        uint8 action;
        bytes32 dataTypeId;
        bool allowed;
    }

    /// One consent change inside a user's signed batch.
    struct SignedConsent {
        bytes32 appId;
        uint8 action;
        bytes32 dataTypeId;
        bool allowed;
    }

    struct Entry {
        uint64 blockNumber;
        bool allowed;
    }

    /// One storage slot per consent: the entry count, the latest entry and who set it. Older
    /// entries move to `_archive` only when a newer block writes, so a first consent costs one
    /// new slot and each later change at most two.
    struct Header {
        uint64 count;
        uint64 lastBlock;
        bool lastAllowed;
        bool setByUser;
    }

    Users public immutable users;
    AppRegistry public immutable apps;
    DataTypeRegistry public immutable dataTypes;

    mapping(bytes32 => Header) private _headers;
    /// key => index => entry, for every entry but the latest.
    mapping(bytes32 => mapping(uint256 => Entry)) private _archive;

    event ConsentChanged(
        bytes32 indexed userId,
        bytes32 indexed appId,
        bytes32 indexed dataTypeId,
        uint8 action,
        bool allowed,
        address by,
        bool byUser
    );

    error InvalidAction(uint8 action);
    error UnknownUser(bytes32 userId);
    error UnknownApp(bytes32 appId);
    error UnknownDataType(bytes32 dataTypeId);
    error NotAuthorized(bytes32 userId, address account);
    error SetByUser(bytes32 userId, bytes32 appId, uint8 action, bytes32 dataTypeId);
    error SignatureExpired(uint256 deadline);
    error InvalidSignature(bytes32 userId);
    error EmptyBatch();

    constructor(Users users_, AppRegistry apps_, DataTypeRegistry dataTypes_) EIP712("airbloc Consents", "1") {
        users = users_;
        apps = apps_;
        dataTypes = dataTypes_;
    }

    /// @notice Writes consents as the users' owner or controller. One call may cover many users.
    function setConsents(ConsentInput[] calldata inputs) external {
        if (inputs.length == 0) revert EmptyBatch();
        bytes32 lastUser;
        bool lastByUser;
        Checked memory checked;
        for (uint256 i = 0; i < inputs.length; i++) {
            ConsentInput calldata c = inputs[i];
            if (i == 0 || c.userId != lastUser) {
                lastUser = c.userId;
                lastByUser = _writerKind(c.userId, msg.sender);
            }
            _check(checked, c.appId, c.action, c.dataTypeId);
            _write(c.userId, c.appId, c.action, c.dataTypeId, c.allowed, msg.sender, lastByUser);
        }
    }

    /// @notice Writes consents signed by the user's owner (EIP-712 `ConsentBatch`); anyone may relay.
    function setConsentsBySig(
        bytes32 userId,
        SignedConsent[] calldata consents,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (consents.length == 0) revert EmptyBatch();
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        address owner = users.ownerOf(userId);
        if (owner == address(0)) revert UnknownUser(userId);
        bytes32 digest = _hashTypedDataV4(_batchStructHash(userId, consents, _useNonce(owner), deadline));
        if (!SignatureChecker.isValidSignatureNow(owner, digest, signature)) revert InvalidSignature(userId);
        Checked memory checked;
        for (uint256 i = 0; i < consents.length; i++) {
            SignedConsent calldata c = consents[i];
            _check(checked, c.appId, c.action, c.dataTypeId);
            _write(userId, c.appId, c.action, c.dataTypeId, c.allowed, owner, true);
        }
    }

    /// @notice The EIP-712 digest a user signs for `setConsentsBySig`.
    function consentBatchDigest(bytes32 userId, SignedConsent[] calldata consents, uint256 nonce, uint256 deadline)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(_batchStructHash(userId, consents, nonce, deadline));
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice Whether the consent holds now (its latest entry).
    function isAllowed(bytes32 userId, bytes32 appId, uint8 action, bytes32 dataTypeId) external view returns (bool) {
        Header memory h = _headers[_key(userId, appId, action, dataTypeId)];
        return h.count != 0 && h.lastAllowed;
    }

    /// @notice Whether the consent held at the end of block `blockNumber`.
    function isAllowedAt(bytes32 userId, bytes32 appId, uint8 action, bytes32 dataTypeId, uint256 blockNumber)
        external
        view
        returns (bool)
    {
        bytes32 key = _key(userId, appId, action, dataTypeId);
        Header memory h = _headers[key];
        if (h.count == 0) return false;
        if (h.lastBlock <= blockNumber) return h.lastAllowed;
        // Binary search the archive (entries 0 .. count-2) for the last entry at or before the block.
        mapping(uint256 => Entry) storage archive = _archive[key];
        uint256 low = 0;
        uint256 high = h.count - 1;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (archive[mid].blockNumber <= blockNumber) low = mid + 1;
            else high = mid;
        }
        return low != 0 && archive[low - 1].allowed;
    }

    /// @notice The full history of one consent, oldest first.
    function history(bytes32 userId, bytes32 appId, uint8 action, bytes32 dataTypeId)
        external
        view
        returns (Entry[] memory entries)
    {
        bytes32 key = _key(userId, appId, action, dataTypeId);
        Header memory h = _headers[key];
        entries = new Entry[](h.count);
        if (h.count == 0) return entries;
        for (uint256 i = 0; i + 1 < h.count; i++) {
            entries[i] = _archive[key][i];
        }
        entries[h.count - 1] = Entry({blockNumber: h.lastBlock, allowed: h.lastAllowed});
    }

    function setByUser(bytes32 userId, bytes32 appId, uint8 action, bytes32 dataTypeId) external view returns (bool) {
        return _headers[_key(userId, appId, action, dataTypeId)].setByUser;
    }

    /// Returns true when `account` writes as the user (owner), false as the controller.
    function _writerKind(bytes32 userId, address account) private view returns (bool byUser) {
        Users.User memory user = users.getUser(userId);
        if (user.status == Users.Status.None) revert UnknownUser(userId);
        if (user.owner == account) return true;
        if (user.controller == account && users.controllers().isController(account)) return false;
        revert NotAuthorized(userId, account);
    }

    /// Ids already checked within one call, so a batch over one app and data type checks them once.
    struct Checked {
        bytes32 appId;
        bytes32 dataTypeId;
    }

    function _check(Checked memory checked, bytes32 appId, uint8 action, bytes32 dataTypeId) private view {
        if (action > ACTION_EXCHANGE) revert InvalidAction(action);
        if (appId != checked.appId) {
            if (!apps.exists(appId)) revert UnknownApp(appId);
            checked.appId = appId;
        }
        if (dataTypeId != checked.dataTypeId) {
            if (!dataTypes.exists(dataTypeId)) revert UnknownDataType(dataTypeId);
            checked.dataTypeId = dataTypeId;
        }
    }

    function _write(
        bytes32 userId,
        bytes32 appId,
        uint8 action,
        bytes32 dataTypeId,
        bool allowed,
        address by,
        bool byUser
    ) private {
        bytes32 key = _key(userId, appId, action, dataTypeId);
        Header memory h = _headers[key];
        if (byUser) {
            h.setByUser = true;
        } else if (h.setByUser) {
            revert SetByUser(userId, appId, action, dataTypeId);
        }
        if (h.count == 0 || h.lastBlock != block.number) {
            if (h.count != 0) _archive[key][h.count - 1] = Entry({blockNumber: h.lastBlock, allowed: h.lastAllowed});
            h.count += 1;
            h.lastBlock = uint64(block.number);
        }
        h.lastAllowed = allowed;
        _headers[key] = h;
        emit ConsentChanged(userId, appId, dataTypeId, action, allowed, by, byUser);
    }

    function _batchStructHash(bytes32 userId, SignedConsent[] calldata consents, uint256 nonce, uint256 deadline)
        private
        pure
        returns (bytes32)
    {
        bytes32[] memory hashes = new bytes32[](consents.length);
        for (uint256 i = 0; i < consents.length; i++) {
            SignedConsent calldata c = consents[i];
            hashes[i] = keccak256(abi.encode(CONSENT_TYPEHASH, c.appId, c.action, c.dataTypeId, c.allowed));
        }
        return keccak256(
            abi.encode(CONSENT_BATCH_TYPEHASH, userId, keccak256(abi.encodePacked(hashes)), nonce, deadline)
        );
    }

    function _key(bytes32 userId, bytes32 appId, uint8 action, bytes32 dataTypeId) private pure returns (bytes32) {
        return keccak256(abi.encode(userId, appId, action, dataTypeId));
    }
}
