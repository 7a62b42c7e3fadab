"""Who uses the dashboard, told to the API with every request; the pages for "signed out" and "not allowed".

The dashboard holds no rights of its own: each request to the API carries the signed-in user's credential and the
API decides (analytics/access.py). The credential is, in this order: the ID token of an OIDC sign-in (Streamlit's
`st.login`, which the API verifies itself against the issuer), the session token of a password sign-in
(`POST /auth/login`), or the key the dashboard was started with (local use). A dashboard reachable from the
network (CALLSCOPE_DASHBOARD_EXPOSED, set by the launcher) never uses a started-with key and refuses a server in
local mode: everyone must sign in.

Tokens live in the user's own Streamlit session (st.session_state) or a cookie, never in a URL, and are never
logged. A password session's token is also kept in the browser (the `callscope_session` cookie, SameSite=Strict,
Secure over https, expiring with the session), so a reload or a new tab stays signed in; OIDC sessions live in
Streamlit's own signed cookie. Answers are cached per credential (data.scope), so no user sees another's.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from dashboard.api_client import ENV_KEY, ENV_URL, ApiClient, ApiConfig, ApiError

ENV_OIDC = "CALLSCOPE_OIDC"  # "1" when the launcher configured st.login (secrets [auth])
ENV_EXPOSED = "CALLSCOPE_DASHBOARD_EXPOSED"  # "1" when the dashboard listens on a non-loopback address
TOKEN = "callscope_token"
WHO = "callscope_who"
ENDED = "callscope_signed_out"
RECHECK_S = 30.0  # how often a session's credential is asked about again (expiry shows within this)
COOKIE = "callscope_session"  # a password session's token in this browser
_COOKIE_CHANGE = "_callscope_cookie_change"  # (value, max-age) to send to the browser with this run
_DROPPED = "_callscope_dropped_cookie"  # a cookie token this session signed out of or saw refused


def _url() -> str:
    return os.environ.get(ENV_URL) or "http://127.0.0.1:4318/api/v1"


def oidc_enabled() -> bool:
    return os.environ.get(ENV_OIDC) == "1"


def exposed() -> bool:
    return os.environ.get(ENV_EXPOSED) == "1"


def _oidc_token() -> str | None:
    if not oidc_enabled():
        return None
    try:
        if st.user.is_logged_in:
            return st.user.tokens.get("id")
    except Exception:  # no auth configured in this Streamlit: no OIDC session
        return None
    return None


def current_token() -> str | None:
    """The credential this session's requests carry."""
    oidc = _oidc_token()
    if oidc:
        return oidc
    token = st.session_state.get(TOKEN)
    if token:
        return token
    token = _cookie_token()
    if token:  # signed in with a password in this browser before (another tab, or before a reload)
        st.session_state[TOKEN] = token
        return token
    return None if exposed() else (os.environ.get(ENV_KEY) or None)


def _cookie_token() -> str | None:
    """The password session this browser sent (the cookies of the session's start), unless it ended here."""
    try:
        token = st.context.cookies.get(COOKIE)
    except Exception:  # no browser (tests without one)
        return None
    if not isinstance(token, str) or not token:  # (AppTest's stand-in context answers other things)
        return None
    return token if token != st.session_state.get(_DROPPED) else None


def _remember(token: str, expires_at: str) -> None:
    seconds = int((datetime.fromisoformat(expires_at) - datetime.now(UTC)).total_seconds())
    st.session_state[_COOKIE_CHANGE] = (token, max(seconds, 0))


def _forget(token: str) -> None:
    st.session_state[_DROPPED] = token
    st.session_state[_COOKIE_CHANGE] = ("", 0)


def _send_cookie_change() -> None:
    """Set or clear the session cookie in the browser (Streamlit cannot set cookies itself: a script does it)."""
    change = st.session_state.pop(_COOKIE_CHANGE, None)
    if change is None:
        return
    value, max_age = change
    cookie = json.dumps(f"{COOKIE}={value}; Path=/; Max-Age={max_age}; SameSite=Strict")
    st.html(
        f"<script>document.cookie = {cookie} + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


def _ask_me(token: str | None) -> dict[str, Any] | None:
    """GET /auth/me with this credential: who it is, or None when the API refuses it (401)."""
    client = ApiClient(ApiConfig(_url(), token, timeout_s=15))
    try:
        return client.me()
    except ApiError as exc:
        if exc.kind == "unauthorized":
            return None
        raise
    finally:
        client.close()


def gate() -> bool:
    """Before a page runs: True when someone may see it; otherwise the sign-in or not-allowed page is drawn."""
    _send_cookie_change()
    token = current_token()
    cached = st.session_state.get(WHO)
    if cached and cached[0] == token and time.monotonic() - cached[1] < RECHECK_S:
        who = cached[2]
    else:
        who = _ask_me(token)
        st.session_state[WHO] = (token, time.monotonic(), who)
    if who is None:
        if token and (token == st.session_state.get(TOKEN) or token == _oidc_token()):
            st.session_state.pop(TOKEN, None)
            st.session_state[ENDED] = "Your session has ended. Sign in again."
            _forget(token)
            _send_cookie_change()
        elif token:
            st.error(
                "**The read key was refused.** The callscope server does not know the key this dashboard was "
                "started with (CALLSCOPE_API_KEY): set it to one of the server's read keys, or sign in."
            )
        signed_out_page()
        return False
    if who.get("local_mode") and exposed():
        not_allowed_page(
            "This dashboard is reachable from the network, but the callscope server has no users or keys. "
            "Add users (`callscope users add`) or configure OIDC sign-in."
        )
        return False
    _who_box(who)
    return True


def signed_out_page() -> None:
    with st.container(key="signed_out"):
        st.title("Signed out")
        ended = st.session_state.pop(ENDED, None)
        if ended:
            st.warning(ended)
        st.write("Sign in to see the calls of your projects.")
        if oidc_enabled() and st.button("Sign in with your identity provider", key="oidc_login", type="primary"):
            if st.user.is_logged_in:  # its ID token expired: start over with the provider
                st.logout()
            st.login()
        with st.form("signin", border=True):
            name = st.text_input("User name", key="signin_name")
            password = st.text_input("Password", type="password", key="signin_password")
            if st.form_submit_button("Sign in", type="primary"):
                _password_sign_in(name, password)


def _password_sign_in(name: str, password: str) -> None:
    client = ApiClient(ApiConfig(_url(), None, timeout_s=15))
    try:
        answer = client.login(name, password)
    except ApiError as exc:
        st.error("Wrong name or password." if exc.kind == "unauthorized" else str(exc))
        return
    finally:
        client.close()
    st.session_state[TOKEN] = answer["token"]
    st.session_state.pop(WHO, None)
    _remember(answer["token"], answer["expires_at"])
    st.rerun()


def not_allowed_page(reason: str) -> None:
    with st.container(key="not_allowed"):
        st.title("Not allowed")
        st.error(reason)


def _who_box(who: dict[str, Any]) -> None:
    if who.get("kind") in ("local", "key") and not st.session_state.get(TOKEN):
        return  # local use: nobody signed in, nothing to sign out of
    grants = ", ".join(f"{role} on {'every project' if p == '*' else p}" for p, role in who["grants"].items())
    with st.sidebar.container(key="who"):
        st.caption(f"Signed in as **{who['name']}** · {grants or 'no roles'}")
        if st.button("Sign out", key="sign_out"):
            sign_out()


def sign_out() -> None:
    token = st.session_state.pop(TOKEN, None)
    st.session_state.pop(WHO, None)
    if token:
        _forget(token)
        client = ApiClient(ApiConfig(_url(), token, timeout_s=15))
        try:
            client.logout()
        except ApiError:
            pass  # already expired: signed out all the same
        finally:
            client.close()
    st.session_state[ENDED] = "You signed out."
    if _oidc_token():
        st.logout()
    st.rerun()


def signed_in_session() -> bool:
    """Whether a person signed in here (rather than the dashboard acting with the key it was started with)."""
    return bool(st.session_state.get(TOKEN) or _oidc_token())


def everywhere() -> bool:
    """Whether the principal holds a role on every project (what silences, deliveries and digests need)."""
    return "*" in roles()


def roles() -> dict[str, str]:
    """The signed-in principal's roles per project ('*': every project), for pages that explain a refusal."""
    cached = st.session_state.get(WHO)
    return dict(cached[2]["grants"]) if cached and cached[2] else {}
