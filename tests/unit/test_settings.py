"""Settings: precedence, validation, and docs that cannot drift (every setting is in the README)."""

from __future__ import annotations

import re

import pytest

from callscope.cli import main
from core.settings import SETTINGS, SettingsError, load_settings
from tests.helpers import ROOT


def test_precedence_flag_env_file_default(tmp_path):
    (tmp_path / "callscope.toml").write_text('otlp_http_port = 5000\notlp_grpc_port = 5001\nhost = "127.0.0.2"\n')
    env = {"CALLSCOPE_DATA_DIR": str(tmp_path), "CALLSCOPE_OTLP_GRPC_PORT": "6001", "CALLSCOPE_HOST": "127.0.0.3"}
    s = load_settings({"host": "127.0.0.4"}, env=env)
    assert s.host == "127.0.0.4"  # flag
    assert s.otlp_grpc_port == 6001  # environment over file
    assert s.otlp_http_port == 5000  # file over default
    assert s.max_body_bytes == 20 * 1024 * 1024  # default
    assert s.config_file == tmp_path / "callscope.toml"


def test_invalid_values_name_the_setting_and_source(tmp_path):
    with pytest.raises(SettingsError, match=r"otlp_http_port from environment CALLSCOPE_OTLP_HTTP_PORT"):
        load_settings(env={"CALLSCOPE_DATA_DIR": str(tmp_path), "CALLSCOPE_OTLP_HTTP_PORT": "99999"})
    (tmp_path / "callscope.toml").write_text("no_such_setting = 1\n")
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(env={"CALLSCOPE_DATA_DIR": str(tmp_path)})


def test_api_keys_are_masked_and_parsed(tmp_path):
    s = load_settings(
        env={"CALLSCOPE_DATA_DIR": str(tmp_path), "CALLSCOPE_API_KEYS": "secret-key-1=team-a,secret-key-2"}
    )
    assert dict(s.api_keys) == {"secret-key-1": "team-a", "secret-key-2": "default"}
    assert "secret-key" not in str(s.describe())
    with pytest.raises(SettingsError) as exc:
        load_settings(env={"CALLSCOPE_DATA_DIR": str(tmp_path), "CALLSCOPE_API_KEYS": "short"})
    assert "short" not in str(exc.value)  # secrets never echoed


def test_price_overrides_from_config_file(tmp_path):
    (tmp_path / "callscope.toml").write_text(
        '[[prices]]\nprovider = "openai"\nmodel = "My-Finetune"\ninput_mtok = 3\noutput_mtok = 12\n'
    )
    s = load_settings(env={"CALLSCOPE_DATA_DIR": str(tmp_path)})
    assert s.price_overrides[0].model == "my-finetune" and s.price_overrides[0].output_mtok == 12.0


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for s in SETTINGS:
        row = re.search(rf"^\| {s.name} \|.*$", readme, re.MULTILINE)
        assert row, f"setting {s.name} missing from the README settings table"
        assert s.env in row.group(0)
        if not s.secret:  # secrets have no flag: command lines are visible to other users
            assert s.flag in row.group(0)


def test_every_export_column_is_documented():
    from analytics.export import EXPORT_COLUMNS

    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Export columns", 1)[1].split("##", 1)[0]
    for name, _ in EXPORT_COLUMNS:
        assert re.search(rf"\b{name}\b", table), name


def test_refuses_open_bind_without_keys(tmp_path, capsys):
    code = main(["serve", "--data-dir", str(tmp_path), "--host", "0.0.0.0"])
    assert code == 2
    assert "API keys" in capsys.readouterr().err


def test_a_bad_drift_setting_stops_serve_with_its_reason(tmp_path, capsys):
    code = main(["serve", "--data-dir", str(tmp_path), "--ingest-workers", "0", "--drift-tests", "latency=anderson"])
    assert code == 2
    err = capsys.readouterr().err
    assert "drift_tests: latency: unknown test 'anderson'" in err


def test_drift_pairs_parse_from_text_and_tables(tmp_path):
    s = load_settings({"drift_baselines": "support-bot=2.14.0, search = v3"}, env={"CALLSCOPE_DATA_DIR": str(tmp_path)})
    assert s.drift_baselines == {"support-bot": "2.14.0", "search": "v3"}
    (tmp_path / "callscope.toml").write_text('[drift_tests]\nlatency = "psi:0.2"\n')
    assert load_settings(env={"CALLSCOPE_DATA_DIR": str(tmp_path)}).drift_tests == {"latency": "psi:0.2"}
    with pytest.raises(SettingsError, match="drift_baselines"):
        load_settings({"drift_baselines": "support-bot"}, env={"CALLSCOPE_DATA_DIR": str(tmp_path)})


def test_a_renamed_setting_still_answers_to_its_former_name(tmp_path):
    env = {"CALLSCOPE_DATA_DIR": str(tmp_path), "CALLSCOPE_QUEUE_MAX_SPANS": "1234"}
    assert load_settings(env=env).queue_max_rows == 1234
    assert load_settings({"queue_max_rows": "99"}, env=env).queue_max_rows == 99  # the flag wins
    (tmp_path / "callscope.toml").write_text("batch_max_spans = 777\n")
    assert load_settings(env={"CALLSCOPE_DATA_DIR": str(tmp_path)}).batch_max_rows == 777


def test_settings_fields_are_the_settings_table():
    from dataclasses import fields

    from core.settings import Settings

    names = [f.name for f in fields(Settings)]
    assert names[: len(SETTINGS)] == [s.name for s in SETTINGS]
    assert names[len(SETTINGS) :] == [
        "budgets_config",
        "alerts_config",
        "digests_config",
        "price_overrides",
        "config_file",
    ]


@pytest.mark.parametrize(
    ("toml", "reason"),
    [
        ('[[budgets]]\nname = "z"\namount_usd = 0\n', "config file [[budgets]]: amount_usd must be more than 0"),
        (
            '[[prices]]\nprovider = "openai"\nmodel = "m"\ninput_mtok = -1\noutput_mtok = 1\n',
            "[[prices]] entry 1 is invalid: input_mtok: -1 must be a price of 0 or more",
        ),
        (
            '[[prices]]\nprovider = "openai"\nmodel = "m"\ninput_mtok = 1\noutput_mtok = 1\n'
            '[[prices]]\nprovider = "openai"\nmodel = "m"\ninput_mtok = 2\noutput_mtok = 2\n'
            'valid_from = "2026-01-01"\n',
            "[[prices]] entry 2 is invalid: overlaps",
        ),
    ],
)
def test_a_bad_budget_or_price_in_the_config_file_stops_serve_with_its_reason(tmp_path, capsys, toml, reason):
    (tmp_path / "callscope.toml").write_text(toml)
    code = main(["serve", "--data-dir", str(tmp_path), "--ingest-workers", "0"])
    assert code == 2
    assert reason in capsys.readouterr().err


def test_a_bad_retention_setting_stops_serve_with_its_reason(tmp_path, capsys):
    args = ["serve", "--data-dir", str(tmp_path), "--ingest-workers", "0"]
    assert main([*args, "--retention", "calls=30,rollups_hourly=10"]) == 2
    assert "rollups_hourly (10 days) must be kept at least as long as calls (30 days)" in capsys.readouterr().err
    assert main([*args, "--retention", "calls=ten"]) == 2
    assert "calls='ten': expected a number of days" in capsys.readouterr().err
    assert main([*args, "--retention-projects", "demo:raw=3"]) == 2
    assert "unknown kind of data 'raw'" in capsys.readouterr().err


def test_retention_policies_parse_from_text_and_tables(tmp_path):
    env = {"CALLSCOPE_DATA_DIR": str(tmp_path)}
    s = load_settings({"retention": "calls=30d, content=forever", "retention_projects": "demo:calls=3;b:spans=1"}, env)
    assert s.retention == {"calls": "30", "content": "forever"}
    assert s.retention_projects == {"demo": {"calls": "3"}, "b": {"spans": "1"}}
    (tmp_path / "callscope.toml").write_text("[retention]\ncalls = 7\n[retention_projects.demo]\ncontent = 1\n")
    s = load_settings(env=env)
    assert s.retention == {"calls": "7"} and s.retention_projects == {"demo": {"content": "1"}}
