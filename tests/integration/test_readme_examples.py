"""The README's client snippets work as written: each is an app in examples/ whose code is exactly the README's
block, run in its own process against a fake provider (tests/fake_llm.py) and a real `callscope serve`; the call
must land with the tokens the provider reported. The packages the README's install lines name are those the dev
extra installs (with the same pins), so nothing is installed at test time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx
import pytest

from tests.fake_llm import FakeLLM
from tests.helpers import ROOT, ServerProcess

pytestmark = pytest.mark.slow

# README heading -> (example app, service the call is recorded under, the convention callscope recognises)
SNIPPETS = {
    "Official OpenAI instrumentation": ("openai_v2_app.py", "readme-openai-v2", "otel_genai"),
    "OpenLLMetry": ("openllmetry_app.py", "my-app", "openllmetry"),  # the service is Traceloop's app_name
    "OpenInference": ("openinference_app.py", "readme-openinference", "openinference"),
}
README = (ROOT / "README.md").read_text()


def readme_snippet(title: str) -> tuple[list[str], str]:
    """(the requirements of its `pip install` line, its python block) under the README's **title** paragraph."""
    match = re.search(rf"\*\*{re.escape(title)}\*\* \(`pip install ([^`]+)`.*?```python\n(.*?)```", README, re.S)
    assert match, f"the README has no snippet {title!r} with an install line"
    return match.group(1).split(), match.group(2)


def example_block(path: Path) -> str:
    text = path.read_text()
    match = re.search(r"# --- README: [^\n]*\n(.*?)# --- end\n", text, re.S)
    assert match, f"{path} has no README block"
    return match.group(1)


@pytest.mark.parametrize("title", SNIPPETS)
def test_the_example_is_the_readme_snippet_and_its_install_line_is_what_is_installed(title: str) -> None:
    requirements, code = readme_snippet(title)
    assert example_block(ROOT / "examples" / SNIPPETS[title][0]) == code
    for requirement in requirements:
        name, _, pinned = requirement.partition("==")
        try:
            installed = version(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} (README, {title}) is not installed: add it to the dev extra")
        if pinned:
            assert installed == pinned, (title, name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    proc = ServerProcess(tmp_path_factory.mktemp("readme") / "data").start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.mark.parametrize("title", SNIPPETS)
def test_the_example_app_records_its_call(title: str, server: ServerProcess) -> None:
    app, service, convention = SNIPPETS[title]
    with FakeLLM() as llm:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_", "OPENAI_"))},
            "OTEL_EXPORTER_OTLP_ENDPOINT": server.http_url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": service,
            "TRACELOOP_BASE_URL": server.http_url,  # wins over the snippet's api_endpoint (port 4318)
            "TRACELOOP_TELEMETRY": "false",
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "sk-test-not-real",
        }
        run = subprocess.run(
            [sys.executable, str(ROOT / "examples" / app)], env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        assert len(llm.requests) == 1
        request = llm.requests[0]
    # what the fake provider reported: prompt = 10 x messages + 7, completion = max_tokens
    expected_in, expected_out = 10 * len(request["messages"]) + 7, request["max_tokens"]
    deadline = time.monotonic() + 30
    while True:
        params = {"last": "1h", "service": service}
        calls = httpx.get(server.http_url + "/api/v1/calls", params=params, timeout=30).json()["data"]
        if calls or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(calls) == 1, (calls, run.stderr)
    call = calls[0]
    assert (call["input_tokens"], call["output_tokens"]) == (expected_in, expected_out)
    assert (call["provider"], call["request_model"], call["status"]) == ("openai", request["model"], "ok")
    assert call["convention"] == convention
    assert call["cost_usd"] and call["cost_usd"] > 0
