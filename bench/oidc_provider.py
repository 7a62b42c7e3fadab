"""A small, real OpenID Connect provider for the tests, built on joserfc (RS256 keys and JWTs) and Starlette, served
over HTTP on a free loopback port: discovery, an authorization endpoint with a login form (authorization code
flow, PKCE S256, nonce, state), the token endpoint (client_secret_basic or _post), the JWKS and userinfo.

Nothing in it knows callscope: Streamlit's `st.login` (through Authlib) and the API's ID-token check talk to it as
they would to Keycloak or Google. `issue_id_token` also signs tokens directly, for negative tests (another
audience, an expired token, a foreign key).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bench.stack import free_port


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    email: str
    nonce: str | None
    challenge: str | None
    used: bool = False
    at: float = field(default_factory=time.time)


class Provider:
    def __init__(self, users: dict[str, str], clients: list[Client], port: int | None = None) -> None:
        self.port = port or free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.users = users  # email -> password
        self.clients = {c.client_id: c for c in clients}
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "use": "sig", "alg": "RS256"})
        self.grants: dict[str, Grant] = {}
        self.access: dict[str, str] = {}  # access token -> email
        self.id_token_seconds = 3600
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- tokens ------------------------------------------------------------------------------------------------

    def issue_id_token(
        self,
        email: str,
        audience: str,
        *,
        nonce: str | None = None,
        seconds: int | None = None,
        issuer: str | None = None,
        key: RSAKey | None = None,
        verified: bool = True,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": hashlib.sha256(email.encode()).hexdigest()[:16],
            "aud": audience,
            "iat": now,
            "exp": now + (self.id_token_seconds if seconds is None else seconds),
            "email": email,
            "email_verified": verified,
            "name": email.split("@")[0],
        }
        if nonce is not None:
            claims["nonce"] = nonce
        signer = key or self.key
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, claims, signer)

    # -- endpoints ---------------------------------------------------------------------------------------------

    async def discovery(self, _: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "userinfo_endpoint": self.issuer + "/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "email", "email_verified", "name"],
            }
        )

    async def jwks(self, _: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    def _check_request(self, q: dict[str, str]) -> Client | Response:
        client = self.clients.get(q.get("client_id", ""))
        if client is None or q.get("redirect_uri") not in client.redirect_uris:
            return HTMLResponse("unknown client or redirect_uri", status_code=400)
        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            return HTMLResponse("response_type must be code and scope must include openid", status_code=400)
        return client

    async def authorize(self, request: Request) -> Response:
        q = dict(request.query_params) if request.method == "GET" else dict(await request.form())
        checked = self._check_request(q)
        if isinstance(checked, Response):
            return checked
        if request.method == "GET":
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in q.items()
            )
            return HTMLResponse(
                "<html><body><h1>Test identity provider</h1><form method='post' action='/authorize'>"
                f"{hidden}<label>E-mail <input name='login_email' id='login_email'></label>"
                "<label>Password <input type='password' name='login_password' id='login_password'></label>"
                "<button type='submit' id='login_submit'>Sign in</button></form></body></html>"
            )
        email = q.pop("login_email", "")
        if self.users.get(email) != q.pop("login_password", None):
            return HTMLResponse("wrong e-mail or password", status_code=401)
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(q["client_id"], q["redirect_uri"], email, q.get("nonce"), q.get("code_challenge"))
        back = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        return RedirectResponse(q["redirect_uri"] + "?" + urlencode(back), status_code=302)

    def _client_auth(self, request: Request, form: dict[str, str]) -> Client | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            raw = base64.b64decode(header[6:]).decode()
            client_id, _, secret = raw.partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, secret):
            return None
        return client

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        client = self._client_auth(request, form)
        if client is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.grants.get(form.get("code", ""))
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant.used
            or grant.client_id != client.client_id
            or grant.redirect_uri != form.get("redirect_uri")
            or time.time() - grant.at > 60
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if digest != grant.challenge:
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        grant.used = True
        access = secrets.token_urlsafe(24)
        self.access[access] = grant.email
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": "openid email profile",
                "id_token": self.issue_id_token(grant.email, client.client_id, nonce=grant.nonce),
            }
        )

    async def userinfo(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        email = self.access.get(token)
        if email is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        sub = hashlib.sha256(email.encode()).hexdigest()[:16]
        return JSONResponse({"sub": sub, "email": email, "email_verified": True, "name": email.split("@")[0]})

    # -- running -----------------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize, methods=["GET", "POST"]),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
            ]
        )

    def start(self) -> Provider:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="oidc-provider", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test OpenID provider did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Provider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
