"""Ingest and read authentication: API keys mapped to projects."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

DEFAULT_PROJECT = "default"


class Unauthorized(Exception):
    pass


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def project_for(keys: Mapping[str, str], presented: str | None) -> str:
    """The project a request belongs to; raises Unauthorized when keys are configured and none matches."""
    if not keys:
        return DEFAULT_PROJECT
    if presented:
        for key, project in keys.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                return project
    raise Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
