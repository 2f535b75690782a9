// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Base.sol";
import {Exchange} from "../src/Exchange.sol";
import {DataRegistry} from "../src/DataRegistry.sol";
import {TestToken} from "../src/TestToken.sol";

/// Drives the Exchange through random sequences of every user action, in ETH and an ERC-20,
/// while keeping a ghost ledger of what the contract owes.
contract ExchangeHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    Exchange internal immutable exchange;
    TestToken internal immutable token;
    bytes32 internal immutable bundleId;
    address internal immutable provider;
    uint256 internal immutable providerKey;
    address[3] internal consumers = [address(0xC1), address(0xC2), address(0xC3)];
    bytes internal consumerPub;

    bytes32[] public offers;
    bytes32[] public orders;
    /// token => escrow of orders still Placed or Delivered
    mapping(address => uint256) public ghostEscrow;
    /// token => credited but not withdrawn
    mapping(address => uint256) public ghostCredits;

    constructor(Exchange e, TestToken t, bytes32 bundle, uint256 providerSecret, bytes memory pub) {
        exchange = e;
        token = t;
        bundleId = bundle;
        providerKey = providerSecret;
        provider = vm.addr(providerSecret);
        consumerPub = pub;
        for (uint256 i = 0; i < consumers.length; i++) {
            vm.deal(consumers[i], 1_000_000 ether);
            t.mint(consumers[i], 1_000_000 ether);
            vm.prank(consumers[i]);
            t.approve(address(e), type(uint256).max);
        }
    }

    function createOffer(uint256 price, bool useToken) external {
        bytes32[] memory ids = new bytes32[](1);
        ids[0] = bundleId;
        vm.prank(provider);
        offers.push(
            exchange.createOffer(
                Exchange.OfferTerms({
                    bundleIds: ids,
                    consumer: address(0),
                    token: useToken ? address(token) : address(0),
                    price: price % 100 ether,
                    deliveryWindow: 1 hours,
                    disputeWindow: 1 hours,
                    expiresAt: uint64(block.timestamp + 3650 days)
                })
            )
        );
    }

    function order(uint256 offerSeed, uint256 consumerSeed) external {
        if (offers.length == 0) return;
        bytes32 offerId = offers[offerSeed % offers.length];
        Exchange.Offer memory o = exchange.getOffer(offerId);
        if (o.status != Exchange.OfferStatus.Open) return;
        address who = consumers[consumerSeed % consumers.length];
        vm.prank(who);
        bytes32 id = o.terms.token == address(0)
            ? exchange.order{value: o.terms.price}(offerId, consumerPub)
            : exchange.order(offerId, consumerPub);
        orders.push(id);
        ghostEscrow[o.terms.token] += o.terms.price;
    }

    function deliver(uint256 orderSeed) external {
        if (orders.length == 0) return;
        bytes32 id = orders[orderSeed % orders.length];
        vm.prank(provider);
        try exchange.deliver(id, keccak256("k"), keccak256(consumerPub)) {} catch {}
    }

    function settle(uint256 orderSeed, bool asConsumer) external {
        if (orders.length == 0) return;
        bytes32 id = orders[orderSeed % orders.length];
        Exchange.Order memory o = exchange.getOrder(id);
        vm.prank(asConsumer ? o.consumer : address(0xBEEF));
        try exchange.settle(id) {
            _release(o);
        } catch {}
    }

    function refund(uint256 orderSeed) external {
        if (orders.length == 0) return;
        bytes32 id = orders[orderSeed % orders.length];
        Exchange.Order memory o = exchange.getOrder(id);
        try exchange.refund(id) {
            _release(o);
        } catch {}
    }

    function dispute(uint256 orderSeed) external {
        if (orders.length == 0) return;
        bytes32 id = orders[orderSeed % orders.length];
        Exchange.Order memory o = exchange.getOrder(id);
        bytes32 leaf = keccak256(abi.encode("bad", orderSeed));
        bytes32[] memory proof = new bytes32[](0);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(providerKey, exchange.deliveryProofDigest(id, bundleId, leaf, proof));
        vm.prank(o.consumer);
        try exchange.dispute(id, bundleId, leaf, proof, abi.encodePacked(r, s, v)) {
            _release(o);
        } catch {}
    }

    function withdraw(uint256 who, bool useToken) external {
        address account = who % 4 == 3 ? provider : consumers[who % 3];
        address t = useToken ? address(token) : address(0);
        uint256 amount = exchange.credits(account, t);
        vm.prank(account);
        try exchange.withdraw(t) {
            ghostCredits[t] -= amount;
        } catch {}
    }

    function warp(uint256 secondsAhead) external {
        vm.warp(block.timestamp + (secondsAhead % 3 hours));
    }

    function _release(Exchange.Order memory o) private {
        ghostEscrow[o.token] -= o.amount;
        ghostCredits[o.token] += o.amount;
    }
}

contract ExchangeInvariantTest is Fixture {
    ExchangeHandler internal handler;

    function setUp() public override {
        super.setUp();
        (bytes32 bundle,) = registerBundle(4);
        handler = new ExchangeHandler(exchange, token, bundle, providerKey, publicKeyOf(consumerKey));
        targetContract(address(handler));
    }

    /// The Exchange holds exactly what it owes, in ETH and in the token.
    function invariant_balancesEqualWhatIsOwed() public view {
        assertEq(address(exchange).balance, exchange.liabilities(address(0)), "ETH held == ETH owed");
        assertEq(token.balanceOf(address(exchange)), exchange.liabilities(address(token)), "tokens held == owed");
        assertEq(
            exchange.liabilities(address(0)),
            handler.ghostEscrow(address(0)) + handler.ghostCredits(address(0)),
            "ETH owed == escrow + credits"
        );
        assertEq(
            exchange.liabilities(address(token)),
            handler.ghostEscrow(address(token)) + handler.ghostCredits(address(token)),
            "tokens owed == escrow + credits"
        );
    }
}
