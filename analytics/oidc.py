"""Verifying an OpenID Connect ID token here, in the API: the dashboard forwards the ID token of its signed-in
user, and this server checks it itself against the issuer's published keys (never trusting the page).

Checked: the signature (a key of the issuer's JWKS, an asymmetric algorithm: RS*/PS*/ES*/EdDSA), `iss` equal to
the configured issuer, `aud` naming our client id, `exp` in the future, `iat` not in the future, and an `email`
(the user store's name). The issuer's discovery document and keys are fetched when first needed and again when
a token names a key id not yet known (a key rotation), at most once a minute.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from analytics.access import OidcVerifier

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
REFETCH_SECONDS = 60.0


class TokenRefused(ValueError):
    """The ID token is not one of our issuer's for our client, or has expired."""


class IssuerKeys(OidcVerifier):
    def __init__(self, issuer: str, client_id: str, timeout_s: float = 10.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _fetch(self) -> KeySet:
        with httpx.Client(timeout=self.timeout_s) as http:
            discovery = http.get(self.issuer + "/.well-known/openid-configuration")
            discovery.raise_for_status()
            document = discovery.json()
            if str(document.get("issuer", "")).rstrip("/") != self.issuer:
                raise TokenRefused("the discovery document names another issuer")
            jwks = http.get(document["jwks_uri"])
            jwks.raise_for_status()
            return KeySet.import_key_set(jwks.json())

    def _key_set(self, kid: str | None) -> KeySet:
        with self._lock:
            known = self._keys is not None and (kid is None or any(k.kid == kid for k in self._keys.keys))
            stale = time.monotonic() - self._fetched_at > REFETCH_SECONDS
            if self._keys is None or (not known and stale):
                self._keys = self._fetch()
                self._fetched_at = time.monotonic()
            return self._keys

    def verify(self, token: str) -> Mapping[str, Any]:
        try:
            header = jws.extract_compact(token.encode()).headers()
            decoded = jwt.decode(token, self._key_set(header.get("kid")), algorithms=ALGORITHMS)
            claims = jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client_id},
                exp={"essential": True},
                iat={"essential": True},
                email={"essential": True},
            )
            claims.validate(decoded.claims)
        except (JoseError, ValueError, KeyError) as exc:
            raise TokenRefused(f"ID token refused ({type(exc).__name__})") from None
        return decoded.claims
