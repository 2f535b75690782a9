"""Checks a provider node's status and streams a few records into it.

    python examples/ingest.py testnet/state/provider-1 APP_ID DATA_TYPE_ID USER_ID
"""

import json
import sys

import airbloc
from airbloc.v1 import node_pb2, provider_pb2

datadir, app, data_type, user = sys.argv[1:5]
node = airbloc.connect(datadir=datadir)
status = node.node.Status(node_pb2.StatusRequest())
print(f"{status.address} on chain {status.chain_id}, indexed block {status.indexed_block}")

records = (
    provider_pb2.IngestRecord(
        app_id=bytes.fromhex(app[2:]), data_type_id=bytes.fromhex(data_type[2:]), user_id=bytes.fromhex(user[2:]),
        collected_at_ms=1_767_225_600_000 + i, payload_json=json.dumps({"steps": i}))
    for i in range(10)
)
summary = node.provider.Ingest(records)
print(f"{summary.accepted} accepted, {len(summary.rejected)} rejected")
