"""Every dashboard action checked by the server, through streamlit's AppTest against a real `callscope serve`
with users of two projects: signing in and out, saving and deleting a rule, silences; the page of one user never
shows another's numbers, although all sessions share one process and its answer cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.access_parts import PASSWORD, PEOPLE, seed_users, send_calls, server_env, sign_in
from tests.dashboard_tables import table
from tests.helpers import ROOT, ServerProcess

APP = ROOT / "dashboard" / "app.py"
ALERTS = "views/alerts.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = Path(tmp_path_factory.mktemp("access-dashboard")) / "data"
    seed_users(data)
    env = {k: v for k, v in server_env().items() if k == "CALLSCOPE_API_KEYS"}
    proc = ServerProcess(data, env=env).start()
    try:
        send_calls(proc.http_url, "A", "shop-a", [100.0, 200.0, 300.0, 400.0, 500.0], "gpt-4o-mini")
        send_calls(proc.http_url, "B", "bank-b", [600.0, 700.0], "gpt-4.1")
        yield proc
    finally:
        assert proc.stop() == 0


@pytest.fixture
def api(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CALLSCOPE_API_URL", server.http_url + "/api/v1")
    monkeypatch.delenv("CALLSCOPE_API_KEY", raising=False)
    return server.http_url + "/api/v1"


def as_user(api: str, who: str, page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state["callscope_token"] = sign_in(api, who)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def root_get(api: str, path: str, **params: Any) -> httpx.Response:
    token = sign_in(api, "root")
    return httpx.get(api + path, params=params, headers={"authorization": f"Bearer {token}"}, timeout=30)


def fill_rule(at: AppTest, **fields: str) -> None:
    for name, value in fields.items():
        widget = at.text_area(key=f"rule_{name}") if name == "filters" else at.text_input(key=f"rule_{name}")
        widget.input(value)


def test_sign_in_with_the_form_and_sign_out(api: str) -> None:
    at = AppTest.from_file(str(APP), default_timeout=90).run()
    assert any("Signed out" in t.value for t in at.title)
    at.text_input(key="signin_name").input("viewer_b")
    at.text_input(key="signin_password").input("wrong password!")
    at.button(key="FormSubmitter:signin-Sign in").click().run()
    assert [e.value for e in at.error] == ["Wrong name or password."]
    at.text_input(key="signin_password").input(PASSWORD)
    at.button(key="FormSubmitter:signin-Sign in").click().run()
    assert not at.exception
    assert any("Signed in as **viewer_b** · viewer on B" in c.value for c in at.sidebar.caption)
    token = at.session_state["callscope_token"]
    at.button(key="sign_out").click().run()
    assert any("Signed out" in t.value for t in at.title)
    assert "callscope_token" not in at.session_state
    me = httpx.get(api + "/auth/me", headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert me.status_code == 401  # signing out ended the session on the server


def test_each_user_sees_only_their_projects_numbers_through_the_shared_cache(api: str) -> None:
    st.cache_data.clear()
    tiles = lambda at: {m.label: m.value for m in at.metric}  # noqa: E731
    assert tiles(as_user(api, "viewer_a"))["Calls"] == "5"
    assert tiles(as_user(api, "viewer_b"))["Calls"] == "2"  # the same question, asked by another user
    assert tiles(as_user(api, "root"))["Calls"] == "7"


def test_saving_and_deleting_a_rule_is_for_editors(api: str) -> None:
    viewer = as_user(api, "viewer_a", ALERTS)
    fill_rule(viewer, name="PageRule", window="1h", critical="1", filters="project=A")
    viewer.button(key="FormSubmitter:rule_form-Save rule").click().run()
    assert [e.value for e in viewer.error] == ["not allowed: this needs the editor role on any project"]
    assert root_get(api, "/alerts/rules/PageRule").status_code == 404

    editor = as_user(api, "editor_a", ALERTS)
    fill_rule(editor, name="PageRule", window="1h", critical="1", filters="project=A")
    editor.button(key="FormSubmitter:rule_form-Save rule").click().run()
    assert not editor.error, [e.value for e in editor.error]
    assert root_get(api, "/alerts/rules/PageRule").json()["spec"]["filters"] == {"project": "A"}
    other = as_user(api, "editor_b", ALERTS)
    fill_rule(other, name="PageRule2", window="1h", critical="1", filters="project=A")
    other.button(key="FormSubmitter:rule_form-Save rule").click().run()
    assert [e.value for e in other.error] == [
        "not allowed: the rule's filters.project must name projects where you are an editor"
    ]

    viewer = as_user(api, "viewer_a", ALERTS)
    viewer.selectbox(key="rule_pick").set_value("PageRule").run()
    viewer.button(key="rule_delete").click().run()
    assert [e.value for e in viewer.error] == ["not allowed: this needs the editor role on any project"]
    editor = as_user(api, "editor_a", ALERTS)
    editor.selectbox(key="rule_pick").set_value("PageRule").run()
    editor.button(key="rule_delete").click().run()
    assert root_get(api, "/alerts/rules/PageRule").status_code == 404
    rows = [r for r in root_get(api, "/audit", kind="rule").json()["entries"] if r["object_id"] == "PageRule"]
    assert sorted((r["action"], r["actor"]) for r in rows) == [("create", "editor_a"), ("delete", "editor_a")]


def test_silences_are_for_who_holds_a_role_on_every_project(api: str) -> None:
    editor = as_user(api, "editor_a", ALERTS)
    assert any("Silences are not shown" in i.value for i in editor.info)
    assert {m.label: m.value for m in editor.metric}["Active silences"] == "—"  # not a count it cannot know
    root = as_user(api, "root", ALERTS)
    root.text_area(key="silence_matchers").input('service="shop-a"')
    root.text_input(key="silence_duration").input("30m")
    root.text_input(key="silence_comment").input("maintenance")
    root.button(key="FormSubmitter:silence_form-Create silence").click().run()
    assert not root.error, [e.value for e in root.error]
    [silence] = root_get(api, "/alerts/silences").json()["silences"]
    rows = [r for r in root_get(api, "/audit", kind="silence").json()["entries"] if r["object_id"] == silence["id"]]
    assert [(r["action"], r["actor"]) for r in rows] == [("create", "root")]


def test_people_of_the_store_sign_in(api: str) -> None:
    for name, grants in PEOPLE.items():
        token = sign_in(api, name)
        me = httpx.get(api + "/auth/me", headers={"authorization": f"Bearer {token}"}, timeout=30).json()
        assert me["grants"] == {p: r.name for p, r in grants.items()}


def test_the_access_page_shows_admins_their_projects_users_and_audit_log(api: str) -> None:
    admin_token = sign_in(api, "admin_a")
    made = httpx.post(
        api + "/access/keys",
        json={"project": "A", "role": "viewer", "note": "page"},
        headers={"authorization": f"Bearer {admin_token}"},
        timeout=30,
    ).json()
    admin = as_user(api, "admin_a", "views/access.py")
    users = {row["name"]: row["roles"] for row in table(admin, "roles").to_dict("records")}
    assert users["admin_a"] == "admin on A" and users["viewer_a"] == "viewer on A"
    assert users["root"] == "admin on every project" and "viewer_b" not in users
    log = table(admin, "after")
    assert set(log["project"]) == {"A"}  # the audit rows of the projects this admin administers
    assert list(log["what"]).count(f"key {made['id']}") == 1 and made["key"] not in log.to_csv()
    for who in ("editor_a", "viewer_b"):  # not admins: the page is not even in their navigation
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            as_user(api, who).switch_page("views/access.py")


def test_a_throttled_sign_in_says_how_long_to_wait(api: str) -> None:
    at = AppTest.from_file(str(APP), default_timeout=90).run()
    at.text_input(key="signin_name").input("mallory")  # nobody's name: the other tests' users are not slowed
    for _ in range(5):
        at.text_input(key="signin_password").input("wrong password!")
        at.button(key="FormSubmitter:signin-Sign in").click().run()
        assert [e.value for e in at.error] == ["Wrong name or password."]
    at.text_input(key="signin_password").input(PASSWORD)
    at.button(key="FormSubmitter:signin-Sign in").click().run()
    [message] = [e.value for e in at.error]
    assert message.startswith("too many failed sign-ins: try again in "), message
