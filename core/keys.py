"""API keys, one parser for every door: OTLP/HTTP, OTLP/gRPC and the read API.

A client presents a key as `Authorization: Bearer KEY` or `x-api-key: KEY`; when it sends both, the
Authorization header wins (the standard header first, everywhere). Keys are compared in constant time and
never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

DEFAULT_PROJECT = "default"
HOW_TO_SEND = "send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"


class Unauthorized(Exception):
    pass


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request presents, from its Authorization (Bearer) or x-api-key header."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


def presented_key_in_metadata(metadata: Iterable[tuple[str, str]] | None) -> str | None:
    """The same for gRPC invocation metadata (lower-case keys)."""
    headers = {key: value for key, value in metadata or () if isinstance(value, str)}
    return presented_key(headers.get("authorization"), headers.get("x-api-key"))


def _matches(known: str, presented: str) -> bool:
    return hmac.compare_digest(known.encode(), presented.encode())


def project_for(keys: Mapping[str, str], presented: str | None) -> str:
    """The project an ingest request belongs to; raises Unauthorized when keys are configured and none matches."""
    if not keys:
        return DEFAULT_PROJECT
    if presented:
        for key, project in keys.items():
            if _matches(key, presented):
                return project
    raise Unauthorized(f"missing or invalid API key: {HOW_TO_SEND}")


def is_allowed(keys: Iterable[str], presented: str | None) -> bool:
    """Whether a read request may pass: no keys configured, or one of them presented."""
    keys = tuple(keys)
    if not keys:
        return True
    return presented is not None and any(_matches(key, presented) for key in keys)
