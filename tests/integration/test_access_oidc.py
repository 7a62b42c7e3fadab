"""OIDC sign-in against a real OpenID provider the test starts (bench/oidc_provider.py, on joserfc): Authlib's
OAuth2 client runs the authorization-code flow with PKCE and a nonce, as Streamlit's st.login does, and the
callscope API verifies the ID token itself (signature against the issuer's JWKS, issuer, audience, expiry) and
maps its e-mail to a callscope user. The browser version (st.login in Chromium) is tests/browser/test_access_browser.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from joserfc.jwk import RSAKey

from bench.oidc_provider import Client, Provider
from core.access import Role
from tests.access_parts import PASSWORD, seed_users, send_calls, server_env
from tests.helpers import ServerProcess

CLIENT = Client("callscope-dashboard", "client-secret-for-tests", ("http://127.0.0.1:9/oauth2callback",))
IDP_USERS = {"olivia@example.com": "olivia-idp-password", "mallory@example.com": "mallory-idp-password"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Provider, ServerProcess]]:
    with Provider(IDP_USERS, [CLIENT]) as provider:
        data = Path(tmp_path_factory.mktemp("oidc")) / "data"
        seed_users(
            data,
            {"olivia@example.com": {"A": Role.viewer}, "pat": {"B": Role.viewer}},
            oidc_only=("olivia@example.com",),
        )
        env = server_env() | {
            "CALLSCOPE_OIDC_ISSUER": provider.issuer,
            "CALLSCOPE_OIDC_CLIENT_ID": CLIENT.client_id,
            "CALLSCOPE_OIDC_CLIENT_SECRET": CLIENT.client_secret,
        }
        server = ServerProcess(data, env=env).start()
        try:
            send_calls(server.http_url, "A", "shop-a", [100.0, 200.0], "gpt-4o-mini")
            send_calls(server.http_url, "B", "bank-b", [300.0], "gpt-4.1")
            yield provider, server
            assert CLIENT.client_secret not in server.log()
        finally:
            assert server.stop() == 0


def code_flow(provider: Provider, email: str, password: str) -> dict:
    """The authorization-code flow with PKCE and a nonce, the user typing into the provider's login form."""
    client = OAuth2Client(
        CLIENT.client_id,
        CLIENT.client_secret,
        scope="openid email profile",
        redirect_uri=CLIENT.redirect_uris[0],
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = client.create_authorization_url(provider.issuer + "/authorize", code_verifier=verifier, nonce=nonce)
    form_page = httpx.get(url, timeout=30)
    assert form_page.status_code == 200 and "login_email" in form_page.text
    fields = dict(parse_qsl(urlsplit(url).query)) | {"login_email": email, "login_password": password}
    back = httpx.post(provider.issuer + "/authorize", data=fields, timeout=30)
    assert back.status_code == 302, back.text
    location = back.headers["location"]
    assert dict(parse_qsl(urlsplit(location).query))["state"] == state
    token = client.fetch_token(provider.issuer + "/token", authorization_response=location, code_verifier=verifier)
    client.close()
    return dict(token) | {"nonce": nonce}


def ask(server: ServerProcess, token: str, path: str, **params) -> httpx.Response:
    return httpx.get(
        server.http_url + "/api/v1" + path, params=params, headers={"authorization": f"Bearer {token}"}, timeout=30
    )


def test_an_id_token_from_the_provider_signs_the_user_in(stack) -> None:
    provider, server = stack
    token = code_flow(provider, "olivia@example.com", IDP_USERS["olivia@example.com"])
    assert token["token_type"].lower() == "bearer"
    me = ask(server, token["id_token"], "/auth/me")
    assert me.status_code == 200, me.text
    assert me.json() == {
        "name": "olivia@example.com",
        "kind": "user",
        "local_mode": False,
        "grants": {"A": "viewer"},
    }
    stats = ask(server, token["id_token"], "/stats", metrics="calls", last="1h").json()
    assert stats["data"][0]["calls"] == 2  # project A's calls only
    assert ask(server, token["access_token"], "/auth/me").status_code == 401  # the access token is not ours
    rule = {"name": "r", "metric": "calls", "window": "1h", "op": ">", "critical": 1, "filters": {"project": "A"}}
    refused = httpx.post(
        server.http_url + "/api/v1/alerts/rules",
        json=rule,
        headers={"authorization": f"Bearer {token['id_token']}"},
        timeout=30,
    )
    assert refused.status_code == 403


def test_id_tokens_the_api_must_refuse(stack) -> None:
    provider, server = stack
    valid = provider.issue_id_token("olivia@example.com", CLIENT.client_id)
    assert ask(server, valid, "/auth/me").status_code == 200
    stranger = code_flow(provider, "mallory@example.com", IDP_USERS["mallory@example.com"])["id_token"]
    other_key = RSAKey.generate_key(2048, parameters={"kid": provider.key.kid})
    refused = {
        "a user of the provider who is no callscope user": stranger,
        "issued to another client": provider.issue_id_token("olivia@example.com", "another-client"),
        "expired": provider.issue_id_token("olivia@example.com", CLIENT.client_id, seconds=-30),
        "another issuer": provider.issue_id_token("olivia@example.com", CLIENT.client_id, issuer="http://evil"),
        "signed by another key under the same kid": provider.issue_id_token(
            "olivia@example.com", CLIENT.client_id, key=other_key
        ),
        "changed after signing": _tampered(valid),
        "an e-mail the provider did not verify": provider.issue_id_token(
            "olivia@example.com", CLIENT.client_id, verified=False
        ),
    }
    for why, token in refused.items():
        assert ask(server, token, "/auth/me").status_code == 401, why
        assert ask(server, token, "/stats").status_code == 401, why


def test_an_oidc_only_user_has_no_password(stack) -> None:
    _, server = stack
    for password in ("", PASSWORD, "olivia-idp-password"):
        answer = httpx.post(
            server.http_url + "/api/v1/auth/login",
            json={"name": "olivia@example.com", "password": password or "x"},
            timeout=30,
        )
        assert answer.status_code == 401


def _tampered(token: str) -> str:
    import base64
    import json

    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "pat"  # a user of project B
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"
