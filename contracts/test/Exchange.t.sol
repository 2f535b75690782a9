// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Exchange} from "../src/Exchange.sol";
import {TestToken} from "../src/TestToken.sol";

contract ExchangeTest is Fixture {

    uint256 internal constant PRICE = 1 ether;
    bytes32 internal bundleId;
    bytes32[] internal leaves;
    bytes internal consumerPub;

    function setUp() public override {
        super.setUp();
        (bundleId, leaves) = registerBundle(4);
        consumerPub = publicKeyOf(consumerKey);
        vm.deal(consumer, 100 ether);
        token.mint(consumer, 100 ether);
    }

    function terms(address who, address tokenAddr) internal view returns (Exchange.OfferTerms memory t) {
        bytes32[] memory ids = new bytes32[](1);
        ids[0] = bundleId;
        t = Exchange.OfferTerms({
            bundleIds: ids,
            consumer: who,
            token: tokenAddr,
            price: PRICE,
            deliveryWindow: 1 hours,
            disputeWindow: 1 days,
            expiresAt: uint64(block.timestamp + 7 days)
        });
    }

    function offer(address who, address tokenAddr) internal returns (bytes32 id) {
        vm.prank(provider);
        id = exchange.createOffer(terms(who, tokenAddr));
    }

    function placed() internal returns (bytes32 offerId, bytes32 orderId) {
        offerId = offer(address(0), address(0));
        vm.prank(consumer);
        orderId = exchange.order{value: PRICE}(offerId, consumerPub);
    }

    function delivered() internal returns (bytes32 offerId, bytes32 orderId) {
        (offerId, orderId) = placed();
        vm.prank(provider);
        exchange.deliver(orderId, keccak256("wrapped key"), keccak256(consumerPub));
    }

    // ------------------------------------------------------------------ offers

    function test_createOffer() public {
        Exchange.OfferTerms memory t = terms(consumer, address(0));
        bytes32 expected = keccak256(abi.encode(block.chainid, address(exchange), provider, uint256(0)));
        vm.expectEmit(address(exchange));
        emit Exchange.OfferCreated(expected, provider, consumer, t.bundleIds, address(0), PRICE, 1 hours, 1 days, t.expiresAt);
        vm.prank(provider);
        bytes32 id = exchange.createOffer(t);
        assertEq(id, expected);
        Exchange.Offer memory o = exchange.getOffer(id);
        assertEq(o.provider, provider);
        assertEq(uint256(o.status), uint256(Exchange.OfferStatus.Open));
        assertEq(o.terms.price, PRICE);
    }

    function test_offerIdsNeverCollide() public {
        // Airbloc's first exchange derived offer ids from the block and overwrote offers.
        bytes32 a = offer(address(0), address(0));
        bytes32 b = offer(address(0), address(0));
        assertTrue(a != b);
        assertEq(exchange.getOffer(a).provider, provider);
        assertEq(exchange.getOffer(b).provider, provider);
    }

    function test_createOffer_reverts() public {
        Exchange.OfferTerms memory t = terms(address(0), address(0));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Exchange.NotBundleSeller.selector, bundleId, stranger));
        exchange.createOffer(t);

        vm.startPrank(provider);
        t.bundleIds = new bytes32[](0);
        vm.expectRevert(Exchange.NoBundles.selector);
        exchange.createOffer(t);
        t.bundleIds = new bytes32[](65);
        vm.expectRevert(abi.encodeWithSelector(Exchange.TooManyBundles.selector, 65));
        exchange.createOffer(t);
        t = terms(address(0), address(0));
        t.bundleIds[0] = keccak256("missing");
        vm.expectRevert(abi.encodeWithSelector(Exchange.BundleNotOffered.selector, keccak256("missing")));
        exchange.createOffer(t);
        t = terms(address(0), address(0));
        t.deliveryWindow = 0;
        vm.expectRevert(Exchange.InvalidWindow.selector);
        exchange.createOffer(t);
        t = terms(address(0), address(0));
        t.expiresAt = uint64(block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(Exchange.InvalidExpiry.selector, t.expiresAt));
        exchange.createOffer(t);
        t = terms(address(0), stranger);
        vm.expectRevert(abi.encodeWithSelector(Exchange.InvalidToken.selector, stranger));
        exchange.createOffer(t);
        vm.stopPrank();
    }

    function test_cancelOffer() public {
        bytes32 id = offer(address(0), address(0));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Exchange.NotOfferProvider.selector, id, stranger));
        exchange.cancelOffer(id);
        vm.expectEmit(address(exchange));
        emit Exchange.OfferCancelled(id);
        vm.prank(provider);
        exchange.cancelOffer(id);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(Exchange.OfferNotOpen.selector, id));
        exchange.cancelOffer(id);
        vm.prank(consumer);
        vm.expectRevert(abi.encodeWithSelector(Exchange.OfferNotOpen.selector, id));
        exchange.order{value: PRICE}(id, consumerPub);
        vm.expectRevert(abi.encodeWithSelector(Exchange.UnknownOffer.selector, bytes32(0)));
        exchange.cancelOffer(bytes32(0));
    }

    // ------------------------------------------------------------------ orders

    function test_order_locksEthInEscrow() public {
        bytes32 offerId = offer(address(0), address(0));
        vm.prank(consumer);
        bytes32 orderId = exchange.order{value: PRICE}(offerId, consumerPub);
        Exchange.Order memory o = exchange.getOrder(orderId);
        assertEq(o.consumer, consumer);
        assertEq(uint256(o.status), uint256(Exchange.OrderStatus.Placed));
        assertEq(o.consumerKeyHash, keccak256(consumerPub));
        assertEq(address(exchange).balance, PRICE);
        assertEq(exchange.liabilities(address(0)), PRICE);
    }

    function test_order_emits() public {
        bytes32 offerId = offer(address(0), address(0));
        bytes32 expected = keccak256(abi.encode(block.chainid, address(exchange), offerId, consumer, uint256(1)));
        vm.expectEmit(address(exchange));
        emit Exchange.OrderPlaced(expected, offerId, consumer, address(0), PRICE, consumerPub, uint64(block.timestamp + 1 hours));
        vm.prank(consumer);
        exchange.order{value: PRICE}(offerId, consumerPub);
    }

    function test_order_withToken() public {
        bytes32 offerId = offer(address(0), address(token));
        vm.startPrank(consumer);
        token.approve(address(exchange), PRICE);
        bytes32 orderId = exchange.order(offerId, consumerPub);
        vm.stopPrank();
        assertEq(token.balanceOf(address(exchange)), PRICE);
        assertEq(exchange.getOrder(orderId).token, address(token));
    }

    function test_order_reverts() public {
        bytes32 offerId = offer(bob, address(0));
        vm.prank(consumer);
        vm.expectRevert(abi.encodeWithSelector(Exchange.NotOfferConsumer.selector, offerId, consumer));
        exchange.order{value: PRICE}(offerId, consumerPub);

        offerId = offer(address(0), address(0));
        vm.startPrank(consumer);
        vm.expectRevert(abi.encodeWithSelector(Exchange.WrongPayment.selector, PRICE, PRICE - 1));
        exchange.order{value: PRICE - 1}(offerId, consumerPub);
        vm.expectRevert(Exchange.InvalidPublicKey.selector);
        exchange.order{value: PRICE}(offerId, hex"0102");
        vm.expectRevert(abi.encodeWithSelector(Exchange.UnknownOffer.selector, keccak256("x")));
        exchange.order{value: PRICE}(keccak256("x"), consumerPub);
        vm.warp(block.timestamp + 8 days);
        vm.expectRevert(abi.encodeWithSelector(Exchange.OfferExpired.selector, offerId));
        exchange.order{value: PRICE}(offerId, consumerPub);
        vm.stopPrank();

        bytes32 tokenOffer = offer(address(0), address(token));
        vm.prank(consumer);
        vm.expectRevert(abi.encodeWithSelector(Exchange.WrongPayment.selector, 0, 1));
        exchange.order{value: 1}(tokenOffer, consumerPub);
    }

    function test_deliver() public {
        (, bytes32 orderId) = placed();
        uint64 disputeBy = uint64(block.timestamp + 1 days);
        vm.expectEmit(address(exchange));
        emit Exchange.OrderDelivered(orderId, keccak256("wrapped key"), keccak256(consumerPub), disputeBy);
        vm.prank(provider);
        exchange.deliver(orderId, keccak256("wrapped key"), keccak256(consumerPub));
        Exchange.Order memory o = exchange.getOrder(orderId);
        assertEq(uint256(o.status), uint256(Exchange.OrderStatus.Delivered));
        assertEq(o.keyCommitment, keccak256("wrapped key"));
    }

    function test_deliver_reverts() public {
        (bytes32 offerId, bytes32 orderId) = placed();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Exchange.NotOfferProvider.selector, offerId, stranger));
        exchange.deliver(orderId, 0, keccak256(consumerPub));
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(Exchange.ConsumerKeyMismatch.selector, orderId));
        exchange.deliver(orderId, 0, keccak256("other key"));
        vm.warp(block.timestamp + 1 hours + 1);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(Exchange.DeliveryWindowClosed.selector, orderId));
        exchange.deliver(orderId, 0, keccak256(consumerPub));
        vm.expectRevert(abi.encodeWithSelector(Exchange.UnknownOrder.selector, bytes32(0)));
        exchange.deliver(bytes32(0), 0, 0);
    }

    function test_settle_byConsumer_thenProviderWithdraws() public {
        (, bytes32 orderId) = delivered();
        vm.expectEmit(address(exchange));
        emit Exchange.OrderSettled(orderId, provider, PRICE);
        vm.prank(consumer);
        exchange.settle(orderId);
        assertEq(exchange.credits(provider, address(0)), PRICE);

        uint256 before = provider.balance;
        vm.expectEmit(address(exchange));
        emit Exchange.Withdrawn(provider, address(0), PRICE);
        vm.prank(provider);
        exchange.withdraw(address(0));
        assertEq(provider.balance - before, PRICE);
        assertEq(address(exchange).balance, 0);
        assertEq(exchange.liabilities(address(0)), 0);

        vm.prank(provider);
        vm.expectRevert(Exchange.NothingToWithdraw.selector);
        exchange.withdraw(address(0));
        vm.prank(consumer);
        vm.expectRevert(
            abi.encodeWithSelector(Exchange.WrongOrderStatus.selector, orderId, Exchange.OrderStatus.Settled)
        );
        exchange.settle(orderId);
    }

    function test_settle_byAnyoneAfterDisputeWindow() public {
        (, bytes32 orderId) = delivered();
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(Exchange.DisputeWindowOpen.selector, orderId));
        exchange.settle(orderId);
        vm.warp(block.timestamp + 1 days + 1);
        vm.prank(stranger);
        exchange.settle(orderId);
        assertEq(exchange.credits(provider, address(0)), PRICE);
    }

    function test_refund_afterMissedDelivery() public {
        (, bytes32 orderId) = placed();
        vm.expectRevert(abi.encodeWithSelector(Exchange.DeliveryWindowOpen.selector, orderId));
        exchange.refund(orderId);
        vm.warp(block.timestamp + 1 hours + 1);
        vm.expectEmit(address(exchange));
        emit Exchange.OrderRefunded(orderId, consumer, PRICE);
        exchange.refund(orderId);
        uint256 before = consumer.balance;
        vm.prank(consumer);
        exchange.withdraw(address(0));
        assertEq(consumer.balance - before, PRICE);
    }

    function test_refund_notAfterDelivery() public {
        (, bytes32 orderId) = delivered();
        vm.warp(block.timestamp + 2 hours);
        vm.expectRevert(
            abi.encodeWithSelector(Exchange.WrongOrderStatus.selector, orderId, Exchange.OrderStatus.Delivered)
        );
        exchange.refund(orderId);
    }

    function test_dispute_withSignedFailingProofRefunds() public {
        (bytes32 offerId, bytes32 orderId) = delivered();
        bytes32 badLeaf = keccak256("tampered record");
        bytes32[] memory proof = proofOf(leaves, 0);
        bytes memory sig = signDigest(providerKey, exchange.deliveryProofDigest(orderId, bundleId, badLeaf, proof));

        vm.expectEmit(address(exchange));
        emit Exchange.OrderDisputed(orderId, offerId, bundleId, badLeaf);
        vm.prank(consumer);
        exchange.dispute(orderId, bundleId, badLeaf, proof, sig);
        assertEq(uint256(exchange.getOrder(orderId).status), uint256(Exchange.OrderStatus.Disputed));
        assertEq(uint256(exchange.getOffer(offerId).status), uint256(Exchange.OfferStatus.Disputed));
        assertEq(exchange.credits(consumer, address(0)), PRICE);
    }

    function test_dispute_rejectsValidEvidenceForgedSignaturesAndLateness() public {
        (, bytes32 orderId) = delivered();
        bytes32[] memory proof = proofOf(leaves, 1);
        // A proof that verifies is no evidence.
        bytes memory goodSig = signDigest(providerKey, exchange.deliveryProofDigest(orderId, bundleId, leaves[1], proof));
        vm.prank(consumer);
        vm.expectRevert(abi.encodeWithSelector(Exchange.EvidenceVerifies.selector, orderId));
        exchange.dispute(orderId, bundleId, leaves[1], proof, goodSig);

        // The consumer cannot make up evidence: the provider must have signed it.
        bytes32 bad = keccak256("made up");
        bytes memory forged = signDigest(consumerKey, exchange.deliveryProofDigest(orderId, bundleId, bad, proof));
        vm.prank(consumer);
        vm.expectRevert(abi.encodeWithSelector(Exchange.InvalidDeliverySignature.selector, orderId));
        exchange.dispute(orderId, bundleId, bad, proof, forged);

        bytes memory sig = signDigest(providerKey, exchange.deliveryProofDigest(orderId, bundleId, bad, proof));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Exchange.NotOrderConsumer.selector, orderId, stranger));
        exchange.dispute(orderId, bundleId, bad, proof, sig);

        vm.prank(consumer);
        vm.expectRevert(abi.encodeWithSelector(Exchange.BundleNotOffered.selector, keccak256("other")));
        exchange.dispute(orderId, keccak256("other"), bad, proof, sig);

        vm.warp(block.timestamp + 1 days + 1);
        vm.prank(consumer);
        vm.expectRevert(abi.encodeWithSelector(Exchange.DisputeWindowClosed.selector, orderId));
        exchange.dispute(orderId, bundleId, bad, proof, sig);
    }

    function test_fullFlowGas() public {
        bytes32 offerId = offer(address(0), address(0));
        vm.prank(consumer);
        bytes32 orderId = exchange.order{value: PRICE}(offerId, consumerPub);
        vm.prank(provider);
        exchange.deliver(orderId, keccak256("wrapped key"), keccak256(consumerPub));
        vm.prank(consumer);
        exchange.settle(orderId);
    }

    function test_withdraw_rejectingRecipientBlocksNobodyElse() public {
        Rejecter rejecter = new Rejecter(exchange);
        vm.deal(address(rejecter), PRICE);
        bytes32 offerId = offer(address(0), address(0));
        bytes32 orderId = rejecter.order(offerId, consumerPub, PRICE);
        vm.warp(block.timestamp + 1 hours + 1);
        exchange.refund(orderId);
        vm.expectRevert(Exchange.TransferFailed.selector);
        rejecter.withdraw();
        // Others are unaffected.
        (, bytes32 other) = placed();
        vm.prank(provider);
        exchange.deliver(other, 0, keccak256(consumerPub));
        vm.prank(consumer);
        exchange.settle(other);
        vm.prank(provider);
        exchange.withdraw(address(0));
    }

    function test_withdraw_reentrancyIsBlocked() public {
        Reenterer attacker = new Reenterer(exchange);
        vm.deal(address(attacker), PRICE);
        bytes32 offerId = offer(address(0), address(0));
        bytes32 orderId = attacker.order(offerId, consumerPub, PRICE);
        vm.warp(block.timestamp + 1 hours + 1);
        exchange.refund(orderId);
        attacker.withdraw();
        assertEq(address(attacker).balance, PRICE, "paid once");
        assertTrue(attacker.reentryFailed(), "the nested withdraw reverted");
        assertEq(exchange.liabilities(address(0)), 0);
    }

    /// Random walks through the order state machine keep balances and statuses consistent.
    function testFuzz_orderStateMachine(uint8[8] memory steps, uint32[8] memory waits) public {
        (, bytes32 orderId) = placed();
        for (uint256 i = 0; i < steps.length; i++) {
            vm.warp(block.timestamp + (waits[i] % 2 days));
            Exchange.Order memory o = exchange.getOrder(orderId);
            uint256 step = steps[i] % 4;
            if (step == 0) {
                vm.prank(provider);
                try exchange.deliver(orderId, keccak256("k"), keccak256(consumerPub)) {
                    assertEq(uint256(o.status), uint256(Exchange.OrderStatus.Placed));
                    assertTrue(block.timestamp <= o.deliverBy);
                } catch {}
            } else if (step == 1) {
                vm.prank(consumer);
                try exchange.settle(orderId) {
                    assertEq(uint256(o.status), uint256(Exchange.OrderStatus.Delivered));
                } catch {}
            } else if (step == 2) {
                try exchange.refund(orderId) {
                    assertEq(uint256(o.status), uint256(Exchange.OrderStatus.Placed));
                    assertTrue(block.timestamp > o.deliverBy);
                } catch {}
            } else {
                vm.prank(stranger);
                try exchange.settle(orderId) {
                    assertTrue(block.timestamp > o.disputeBy);
                } catch {}
            }
        }
        Exchange.Order memory fin = exchange.getOrder(orderId);
        uint256 credited = exchange.credits(provider, address(0)) + exchange.credits(consumer, address(0));
        if (fin.status == Exchange.OrderStatus.Settled) assertEq(exchange.credits(provider, address(0)), PRICE);
        if (fin.status == Exchange.OrderStatus.Refunded) assertEq(exchange.credits(consumer, address(0)), PRICE);
        if (fin.status == Exchange.OrderStatus.Placed || fin.status == Exchange.OrderStatus.Delivered) {
            assertEq(credited, 0);
        }
        assertEq(address(exchange).balance, exchange.liabilities(address(0)));
    }
}

contract Rejecter {
    Exchange internal immutable exchange;

    constructor(Exchange exchange_) {
        exchange = exchange_;
    }

    function order(bytes32 offerId, bytes calldata key, uint256 price) external returns (bytes32) {
        return exchange.order{value: price}(offerId, key);
    }

    function withdraw() external {
        exchange.withdraw(address(0));
    }

    receive() external payable {
        revert("no thanks");
    }
}

contract Reenterer {
    Exchange internal immutable exchange;
    bool public reentryFailed;

    constructor(Exchange exchange_) {
        exchange = exchange_;
    }

    function order(bytes32 offerId, bytes calldata key, uint256 price) external returns (bytes32) {
        return exchange.order{value: price}(offerId, key);
    }

    function withdraw() external {
        exchange.withdraw(address(0));
    }

    receive() external payable {
        try exchange.withdraw(address(0)) {} catch {
            reentryFailed = true;
        }
    }
}
