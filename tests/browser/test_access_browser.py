"""Signing in to the dashboard in a real browser (Debian's Chromium via Playwright) on a real `callscope up`:
with a password (the built-in user store), and through OIDC (Streamlit's st.login, redirected to a real OpenID
provider the test starts, tests/oidc_provider.py); a viewer's attempt to save an alert rule is refused by the
server and the page says "not allowed"; a password session survives a reload and a new tab; signing out shows the
signed-out page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.oidc_provider import Client, Provider
from bench.stack import EXCEPTION_BOX, UpProcess, launch, wait_rendered
from core.access import Role
from tests.access_parts import PASSWORD, seed_users, send_calls, server_env, sign_in
from tests.browser import require_chromium
from tests.helpers import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
IDP_USERS = {"olivia@example.com": "olivia-idp-password"}

require_chromium()

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Provider]]:
    data = Path(tmp_path_factory.mktemp("access-browser")) / "data"
    up = UpProcess(data)
    client = Client("callscope-dashboard", "browser-test-secret", (f"{up.dashboard_url}/oauth2callback",))
    seed_users(
        data,
        {"victor": {"A": Role.viewer}, "edith": {"A": Role.editor}, "olivia@example.com": {"A": Role.viewer}},
        oidc_only=("olivia@example.com",),
    )
    # No read keys: a dashboard started with one would act as that key for whoever opens it on loopback.
    env = {k: v for k, v in server_env().items() if k == "CALLSCOPE_API_KEYS"} | {
        "CALLSCOPE_OIDC_ISSUER": "",
        "CALLSCOPE_OIDC_CLIENT_ID": client.client_id,
        "CALLSCOPE_OIDC_CLIENT_SECRET": client.client_secret,
    }
    with Provider(IDP_USERS, [client]) as provider, pytest.MonkeyPatch.context() as mp:
        for name, value in (env | {"CALLSCOPE_OIDC_ISSUER": provider.issuer}).items():
            mp.setenv(name, value)
        up.start(timeout=180)
        try:
            send_calls(f"http://127.0.0.1:{up.http_port}", "A", "shop-a", [100.0, 200.0, 300.0], "gpt-4o-mini")
            send_calls(f"http://127.0.0.1:{up.http_port}", "B", "bank-b", [400.0], "gpt-4.1")
            yield up, provider
            assert client.client_secret not in up.log() and PASSWORD not in up.log()
        finally:
            assert up.stop() == 0, up.log()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def fresh_page(browser: Browser) -> Page:
    return browser.new_context(viewport={"width": 1440, "height": 1400}).new_page()


def test_password_sign_in_a_refused_change_and_sign_out(stack, browser: Browser) -> None:
    up, _ = stack
    page = fresh_page(browser)
    page.goto(up.dashboard_url)
    signed_out = page.locator(".st-key-signed_out")
    expect(signed_out).to_contain_text("Signed out", timeout=60_000)
    page.get_by_label("User name").fill("victor")
    page.get_by_role("textbox", name="Password").fill("not the password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_text("Wrong name or password.")).to_be_visible(timeout=30_000)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    who = page.locator(".st-key-who")
    expect(who).to_contain_text("Signed in as victor", timeout=60_000)
    expect(who).to_contain_text("viewer on A")
    wait_rendered(page, timeout_ms=90_000)
    assert page.locator(EXCEPTION_BOX).count() == 0
    page.screenshot(path=str(ARTIFACTS / "access-signed-in.png"))

    page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", name="Alerts")).to_be_visible(timeout=60_000)
    wait_rendered(page, timeout_ms=90_000)
    page.get_by_role("tab", name="Rule editor").click()
    page.get_by_role("textbox", name="Name", exact=True).fill("ViewerRule")
    page.get_by_role("textbox", name="Window", exact=True).fill("1h")
    page.get_by_role("textbox", name="Critical threshold", exact=True).fill("1")
    page.get_by_role("textbox", name="Filters", exact=True).fill("project=A")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_text("not allowed", exact=False).first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "access-not-allowed.png"))
    editor = sign_in(up.api_url, "edith")
    got = httpx.get(f"{up.api_url}/alerts/rules/ViewerRule", headers={"authorization": f"Bearer {editor}"})
    assert got.status_code == 404  # the server refused it: nothing was saved

    page.locator(".st-key-who").get_by_role("button", name="Sign out").click()
    expect(page.locator(".st-key-signed_out")).to_contain_text("You signed out.", timeout=60_000)
    page.context.close()


def test_a_password_session_survives_a_reload_and_a_new_tab_until_signed_out(stack, browser: Browser) -> None:
    up, _ = stack
    page = fresh_page(browser)
    page.goto(up.dashboard_url)
    expect(page.locator(".st-key-signed_out")).to_contain_text("Signed out", timeout=60_000)
    page.get_by_label("User name").fill("edith")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator(".st-key-who")).to_contain_text("Signed in as edith", timeout=60_000)
    page.wait_for_function("document.cookie.includes('callscope_session=')", timeout=30_000)
    cookie = next(c for c in page.context.cookies() if c["name"] == "callscope_session")
    assert cookie["sameSite"] == "Strict" and cookie["expires"] > 0  # leaves with the session, not with the tab

    page.reload()
    expect(page.locator(".st-key-who")).to_contain_text("Signed in as edith", timeout=60_000)
    other = page.context.new_page()  # a new tab: a new Streamlit session, the same browser
    other.goto(f"{up.dashboard_url}/alerts")
    expect(other.locator(".st-key-who")).to_contain_text("Signed in as edith", timeout=60_000)
    wait_rendered(other, timeout_ms=90_000)
    other.close()

    page.locator(".st-key-who").get_by_role("button", name="Sign out").click()
    expect(page.locator(".st-key-signed_out")).to_contain_text("You signed out.", timeout=60_000)
    page.wait_for_function("!document.cookie.includes('callscope_session=')", timeout=30_000)
    page.reload()
    expect(page.locator(".st-key-signed_out")).to_contain_text("Signed out", timeout=60_000)
    page.context.close()


def test_oidc_sign_in_through_the_identity_provider(stack, browser: Browser) -> None:
    up, provider = stack
    page = fresh_page(browser)
    page.goto(up.dashboard_url)
    expect(page.locator(".st-key-signed_out")).to_contain_text("Signed out", timeout=60_000)
    page.get_by_role("button", name="Sign in with your identity provider").click()
    page.wait_for_url(f"{provider.issuer}/authorize**", timeout=60_000)
    page.locator("#login_email").fill("olivia@example.com")
    page.locator("#login_password").fill(IDP_USERS["olivia@example.com"])
    page.locator("#login_submit").click()
    who = page.locator(".st-key-who")
    expect(who).to_contain_text("Signed in as olivia@example.com", timeout=90_000)
    expect(who).to_contain_text("viewer on A")  # what the API said after verifying the ID token itself
    wait_rendered(page, timeout_ms=90_000)
    assert page.locator(EXCEPTION_BOX).count() == 0
    page.screenshot(path=str(ARTIFACTS / "access-oidc.png"))
    page.context.close()
