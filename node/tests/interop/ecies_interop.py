"""Wraps and unwraps with eciespy (the Python ECIES library) for interop tests.

stdin: {"mode": "encrypt", "public_key": hex, "data": hex}
    or {"mode": "decrypt", "secret_key": hex, "data": hex}
stdout: {"data": hex}
"""
import json
import sys

import ecies

request = json.load(sys.stdin)
if request["mode"] == "encrypt":
    out = ecies.encrypt(bytes.fromhex(request["public_key"]), bytes.fromhex(request["data"]))
else:
    out = ecies.decrypt(bytes.fromhex(request["secret_key"]), bytes.fromhex(request["data"]))
json.dump({"data": out.hex()}, sys.stdout)
