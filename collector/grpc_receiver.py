"""OTLP/gRPC receiver: the three Export services. Decodes and hands off to the same Ingestor as HTTP."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc

from collector.decode import DecodeFailure, Encoding, Signal
from collector.errors import Overloaded, ShuttingDown
from collector.selfmetrics import CollectorStats
from core.keys import Unauthorized, presented_key_in_metadata, project_for

if TYPE_CHECKING:
    from collector.ingest import Export

log = logging.getLogger(__name__)

_SERVICES = {
    Signal.TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
}


class OtlpGrpcReceiver:
    """`export` hands a request over (collector.ingest.Export)."""

    def __init__(self, export: Export, stats: CollectorStats, *, api_keys: dict[str, str], max_body_bytes: int) -> None:
        self.export = export
        self.stats = stats
        self.api_keys = api_keys
        self.max_body = max_body_bytes

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        return [
            grpc.method_handlers_generic_handler(
                service,
                {
                    "Export": grpc.unary_unary_rpc_method_handler(
                        self._export(signal),
                        request_deserializer=None,
                        response_serializer=lambda m: m.SerializeToString(),
                    )
                },
            )
            for signal, service in _SERVICES.items()
        ]

    def _export(self, signal: Signal) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[object]]:
        async def export(raw: bytes, context: grpc.aio.ServicerContext) -> object:
            response = await self._handle(signal, raw, context)  # failures abort (raise) inside
            self.stats.inc("callscope_requests_total", signal=signal.value, transport="grpc", code="OK")
            return response

        return export

    async def _handle(self, signal: Signal, raw: bytes, context: grpc.aio.ServicerContext) -> object:
        try:
            project = project_for(self.api_keys, presented_key_in_metadata(context.invocation_metadata()))
        except Unauthorized as exc:
            await self._abort(context, signal, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if len(raw) > self.max_body:
            await self._abort(
                context,
                signal,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request of {len(raw)} bytes is over the limit of {self.max_body}",
            )
        try:
            result = await self.export(signal, Encoding.PROTOBUF, None, raw, project)
        except DecodeFailure as exc:
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if exc.status == 413 else grpc.StatusCode.INVALID_ARGUMENT
            await self._abort(context, signal, code, str(exc))
        except Overloaded as exc:
            # UNAVAILABLE is retried by every OTLP exporter; RESOURCE_EXHAUSTED only with RetryInfo.
            await self._abort(context, signal, grpc.StatusCode.UNAVAILABLE, str(exc))
        except ShuttingDown as exc:
            await self._abort(context, signal, grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception:
            log.exception("export of a %s gRPC request failed", signal.value)
            await self._abort(context, signal, grpc.StatusCode.UNAVAILABLE, "the store could not commit")
        response = result.response(signal)
        return response

    async def _abort(
        self, context: grpc.aio.ServicerContext, signal: Signal, code: grpc.StatusCode, message: str
    ) -> None:
        self.stats.inc("callscope_requests_total", signal=signal.value, transport="grpc", code=code.name)
        await context.abort(code, message)
