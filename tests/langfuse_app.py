"""A user's app instrumented as Langfuse documents it: the real Langfuse SDK and its OpenAI integration
(`from langfuse.openai import openai`), exporting its spans over OTLP/HTTP to callscope instead of Langfuse.

Run as its own process (the integration patches the openai module for the whole process):
`python -m tests.langfuse_app OTLP_TRACES_URL`. It calls a local fake OpenAI (tests/fake_llm.py) and prints, as one
JSON line per call, the model and the usage object OpenAI answered with.
"""

from __future__ import annotations

import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from tests.fake_llm import FakeLLM

# (model, messages, max_tokens, cached prompt tokens, reasoning tokens, stream)
CALLS = (
    ("gpt-4o", 3, 12, 24, 0, False),  # the example: 37 prompt tokens, 24 of them cached
    ("gpt-4o-mini", 5, 40, 32, 0, True),
    ("o3-mini", 2, 300, 16, 256, False),
    ("o4-mini", 4, 120, 0, 96, True),
    ("gpt-4.1", 1, 20, 0, 0, False),  # no details at all
)


def main(traces_url: str) -> None:
    from langfuse import Langfuse

    langfuse = Langfuse(
        public_key="pk-lf-local",
        secret_key="sk-lf-local",
        base_url="http://127.0.0.1:9",  # never used: spans go to the exporter below, nothing else is asked for
        span_exporter=OTLPSpanExporter(endpoint=traces_url),
    )
    from langfuse.openai import openai  # the integration wraps the openai client once the client exists

    with FakeLLM(first_chunk_ms=30) as llm:
        client = openai.OpenAI(base_url=llm.base_url, api_key="sk-test-not-real", max_retries=0)
        for model, n_messages, max_tokens, cached, reasoning, stream in CALLS:
            messages = [{"role": "user", "content": f"question {i}"} for i in range(n_messages - 1)]
            details = f" [cached={cached}] [reasoning={reasoning}]" if cached or reasoning else ""
            messages.append({"role": "user", "content": f"last question{details}"})
            if stream:
                chunks = client.chat.completions.create(
                    model=model,
                    messages=messages,
                    max_tokens=max_tokens,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                usage = [c.usage for c in chunks if c.usage is not None][-1]
            else:
                usage = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens).usage
            print(json.dumps({"model": model, "stream": stream, "usage": usage.model_dump()}), flush=True)
    langfuse.flush()
    langfuse.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
