// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {AppRegistry} from "./AppRegistry.sol";
import {DataRegistry} from "./DataRegistry.sol";

/// @title Exchange
/// @notice Sells bundles for ETH or an ERC-20 with the payment held in escrow.
///
///         offer (provider) → order (consumer pays into escrow, names the public key to wrap the
///         data key to) → deliver (provider commits to the wrapped key it sent) → settle (consumer,
///         or anyone once the dispute window has passed: payment credited to the provider).
///         Without delivery by the deadline the order can be refunded in full. Within the dispute
///         window the consumer can dispute with a provider-signed delivery proof that fails
///         `DataRegistry.verify`: full refund and the offer is marked disputed.
///
///         Payments are pulled (`withdraw`), so a reverting recipient cannot block anyone else.
///         Offer ids come from a per-provider nonce and order ids from a global nonce: they never
///         collide.
contract Exchange is ReentrancyGuard, EIP712 {
    using SafeERC20 for IERC20;

    uint256 public constant MAX_BUNDLES_PER_OFFER = 64;
    bytes32 public constant DELIVERY_PROOF_TYPEHASH =
        keccak256("DeliveryProof(bytes32 order,bytes32 bundle,bytes32 leaf,bytes32 proofHash)");

    enum OfferStatus {
        None,
        Open,
        Cancelled,
        Disputed
    }

    enum OrderStatus {
        None,
        Placed,
        Delivered,
        Settled,
        Refunded,
        Disputed
    }

    /// What a provider offers.
    struct OfferTerms {
        bytes32[] bundleIds;
        /// Who may order; zero for anyone.
        address consumer;
        /// Payment token; zero for ETH.
        address token;
        uint256 price;
        /// Seconds the provider has to deliver after an order.
        uint64 deliveryWindow;
        /// Seconds the consumer has to dispute after delivery.
        uint64 disputeWindow;
        /// Unix time after which the offer takes no orders.
        uint64 expiresAt;
    }

    struct Offer {
        address provider;
        OfferStatus status;
        OfferTerms terms;
    }

    struct Order {
        bytes32 offerId;
        address consumer;
        OrderStatus status;
        address token;
        uint256 amount;
        uint64 placedAt;
        uint64 deliverBy;
        uint64 disputeBy;
        bytes32 consumerKeyHash;
        bytes32 keyCommitment;
    }

    DataRegistry public immutable dataRegistry;
    AppRegistry public immutable apps;

    mapping(bytes32 => Offer) private _offers;
    mapping(bytes32 => Order) private _orders;
    mapping(address => uint256) public offerNonce;
    uint256 public orderNonce;

    /// account => token => amount withdrawable
    mapping(address => mapping(address => uint256)) public credits;
    /// token => everything the contract owes (escrow + credits)
    mapping(address => uint256) public liabilities;

    event OfferCreated(
        bytes32 indexed offerId,
        address indexed provider,
        address indexed consumer,
        bytes32[] bundleIds,
        address token,
        uint256 price,
        uint64 deliveryWindow,
        uint64 disputeWindow,
        uint64 expiresAt
    );
    event OfferCancelled(bytes32 indexed offerId);
    event OrderPlaced(
        bytes32 indexed orderId,
        bytes32 indexed offerId,
        address indexed consumer,
        address token,
        uint256 amount,
        bytes consumerPublicKey,
        uint64 deliverBy
    );
    event OrderDelivered(bytes32 indexed orderId, bytes32 keyCommitment, bytes32 consumerKeyHash, uint64 disputeBy);
    event OrderSettled(bytes32 indexed orderId, address indexed provider, uint256 amount);
    event OrderRefunded(bytes32 indexed orderId, address indexed consumer, uint256 amount);
    event OrderDisputed(bytes32 indexed orderId, bytes32 indexed offerId, bytes32 bundleId, bytes32 leaf);
    event Withdrawn(address indexed account, address indexed token, uint256 amount);

    error NoBundles();
    error TooManyBundles(uint256 count);
    error BundleNotOffered(bytes32 bundleId);
    error NotBundleSeller(bytes32 bundleId, address account);
    error InvalidWindow();
    error InvalidExpiry(uint64 expiresAt);
    error InvalidToken(address token);
    error UnknownOffer(bytes32 offerId);
    error OfferNotOpen(bytes32 offerId);
    error OfferExpired(bytes32 offerId);
    error NotOfferProvider(bytes32 offerId, address account);
    error NotOfferConsumer(bytes32 offerId, address account);
    error WrongPayment(uint256 expected, uint256 received);
    error InvalidPublicKey();
    error UnknownOrder(bytes32 orderId);
    error WrongOrderStatus(bytes32 orderId, OrderStatus status);
    error NotOrderConsumer(bytes32 orderId, address account);
    error DeliveryWindowClosed(bytes32 orderId);
    error DeliveryWindowOpen(bytes32 orderId);
    error DisputeWindowOpen(bytes32 orderId);
    error DisputeWindowClosed(bytes32 orderId);
    error ConsumerKeyMismatch(bytes32 orderId);
    error InvalidDeliverySignature(bytes32 orderId);
    error EvidenceVerifies(bytes32 orderId);
    error NothingToWithdraw();
    error TransferFailed();

    constructor(DataRegistry dataRegistry_, AppRegistry apps_) EIP712("airbloc Exchange", "1") {
        dataRegistry = dataRegistry_;
        apps = apps_;
    }

    // ---------------------------------------------------------------------------------- offers

    function createOffer(OfferTerms calldata terms) external returns (bytes32 offerId) {
        uint256 count = terms.bundleIds.length;
        if (count == 0) revert NoBundles();
        if (count > MAX_BUNDLES_PER_OFFER) revert TooManyBundles(count);
        if (terms.deliveryWindow == 0 || terms.disputeWindow == 0) revert InvalidWindow();
        if (terms.expiresAt <= block.timestamp) revert InvalidExpiry(terms.expiresAt);
        if (terms.token != address(0) && terms.token.code.length == 0) revert InvalidToken(terms.token);
        for (uint256 i = 0; i < count; i++) {
            DataRegistry.Bundle memory bundle = dataRegistry.getBundle(terms.bundleIds[i]);
            if (!bundle.active) revert BundleNotOffered(terms.bundleIds[i]);
            if (bundle.provider != msg.sender && !apps.isAuthorized(bundle.appId, msg.sender)) {
                revert NotBundleSeller(terms.bundleIds[i], msg.sender);
            }
        }
        offerId = keccak256(abi.encode(block.chainid, address(this), msg.sender, offerNonce[msg.sender]++));
        Offer storage offer = _offers[offerId];
        offer.provider = msg.sender;
        offer.status = OfferStatus.Open;
        offer.terms = terms;
        emit OfferCreated(
            offerId,
            msg.sender,
            terms.consumer,
            terms.bundleIds,
            terms.token,
            terms.price,
            terms.deliveryWindow,
            terms.disputeWindow,
            terms.expiresAt
        );
    }

    /// @notice Stops new orders on an offer; orders already placed run their course.
    function cancelOffer(bytes32 offerId) external {
        Offer storage offer = _offers[offerId];
        if (offer.status == OfferStatus.None) revert UnknownOffer(offerId);
        if (offer.provider != msg.sender) revert NotOfferProvider(offerId, msg.sender);
        if (offer.status != OfferStatus.Open) revert OfferNotOpen(offerId);
        offer.status = OfferStatus.Cancelled;
        emit OfferCancelled(offerId);
    }

    // ---------------------------------------------------------------------------------- orders

    /// @notice Orders an offer, paying its price into escrow. `consumerPublicKey` is the
    ///         uncompressed secp256k1 key (65 bytes, 0x04 ‖ x ‖ y) the data key will be wrapped to.
    function order(bytes32 offerId, bytes calldata consumerPublicKey)
        external
        payable
        nonReentrant
        returns (bytes32 orderId)
    {
        Offer storage offer = _offers[offerId];
        if (offer.status == OfferStatus.None) revert UnknownOffer(offerId);
        if (offer.status != OfferStatus.Open) revert OfferNotOpen(offerId);
        OfferTerms storage terms = offer.terms;
        if (block.timestamp > terms.expiresAt) revert OfferExpired(offerId);
        if (terms.consumer != address(0) && terms.consumer != msg.sender) revert NotOfferConsumer(offerId, msg.sender);
        if (consumerPublicKey.length != 65 || consumerPublicKey[0] != 0x04) revert InvalidPublicKey();

        address token = terms.token;
        uint256 price = terms.price;
        if (token == address(0)) {
            if (msg.value != price) revert WrongPayment(price, msg.value);
        } else {
            if (msg.value != 0) revert WrongPayment(0, msg.value);
            uint256 before = IERC20(token).balanceOf(address(this));
            IERC20(token).safeTransferFrom(msg.sender, address(this), price);
            uint256 received = IERC20(token).balanceOf(address(this)) - before;
            if (received != price) revert WrongPayment(price, received);
        }
        liabilities[token] += price;

        orderId = keccak256(abi.encode(block.chainid, address(this), offerId, msg.sender, ++orderNonce));
        uint64 deliverBy = uint64(block.timestamp) + terms.deliveryWindow;
        _orders[orderId] = Order({
            offerId: offerId,
            consumer: msg.sender,
            status: OrderStatus.Placed,
            token: token,
            amount: price,
            placedAt: uint64(block.timestamp),
            deliverBy: deliverBy,
            disputeBy: 0,
            consumerKeyHash: keccak256(consumerPublicKey),
            keyCommitment: 0
        });
        emit OrderPlaced(orderId, offerId, msg.sender, token, price, consumerPublicKey, deliverBy);
    }

    /// @notice The provider records delivery: a commitment to the wrapped key it sent and the hash
    ///         of the consumer key it wrapped to (which must be the one in the order).
    function deliver(bytes32 orderId, bytes32 keyCommitment, bytes32 consumerKeyHash) external {
        Order storage o = _order(orderId);
        Offer storage offer = _offers[o.offerId];
        if (offer.provider != msg.sender) revert NotOfferProvider(o.offerId, msg.sender);
        if (o.status != OrderStatus.Placed) revert WrongOrderStatus(orderId, o.status);
        if (block.timestamp > o.deliverBy) revert DeliveryWindowClosed(orderId);
        if (consumerKeyHash != o.consumerKeyHash) revert ConsumerKeyMismatch(orderId);
        o.status = OrderStatus.Delivered;
        o.keyCommitment = keyCommitment;
        o.disputeBy = uint64(block.timestamp) + offer.terms.disputeWindow;
        emit OrderDelivered(orderId, keyCommitment, consumerKeyHash, o.disputeBy);
    }

    /// @notice Releases the payment to the provider: by the consumer at any time after delivery,
    ///         by anyone once the dispute window has passed.
    function settle(bytes32 orderId) external {
        Order storage o = _order(orderId);
        if (o.status != OrderStatus.Delivered) revert WrongOrderStatus(orderId, o.status);
        if (msg.sender != o.consumer && block.timestamp <= o.disputeBy) revert DisputeWindowOpen(orderId);
        o.status = OrderStatus.Settled;
        address provider = _offers[o.offerId].provider;
        credits[provider][o.token] += o.amount;
        emit OrderSettled(orderId, provider, o.amount);
    }

    /// @notice Returns the payment to the consumer when the provider missed the delivery window.
    ///         Anyone may call; the refund is credited to the consumer.
    function refund(bytes32 orderId) external {
        Order storage o = _order(orderId);
        if (o.status != OrderStatus.Placed) revert WrongOrderStatus(orderId, o.status);
        if (block.timestamp <= o.deliverBy) revert DeliveryWindowOpen(orderId);
        o.status = OrderStatus.Refunded;
        credits[o.consumer][o.token] += o.amount;
        emit OrderRefunded(orderId, o.consumer, o.amount);
    }

    /// @notice Disputes a delivery. Evidence: a leaf and proof the provider signed as delivered
    ///         for this order (EIP-712 `DeliveryProof`) that does not verify against the bundle's
    ///         on-chain root. Refunds the consumer and marks the offer disputed.
    function dispute(
        bytes32 orderId,
        bytes32 bundleId,
        bytes32 leaf,
        bytes32[] calldata proof,
        bytes calldata providerSignature
    ) external {
        Order storage o = _order(orderId);
        if (o.consumer != msg.sender) revert NotOrderConsumer(orderId, msg.sender);
        if (o.status != OrderStatus.Delivered) revert WrongOrderStatus(orderId, o.status);
        if (block.timestamp > o.disputeBy) revert DisputeWindowClosed(orderId);
        Offer storage offer = _offers[o.offerId];
        if (!_offersBundle(offer, bundleId)) revert BundleNotOffered(bundleId);
        bytes32 digest = deliveryProofDigest(orderId, bundleId, leaf, proof);
        if (!SignatureChecker.isValidSignatureNow(offer.provider, digest, providerSignature)) {
            revert InvalidDeliverySignature(orderId);
        }
        if (dataRegistry.verify(bundleId, leaf, proof)) revert EvidenceVerifies(orderId);
        o.status = OrderStatus.Disputed;
        offer.status = OfferStatus.Disputed;
        credits[o.consumer][o.token] += o.amount;
        emit OrderDisputed(orderId, o.offerId, bundleId, leaf);
    }

    /// @notice Pays out everything credited to the caller in `token` (zero for ETH).
    function withdraw(address token) external nonReentrant {
        uint256 amount = credits[msg.sender][token];
        if (amount == 0) revert NothingToWithdraw();
        credits[msg.sender][token] = 0;
        liabilities[token] -= amount;
        if (token == address(0)) {
            (bool ok,) = msg.sender.call{value: amount}("");
            if (!ok) revert TransferFailed();
        } else {
            IERC20(token).safeTransfer(msg.sender, amount);
        }
        emit Withdrawn(msg.sender, token, amount);
    }

    // ---------------------------------------------------------------------------------- views

    function getOffer(bytes32 offerId) external view returns (Offer memory) {
        return _offers[offerId];
    }

    function getOrder(bytes32 orderId) external view returns (Order memory) {
        return _orders[orderId];
    }

    /// @notice The EIP-712 digest a provider signs for each delivered leaf and proof.
    function deliveryProofDigest(bytes32 orderId, bytes32 bundleId, bytes32 leaf, bytes32[] calldata proof)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(DELIVERY_PROOF_TYPEHASH, orderId, bundleId, leaf, keccak256(abi.encodePacked(proof)))
            )
        );
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _order(bytes32 orderId) private view returns (Order storage o) {
        o = _orders[orderId];
        if (o.status == OrderStatus.None) revert UnknownOrder(orderId);
    }

    function _offersBundle(Offer storage offer, bytes32 bundleId) private view returns (bool) {
        bytes32[] storage ids = offer.terms.bundleIds;
        for (uint256 i = 0; i < ids.length; i++) {
            if (ids[i] == bundleId) return true;
        }
        return false;
    }
}
