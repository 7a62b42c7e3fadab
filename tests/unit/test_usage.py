"""Token counts from a usage object in each shape Langfuse's SDKs write, with OTel meaning (cached inside input,
reasoning inside output). Expected values are worked out by hand from each provider's documented meaning."""

from __future__ import annotations

import json

import pytest

from collector.usage import usage_tokens

CASES = [
    pytest.param(  # OpenAI Chat Completions: totals include the details
        {
            "prompt_tokens": 37,
            "completion_tokens": 12,
            "total_tokens": 49,
            "prompt_tokens_details": {"cached_tokens": 24, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 5, "audio_tokens": 0, "accepted_prediction_tokens": 0},
        },
        (37, 12, 24, None, 5),
        id="openai-chat",
    ),
    pytest.param(  # the Langfuse OpenAI integration drops None details; an embedding has only prompt tokens
        {"prompt_tokens": 8, "total_tokens": 8},
        (8, None, None, None, None),
        id="openai-embedding",
    ),
    pytest.param(  # OpenAI Responses (and its cache writes, in newer API versions)
        {
            "input_tokens": 900,
            "input_tokens_details": {"cached_tokens": 512, "cache_write_tokens": 128},
            "output_tokens": 1200,
            "output_tokens_details": {"reasoning_tokens": 1024},
            "total_tokens": 2100,
        },
        (900, 1200, 512, 128, 1024),
        id="openai-responses",
    ),
    pytest.param(  # LangChain's usage_metadata: input_tokens includes the cache reads and writes
        {
            "input_tokens": 350,
            "output_tokens": 240,
            "total_tokens": 590,
            "input_token_details": {"cache_read": 100, "cache_creation": 200, "audio": 0},
            "output_token_details": {"reasoning": 200},
        },
        (350, 240, 100, 200, 200),
        id="langchain-usage-metadata",
    ),
    pytest.param(  # Anthropic: input_tokens counts only the uncached tokens
        {
            "input_tokens": 42,
            "cache_read_input_tokens": 1800,
            "cache_creation_input_tokens": 600,
            "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 310,
            "server_tool_use": None,
            "service_tier": "standard",
        },
        (42 + 1800 + 600, 310, 1800, 600, None),
        id="anthropic",
    ),
    pytest.param({"input_tokens": 10, "output_tokens": 4}, (10, 4, None, None, None), id="anthropic-no-cache"),
    pytest.param(  # Langfuse's own keys, as its ingestion flattens OpenAI's: input/output exclude their details
        {"input": 13, "input_cached_tokens": 24, "input_audio_tokens": 0, "output": 7, "output_reasoning_tokens": 5},
        (37, 12, 24, None, 5),
        id="langfuse-flattened-openai",
    ),
    pytest.param(  # Langfuse's LangChain handler; cache writes split by TTL as Langfuse's ingestion does
        {
            "input": 2,
            "input_cache_read": 47105,
            "input_cache_creation": 0,
            "input_cache_creation_5m": 0,
            "input_cache_creation_1h": 1076,
            "output": 700,
            "output_reasoning": 14,
            "total": 48897,
        },
        (2 + 47105 + 1076, 714, 47105, 1076, 14),
        id="langfuse-langchain-keys",
    ),
    pytest.param(  # what callscope's own earlier fixture wrote: Anthropic's cache key among Langfuse's keys
        {"input": 70, "output": 20, "cache_read_input_tokens": 30, "output_reasoning_tokens": 5},
        (100, 25, 30, None, 5),
        id="langfuse-mixed",
    ),
]


@pytest.mark.parametrize(("usage", "expected"), CASES)
def test_usage_shapes(usage: dict, expected: tuple) -> None:
    assert usage_tokens(usage) == expected
    assert usage_tokens(json.dumps(usage)) == expected  # as the attribute carries it: JSON text


@pytest.mark.parametrize(
    "value",
    [None, "", "not json", "[1, 2]", '"a string"', 42, {}, {"input": "many", "output": -3, "total": True}],
)
def test_what_is_not_a_usage_gives_no_counts(value: object) -> None:
    assert usage_tokens(value) == (None, None, None, None, None)


def test_counts_given_as_text_or_floats_are_read() -> None:
    assert usage_tokens({"prompt_tokens": "37", "completion_tokens": 12.0}) == (37, 12, None, None, None)
