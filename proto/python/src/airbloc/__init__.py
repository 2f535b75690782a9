"""airbloc — Python SDK for airblocd nodes.

The gRPC modules are generated from proto/airbloc/v1 when the package is built
(``airbloc.v1.node_pb2``, ``airbloc.v1.node_pb2_grpc``, …). :func:`connect` gives one stub per
service with the node's bearer token added to every call::

    node = airbloc.connect(datadir="testnet/state/provider-1")
    status = node.node.Status(airbloc.v1.node_pb2.StatusRequest())
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import grpc

__all__ = ["Node", "connect"]


class _Bearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details):
        metadata = list(details.metadata or []) + [self._header]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready,
            details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


@dataclass
class _Details(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: list
    credentials: object
    wait_for_ready: bool | None
    compression: object


class Node:
    """A connection to one node with a stub per service."""

    def __init__(self, target: str, token: str):
        from airbloc.v1 import (
            admin_pb2_grpc,
            consumer_pb2_grpc,
            keeper_pb2_grpc,
            node_pb2_grpc,
            provider_pb2_grpc,
            registry_pb2_grpc,
        )

        self.channel = grpc.intercept_channel(grpc.insecure_channel(target), _Bearer(token))
        self.node = node_pb2_grpc.NodeStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        self.registry = registry_pb2_grpc.RegistryStub(self.channel)
        self.provider = provider_pb2_grpc.ProviderStub(self.channel)
        self.consumer = consumer_pb2_grpc.ConsumerStub(self.channel)
        self.keeper = keeper_pb2_grpc.KeeperStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(datadir: str | None = None, target: str | None = None, token: str | None = None) -> Node:
    """Connects to a node: by its data dir (endpoint from node.json, token from api.token), or by
    ``target`` ("host:port") and ``token``."""
    if datadir is not None:
        with open(os.path.join(datadir, "node.json")) as f:
            runtime = json.load(f)
        target = target or runtime["grpc_addr"]
        if token is None:
            with open(runtime["token_file"]) as f:
                token = f.read().strip()
    if not target or not token:
        raise ValueError("give datadir=, or target= and token=")
    return Node(target, token)
