"""Signs or recovers EIP-712 typed data with eth-account for interop tests.

stdin: {"mode": "sign", "private_key": hex, "typed_data": {...}}
    or {"mode": "recover", "signature": hex, "typed_data": {...}}
stdout: {"signature": hex} or {"address": checksummed address}
"""
import json
import sys

from eth_account import Account
from eth_account.messages import encode_typed_data

request = json.load(sys.stdin)
message = encode_typed_data(full_message=request["typed_data"])
if request["mode"] == "sign":
    signed = Account.sign_message(message, private_key=request["private_key"])
    json.dump({"signature": "0x" + signed.signature.hex().removeprefix("0x")}, sys.stdout)
else:
    json.dump({"address": Account.recover_message(message, signature=request["signature"])}, sys.stdout)
