"""Drives real airblocd nodes through the Python SDK (run by the Rust test
node/tests/it/python_sdk.rs, which starts the nodes): status, ingest, seal, offer, catalog.
Prints one JSON object with what it saw."""

import json
import sys
import time

import grpc

import airbloc
from airbloc.v1 import consumer_pb2, node_pb2, provider_pb2, registry_pb2

provider_dir, consumer_dir, app_hex, data_type_hex, user_hex = sys.argv[1:6]
app, data_type, user = (bytes.fromhex(x[2:]) for x in (app_hex, data_type_hex, user_hex))
out = {}

with airbloc.connect(datadir=provider_dir) as provider, airbloc.connect(datadir=consumer_dir) as consumer:
    status = provider.node.Status(node_pb2.StatusRequest())
    out["provider_address"] = status.address
    out["chain_id"] = status.chain_id

    def records():
        for i in range(100):
            payload = {"steps": i} if i % 10 else {"steps": "not a number"}
            yield provider_pb2.IngestRecord(app_id=app, data_type_id=data_type, user_id=user,
                                            collected_at_ms=1_767_225_600_000 + i, payload_json=json.dumps(payload))

    summary = provider.provider.Ingest(records())
    out["accepted"] = summary.accepted
    out["rejected"] = [r.index for r in summary.rejected]

    bundle = provider.provider.SealBundle(provider_pb2.SealBundleRequest(app_id=app, data_type_id=data_type))
    out["bundle_id"] = "0x" + bundle.bundle_id.hex()
    offer = provider.provider.CreateOffer(provider_pb2.CreateOfferRequest(
        bundle_ids=[bundle.bundle_id], price_wei="1000", delivery_window_secs=600, dispute_window_secs=600,
        expires_in_secs=3600))
    out["offer_id"] = "0x" + offer.offer_id.hex()

    deadline = time.time() + 60
    while True:
        entries = consumer.consumer.Catalog(consumer_pb2.CatalogRequest(app_id=app)).entries
        found = [e for e in entries if e.bundle_id == bundle.bundle_id and e.offers]
        if found or time.time() > deadline:
            break
        time.sleep(0.2)
    out["catalog"] = [{"bundle_id": "0x" + e.bundle_id.hex(), "records": e.record_count,
                       "offers": ["0x" + o.offer_id.hex() for o in e.offers]} for e in found]
    data_type_info = consumer.registry.GetDataType(registry_pb2.DataTypeRef(data_type_id=data_type))
    out["schema_json"] = data_type_info.schema_json

    # Errors arrive as gRPC status codes with the node's message.
    try:
        provider.provider.SealBundle(provider_pb2.SealBundleRequest(app_id=b"\x01", data_type_id=data_type))
    except grpc.RpcError as e:
        out["bad_request"] = [e.code().name, e.details()]

print(json.dumps(out))
