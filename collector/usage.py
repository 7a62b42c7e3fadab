"""Token counts from a usage object, whichever shape it has, with OTel meaning.

Langfuse's SDKs write `langfuse.observation.usage_details` as whatever usage they were given, JSON-encoded:
- OpenAI Chat Completions (the Langfuse OpenAI integration passes the response's usage through):
  `prompt_tokens`, `completion_tokens`, `total_tokens`, `prompt_tokens_details.{cached_tokens, audio_tokens}`,
  `completion_tokens_details.{reasoning_tokens, audio_tokens, ...}`. The totals INCLUDE the details.
- OpenAI Responses: `input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`,
  `output_tokens_details.reasoning_tokens`. The totals include the details.
- Anthropic's usage object: `input_tokens`, `output_tokens`, `cache_read_input_tokens`,
  `cache_creation_input_tokens`. Here input_tokens EXCLUDES the cache reads and writes.
- Langfuse's own keys (its ingestion flattens the OpenAI shapes into them; its LangChain handler writes them):
  `input`, `output`, `total` and details `input_cached_tokens`, `input_cache_read`, `input_cache_creation`
  (`_5m`, `_1h`), `input_audio_tokens`, `output_reasoning_tokens`, `output_reasoning`, ... where `input` and
  `output` EXCLUDE their details.

Langfuse itself reads a flat usage map as: input = the sum of every key that contains "input", output = the sum of
every key that contains "output". That one rule gives the right total for its own keys and for Anthropic's, so it
is the rule here for every flat map; the OpenAI shapes, whose totals already include their nested details, are
read as they are. The result keeps OTel meaning: cache reads and writes (and audio) inside input, reasoning (and
audio) inside output.
"""

from __future__ import annotations

from typing import Any

from collector.attributes import json_object, to_int

TokenCounts = tuple[int | None, int | None, int | None, int | None, int | None]
"""(input, output, cache_read, cache_write, reasoning); None where the usage does not say."""

_NOTHING: TokenCounts = (None, None, None, None, None)
# Detail keys of the nested OpenAI-style objects, and of the flat maps (matched by their name).
_CACHE_READ_DETAILS = ("cached_tokens", "cache_read")
_CACHE_WRITE_DETAILS = ("cache_creation", "cache_write_tokens")
_REASONING_DETAILS = ("reasoning_tokens", "reasoning")


def usage_tokens(value: Any) -> TokenCounts:
    """Token counts of a usage object (a dict or its JSON text); all None when it is not one."""
    usage = json_object(value)
    if not usage:
        return _NOTHING
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        details = ("prompt_tokens_details", "completion_tokens_details")
        return _nested(usage, "prompt_tokens", "completion_tokens", *details)
    if "input_tokens_details" in usage or "output_tokens_details" in usage:
        return _nested(usage, "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
    if "input_token_details" in usage or "output_token_details" in usage:  # LangChain's usage_metadata
        return _nested(usage, "input_tokens", "output_tokens", "input_token_details", "output_token_details")
    return _flat(usage)


def _nested(usage: dict[str, Any], inp: str, out: str, in_details: str, out_details: str) -> TokenCounts:
    """A usage whose totals include the details nested under them."""
    ins = json_object(usage.get(in_details)) or {}
    outs = json_object(usage.get(out_details)) or {}
    return (
        to_int(usage.get(inp)),
        to_int(usage.get(out)),
        _first_int(ins, _CACHE_READ_DETAILS),
        _first_int(ins, _CACHE_WRITE_DETAILS),
        _first_int(outs, _REASONING_DETAILS),
    )


def _flat(usage: dict[str, Any]) -> TokenCounts:
    """A flat map of counts: totals are the sums of the keys naming input / output (Langfuse's own rule)."""
    inp = out = cache_read = cache_write = reasoning = None
    for key, value in usage.items():
        n = to_int(value)
        if n is None:
            continue
        low = key.lower()
        if "input" in low:
            inp = (inp or 0) + n
            if "cache_read" in low or "cached" in low:
                cache_read = (cache_read or 0) + n
            elif "cache_creation" in low or "cache_write" in low:
                cache_write = (cache_write or 0) + n
        elif "output" in low:
            out = (out or 0) + n
            if "reasoning" in low:
                reasoning = (reasoning or 0) + n
        elif low == "reasoning_tokens":  # a bare reasoning count: a part of the output, as Langfuse counts it
            reasoning = (reasoning or 0) + n
    return inp, out, cache_read, cache_write, reasoning


def _first_int(obj: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        n = to_int(obj.get(key))
        if n is not None:
            return n
    return None
