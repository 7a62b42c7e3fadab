"""OTLP/HTTP receiver: POST /v1/traces, /v1/metrics, /v1/logs. Decodes and hands off; no storage code here.

Status codes follow the OTLP spec and the reference collector: 405 other methods, 415 unknown Content-Type
or Content-Encoding, 400 undecodable body (google.rpc.Status with the reason), 413 too large, 401 bad key,
429 (queue full) / 503 (too many requests in flight, shutting down) with Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from google.rpc import code_pb2, status_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.decode import (
    DecodeFailure,
    Encoding,
    Signal,
    content_encoding_of,
    encode_response,
)
from collector.errors import Overloaded, ShuttingDown
from collector.selfmetrics import CollectorStats
from core.keys import Unauthorized, presented_key, project_for

if TYPE_CHECKING:
    from collector.ingest import Export

log = logging.getLogger(__name__)

_GRPC_CODE_FOR_HTTP = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
    500: code_pb2.INTERNAL,
}


def _status_response(
    http_status: int, message: str, encoding: Encoding, retry_after: int | None = None, signal: str = ""
) -> Response:
    body = encode_response(
        status_pb2.Status(code=_GRPC_CODE_FOR_HTTP.get(http_status, code_pb2.UNKNOWN), message=message),
        encoding,
    )
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(body, status_code=http_status, media_type=encoding.value, headers=headers)


class OtlpHttpReceiver:
    """`export` hands a request over (collector.ingest.Export); `has_room` says whether one more would fit in the
    queue, asked before the body is even read."""

    def __init__(
        self,
        export: Export,
        has_room: Callable[[], bool],
        stats: CollectorStats,
        *,
        api_keys: dict[str, str],
        max_body_bytes: int,
        max_inflight: int,
        retry_after: int,
    ) -> None:
        self.export = export
        self.has_room = has_room
        self.stats = stats
        self.api_keys = api_keys
        self.max_body = max_body_bytes
        self.max_inflight = max_inflight
        self.retry_after = retry_after
        self.inflight = 0

    def routes(self) -> list[Route]:
        methods = ["POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS"]
        return [Route(f"/v1/{signal.value}", self._endpoint(signal), methods=methods) for signal in Signal]

    def _endpoint(self, signal: Signal):
        async def endpoint(request: Request) -> Response:
            return await self.handle(signal, request)

        endpoint.__name__ = f"otlp_{signal.value}"
        return endpoint

    async def handle(self, signal: Signal, request: Request) -> Response:
        response = await self._handle(signal, request)
        code = str(response.status_code)
        self.stats.inc("callscope_requests_total", signal=signal.value, transport="http", code=code)
        return response

    async def _handle(self, signal: Signal, request: Request) -> Response:
        if request.method != "POST":
            return Response(
                f"method {request.method} not allowed: use POST\n",
                status_code=405,
                headers={"Allow": "POST"},
                media_type="text/plain",
            )
        try:
            encoding = content_encoding_of(request.headers.get("content-type"))
        except DecodeFailure as exc:
            return _status_response(exc.status, str(exc), Encoding.JSON)
        try:
            project = project_for(
                self.api_keys,
                presented_key(request.headers.get("authorization"), request.headers.get("x-api-key")),
            )
        except Unauthorized as exc:
            return _status_response(401, str(exc), encoding)
        if not self.has_room():
            return _status_response(429, "collector queue is full, retry later", encoding, self.retry_after)
        if self.inflight >= self.max_inflight:
            return _status_response(503, "too many requests in flight, retry later", encoding, self.retry_after)
        self.inflight += 1
        try:
            return await self._decode_and_export(signal, request, encoding, project)
        finally:
            self.inflight -= 1

    async def _decode_and_export(self, signal: Signal, request: Request, encoding: Encoding, project: str) -> Response:
        try:
            raw = await self._read_body(request)
            result = await self.export(signal, encoding, request.headers.get("content-encoding"), raw, project)
        except DecodeFailure as exc:
            return _status_response(exc.status, str(exc), encoding)
        except Overloaded as exc:
            return _status_response(429, str(exc), encoding, exc.retry_after)
        except ShuttingDown as exc:
            return _status_response(503, str(exc), encoding, self.retry_after)
        except Exception:
            log.exception("export of a %s request failed", signal.value)
            return _status_response(
                503, "the store could not commit this request; retry later", encoding, self.retry_after
            )
        response = result.response(signal)
        return Response(encode_response(response, encoding), status_code=200, media_type=encoding.value)

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise DecodeFailure(413, f"request body of {declared} bytes is over the limit of {self.max_body}")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise DecodeFailure(413, f"request body is over the limit of {self.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
