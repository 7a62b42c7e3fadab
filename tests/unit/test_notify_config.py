"""The notification config ([alerts] and [[digests]] in callscope.toml): Alertmanager's meanings, every error
naming its field, matchers as Alertmanager parses and applies them, and SMTP secrets kept out of sight."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from alerts.matchers import Matcher, MatcherError
from alerts.notify_config import ConfigError, parse_duration, parse_notify_config
from callscope.cli import main
from core.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ("severity=critical", {"severity": "warning"}, False),
        ('service=~"chat.*"', {"service": "chat-bot"}, True),
        ('service=~"chat"', {"service": "my-chat"}, False),  # anchored, as Alertmanager
        ('service!~"chat|search"', {"service": "agent"}, True),
        ('team!=""', {}, False),  # a missing label is the empty string
        ('team=""', {}, True),
        ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
    ],
)
def test_matchers(text, labels, expected):
    assert Matcher.parse(text).matches(labels) is expected


def test_matcher_errors_and_the_api_form():
    for bad in ("severity", "1abc=x", 'a=~"("', 'a="x'):
        with pytest.raises(MatcherError):
            Matcher.parse(bad)
    assert str(Matcher.from_api({"name": "a", "value": "b.*", "isRegex": True, "isEqual": False})) == 'a!~"b.*"'
    with pytest.raises(MatcherError, match="value is missing"):
        Matcher.from_api({"name": "a"})


def test_durations():
    assert parse_duration("1h30m", "x") == timedelta(minutes=90)
    assert parse_duration(45, "x") == timedelta(seconds=45)
    with pytest.raises(ConfigError, match="x: expected a duration"):
        parse_duration("5 minutes", "x")


def test_routes_inherit_and_defaults_are_alertmanagers():
    config = parse_notify_config(
        {
            "route": {
                "receiver": "team",
                "group_by": ["alertname"],
                "group_interval": "10m",
                "routes": [{"matchers": ['severity="critical"'], "receiver": "pager", "group_wait": "5s"}],
            },
            "receivers": [{"name": "team"}, {"name": "pager"}],
        }
    )
    root = config.route
    assert (root.timings.group_wait, root.timings.repeat_interval) == (timedelta(seconds=30), timedelta(hours=4))
    [child] = root.routes
    assert child.receiver == "pager" and child.group_by == ("alertname",)
    assert child.timings.group_wait == timedelta(seconds=5) and child.timings.group_interval == timedelta(minutes=10)
    assert child.key == '{}/{severity="critical"}'
    assert [r.receiver for r in root.match({"severity": "critical"})] == ["pager"]
    assert [r.receiver for r in root.match({"severity": "warning"})] == ["team"]
    default = parse_notify_config(None)
    assert list(default.receivers) == ["default"] and default.route.group_by == ()
    assert [str(m) for m in default.inhibit_rules[0].source] == ['severity="critical"']


@pytest.mark.parametrize(
    ("alerts", "error"),
    [
        ({"receivers": [{"name": "a"}], "route": {"receiver": "b"}}, "alerts.route.receiver: no receiver named 'b'"),
        ({"receivers": [{"name": "a", "email_configs": [{"to": []}]}]}, "alerts.receivers[0].email_configs[0].to"),
        (
            {"receivers": [{"name": "a", "webhook_configs": [{"url": "ftp://x"}]}]},
            "alerts.receivers[0].webhook_configs[0].url: expected an http:// or https:// URL",
        ),
        (
            {"receivers": [{"name": "a", "webhook_configs": [{"url": "http://x", "format": "teams"}]}]},
            "alerts.receivers[0].webhook_configs[0].format",
        ),
        ({"receivers": [{"name": "a"}], "route": {"receiver": "a", "group_wait": "soon"}}, "alerts.route.group_wait"),
        (
            {"receivers": [{"name": "a"}], "route": {"receiver": "a", "routes": [{"matchers": ["x~y"]}]}},
            "alerts.route.routes[0].matchers[0]",
        ),
        ({"receivers": [{"name": "a"}], "route": {"receiver": "a", "matchers": ["a=b"]}}, "alerts.route.matchers"),
        ({"receivers": [{"name": "a"}, {"name": "a"}]}, "alerts.receivers[1].name: 'a' is defined twice"),
        ({"inhibit_rules": [{"source_matchers": ["a=b"]}]}, "alerts.inhibit_rules[0].target_matchers"),
        ({"recievers": []}, "alerts: unknown field(s) recievers"),
    ],
)
def test_config_errors_name_the_field(alerts, error):
    with pytest.raises(ConfigError) as exc:
        parse_notify_config(alerts)
    assert str(exc.value).startswith(error)


@pytest.mark.parametrize(
    ("digest", "error"),
    [
        ({"schedule": "0 8 * * *", "to": ["a@b.c"]}, "digests[0].name: missing"),
        ({"name": "d", "schedule": "0 25 * * *", "to": ["a@b.c"]}, "digests[0].schedule: '0 25 * * *'"),
        ({"name": "d", "schedule": "0 8 * * *", "to": ["nobody"]}, "digests[0].to[0]: 'nobody'"),
        ({"name": "d", "schedule": "0 8 * * *", "to": "a@b.c", "period": "month"}, "digests[0].period"),
        ({"name": "d", "schedule": "0 8 * * *", "to": "a@b.c", "tz": "Mars/Base"}, "digests[0].tz"),
        ({"name": "d", "schedule": "0 8 * * *", "to": "a@b.c", "filters": {"servce": "x"}}, "digests[0].filters"),
    ],
)
def test_digest_errors_name_the_field(digest, error):
    with pytest.raises(ConfigError) as exc:
        parse_notify_config({}, [digest])
    assert str(exc.value).startswith(error)


def test_config_file_sections_and_smtp_secrets(tmp_path, capsys, monkeypatch):
    (tmp_path / "callscope.toml").write_text(
        'smtp_host = "mail.example.com"\nsmtp_security = "tls"\nsmtp_port = 465\n'
        '[[alerts.receivers]]\nname = "a"\nemail_configs = [{ to = ["a@example.com"] }]\n'
        '[[digests]]\nname = "daily"\nschedule = "0 8 * * *"\nto = "pm@example.com"\n'
    )
    env = {"CALLSCOPE_DATA_DIR": str(tmp_path), "CALLSCOPE_SMTP_PASSWORD": "hunter2-secret-pw"}
    settings = load_settings(env=env)
    assert settings.smtp_password == "hunter2-secret-pw" and "hunter2" not in repr(settings)
    shown = settings.describe()
    assert shown["smtp_password"] == "<set>" and shown["alert_receivers"] == 1 and shown["digests"] == 1
    config = parse_notify_config(settings.alerts_config, list(settings.digests_config))
    assert list(config.receivers) == ["a"] and list(config.digests) == ["daily"]
    with pytest.raises(SettingsError, match="smtp_security from environment"):
        load_settings(env={**env, "CALLSCOPE_SMTP_SECURITY": "ssl"})
    # `callscope config` masks it; no flag takes it (command lines are visible to every user)
    monkeypatch.setenv("CALLSCOPE_SMTP_PASSWORD", "hunter2-secret-pw")
    assert main(["config", "--data-dir", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["smtp_password"] == "<set>" and printed["smtp_port"] == 465
    with pytest.raises(SystemExit):
        main(["serve", "--smtp-password", "x"])
