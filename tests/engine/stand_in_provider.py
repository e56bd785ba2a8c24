"""A resource provider plugin that accepts whatever it is given, standing in for a cloud's.

The aws, gcp and openstack plugins cannot be built here (their modules are not served), yet
the policy pack reads their resource types. Started by the engine as `pulumi-resource-<name>`
(a shim the test writes), this answers what a preview asks of a provider, Configure and Check,
with the inputs unchanged; the engine then hands them to the pack as it would a real
provider's. It creates nothing: a preview never calls Create.

    python -m tests.engine.stand_in_provider <engine address>
"""

from __future__ import annotations

import sys
from concurrent import futures
from threading import Event
from typing import Any

import grpc
from pulumi.runtime import proto
from pulumi.runtime.proto import provider_pb2_grpc


class StandIn(provider_pb2_grpc.ResourceProviderServicer):
    def GetPluginInfo(self, request: Any, context: Any) -> Any:
        return proto.PluginInfo(version="0.0.1")

    def Configure(self, request: Any, context: Any) -> Any:
        return proto.ConfigureResponse(acceptSecrets=False, supportsPreview=False)

    def Check(self, request: Any, context: Any) -> Any:
        return proto.CheckResponse(inputs=request.news)


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(StandIn(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    Event().wait()


if __name__ == "__main__":
    main()
