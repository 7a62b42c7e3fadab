"""The GenAI attribute conventions as data. A new convention is an entry here, not a new code path.

Sources are tried in order; the first attribute present wins. Units are converted where a source is not in
the record's unit (ms for times). Facts from the public specs and sources of OTel GenAI 1.26-1.41,
OpenInference, OpenLLMetry old and new, OpenLIT, Langfuse, Vercel AI SDK legacy and new, Logfire, litellm).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Convention:
    """How to recognise spans of one instrumentation library and what is special about its meaning."""

    name: str
    markers: tuple[str, ...] = ()  # attribute keys whose presence identifies the convention
    marker_prefixes: tuple[str, ...] = ()  # attribute key prefixes that identify it
    scope_prefixes: tuple[str, ...] = ()  # instrumentation scope name prefixes
    scope_names: tuple[str, ...] = ()  # exact instrumentation scope names (too short to be prefixes)
    sdk_names: tuple[str, ...] = ()  # resource telemetry.sdk.name values


# Detection order matters: the most specific markers first.
CONVENTIONS: tuple[Convention, ...] = (
    Convention("logfire", markers=("logfire.span_type", "logfire.msg_template"), scope_prefixes=("logfire",)),
    Convention("langfuse", marker_prefixes=("langfuse.",), scope_prefixes=("langfuse",)),
    # Vercel AI SDK: tracer "ai" (legacy ai.* spans) or "gen_ai" (the GenAI OpenTelemetry integration). Exact
    # names: a prefix "ai" would also claim "aiohttp", "aiokafka" ...
    Convention("vercel_ai", markers=("ai.operationId", "ai.model.id"), scope_names=("ai", "gen_ai")),
    Convention("openinference", markers=("openinference.span.kind",), scope_prefixes=("openinference.",)),
    Convention("litellm", scope_prefixes=("litellm",), markers=("litellm.call_id",)),
    Convention("openlit", sdk_names=("openlit",), scope_prefixes=("openlit",)),
    Convention(
        "openllmetry",
        markers=(
            "llm.request.type",
            "llm.is_streaming",
            "gen_ai.is_streaming",
            "llm.usage.total_tokens",
            "gen_ai.openai.api_base",
            "traceloop.span.kind",
            "traceloop.entity.name",
            "gen_ai.usage.total_tokens",
        ),
        marker_prefixes=("traceloop.",),
    ),
    Convention("otel_genai_deprecated", markers=("gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens")),
    Convention("otel_genai"),  # the fallback for anything speaking gen_ai.*
)

# Spans that are model calls have one of these operations (after normalisation).
CALL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "rerank"})
# Aggregates and non-model work: never a model call even when they carry a model and token totals.
NON_CALL_OPERATIONS = frozenset(
    {
        "invoke_agent",
        "create_agent",
        "execute_tool",
        "invoke_workflow",
        "agent_step",  # Vercel AI SDK GenAI integration: one step of an agent loop (wraps a chat call)
        "retrieval",
        "workflow",
        "task",
        "agent",
        "tool",
    }
)

# Raw operation values of every convention -> the OTel operation name.
OPERATION_ALIASES: dict[str, str] = {
    "chat": "chat",
    "completion": "text_completion",
    "text_completion": "text_completion",
    "generate_content": "generate_content",
    "embedding": "embeddings",
    "embeddings": "embeddings",
    "rerank": "rerank",
    # litellm call types (llm.request.type before it also set gen_ai.operation.name)
    "acompletion": "chat",
    "atext_completion": "text_completion",
    "aembedding": "embeddings",
    "arerank": "rerank",
    # OpenInference span kinds
    "llm": "chat",
    "embedding_kind": "embeddings",
    # Langfuse observation types
    "generation": "chat",
}
OPENINFERENCE_KINDS: dict[str, str | None] = {
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "RERANKER": "rerank",
    "CHAIN": "workflow",
    "AGENT": "invoke_agent",
    "TOOL": "execute_tool",
    "RETRIEVER": "retrieval",
    "GUARDRAIL": "task",
    "EVALUATOR": "task",
    "PROMPT": "task",
    "UNKNOWN": None,
}
LANGFUSE_TYPES: dict[str, str | None] = {
    "generation": "chat",
    "embedding": "embeddings",
    "span": "task",
    "event": "task",
    "agent": "invoke_agent",
    "tool": "execute_tool",
    "chain": "workflow",
    "retriever": "retrieval",
    "evaluator": "task",
    "guardrail": "task",
}
# Vercel AI SDK legacy operation ids: the do* children are the calls; the roots carry totals (aggregates).
VERCEL_OPERATIONS: dict[str, str] = {
    "ai.generateText.doGenerate": "chat",
    "ai.streamText.doStream": "chat",
    "ai.generateObject.doGenerate": "chat",
    "ai.streamObject.doStream": "chat",
    "ai.embed.doEmbed": "embeddings",
    "ai.embedMany.doEmbed": "embeddings",
    "ai.generateText": "invoke_workflow",
    "ai.streamText": "invoke_workflow",
    "ai.generateObject": "invoke_workflow",
    "ai.streamObject": "invoke_workflow",
    "ai.embed": "invoke_workflow",
    "ai.embedMany": "invoke_workflow",
    "ai.toolCall": "execute_tool",
}


@dataclass(frozen=True)
class Source:
    """One attribute that may carry a field. `scale` converts to the record's unit (e.g. s -> ms)."""

    key: str
    scale: float = 1.0
    json_key: str | None = None  # the value is a JSON object: take this key of it (dots walk nested objects)


def _s(*keys: str, scale: float = 1.0) -> tuple[Source, ...]:
    return tuple(Source(k, scale) for k in keys)


# field -> sources in precedence order
FIELDS: dict[str, tuple[Source, ...]] = {
    "provider": _s("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider"),
    "operation": _s("gen_ai.operation.name", "llm.request.type"),
    "request_model": (
        *_s(
            "gen_ai.request.model",
            "llm.request.model_name",
            "llm.request.model",
            "ai.model.id",
            "langfuse.observation.model.name",
        ),
        # OpenInference: the requested model is in the invocation parameters; llm.model_name is the answer's
        Source("llm.invocation_parameters", json_key="model"),
        Source("llm.model_name"),
        Source("request_data", json_key="model"),  # Logfire: the request body (older versions carry nothing else)
    ),
    "response_model": _s("gen_ai.response.model", "llm.response.model_name", "llm.response.model", "ai.response.model"),
    "input_tokens": (
        *_s(
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
            "ai.usage.inputTokens",
            "ai.usage.promptTokens",
            "llm.usage.prompt_tokens",
        ),
        # Logfire: an OpenAI chat stream's usage is only in the log's response_data (OpenAI meaning: cached inside)
        Source("response_data", json_key="usage.prompt_tokens"),
    ),
    "output_tokens": (
        *_s(
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
            "ai.usage.outputTokens",
            "ai.usage.completionTokens",
            "llm.usage.completion_tokens",
        ),
        Source("response_data", json_key="usage.completion_tokens"),
    ),
    "cache_read_tokens": (
        *_s(
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "llm.token_count.prompt_details.cache_read",
            "ai.usage.cachedInputTokens",
            "llm.usage.cache_read_input_tokens",
        ),
        Source("response_data", json_key="usage.prompt_tokens_details.cached_tokens"),
    ),
    "cache_write_tokens": (
        *_s(
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "llm.token_count.prompt_details.cache_write",
            "llm.usage.cache_creation_input_tokens",
        ),
    ),
    "reasoning_tokens": (
        *_s(
            "gen_ai.usage.reasoning.output_tokens",
            "gen_ai.usage.reasoning_tokens",
            "llm.usage.reasoning_tokens",
            "llm.token_count.completion_details.reasoning",
            "ai.usage.reasoningTokens",
        ),
        Source("response_data", json_key="usage.completion_tokens_details.reasoning_tokens"),
    ),
    "reported_cost_usd": (
        *_s(
            "gen_ai.usage.cost",  # OpenLIT
            "llm.cost.total",  # OpenInference
            "llm.usage.cost",
            "gen_ai.cost.total_cost",  # litellm (cost breakdown)
            "operation.cost",  # Logfire (its genai-prices figure)
        ),
        Source("langfuse.observation.cost_details", json_key="total"),
        Source("hidden_params", json_key="response_cost"),  # litellm before the cost breakdown
    ),
    # time to first token, in ms
    "ttft_ms": (
        *_s(
            "gen_ai.response.time_to_first_chunk",
            "gen_ai.client.operation.time_to_first_chunk",
            "gen_ai.server.time_to_first_token",
            scale=1000.0,
        ),
        *_s("ai.response.msToFirstChunk", "ai.stream.msToFirstChunk"),
    ),
    "streaming": (
        *_s(
            "gen_ai.request.stream",
            "gen_ai.request.is_stream",  # OpenLIT TypeScript and older Python SDKs
            "gen_ai.is_streaming",
            "llm.is_streaming",
            "gen_ai.request.streaming",
        ),
        Source("llm.invocation_parameters", json_key="stream"),  # OpenInference
        Source("request_data", json_key="stream"),  # Logfire
    ),
    "finish_reason": _s(
        "gen_ai.response.finish_reasons",
        "llm.finish_reason",
        "ai.response.finishReason",
        "gen_ai.completion.0.finish_reason",
        "llm.completions.0.finish_reason",
        "langfuse.observation.metadata.finish_reason",  # the Langfuse OpenAI integration, on streamed calls
    ),
    "user_id": _s(
        "user.id",
        "gen_ai.user",
        "llm.user",
        "gen_ai.request.user",
        "langfuse.user.id",
        "traceloop.association.properties.user_id",
        "ai.telemetry.metadata.userId",
        "enduser.id",
    ),
    "session_id": _s(
        "session.id",
        "gen_ai.conversation.id",
        "langfuse.session.id",
        "traceloop.association.properties.session_id",
        "ai.telemetry.metadata.sessionId",
    ),
    "environment": _s("deployment.environment.name", "deployment.environment", "langfuse.environment"),
    "tags": _s("tag.tags", "langfuse.trace.tags", "logfire.tags", "ai.telemetry.metadata.tags"),
    "error_type": _s("error.type", "exception.type"),
    "http_status": _s("http.response.status_code", "http.status_code"),
    "input_content": _s(
        "gen_ai.input.messages",
        "gen_ai.prompt",
        "langfuse.observation.input",
        "input.value",
        "ai.prompt.messages",
        "ai.prompt",
    ),
    "output_content": _s(
        "gen_ai.output.messages",
        "gen_ai.completion",
        "langfuse.observation.output",
        "output.value",
        "ai.response.text",
    ),
}

# Attributes holding a whole usage object (JSON) in a provider's or Langfuse's own shape (collector/usage.py reads
# every shape). Their counts fill the token fields the sources above left empty.
USAGE_OBJECTS: tuple[str, ...] = ("langfuse.observation.usage_details",)

# Free-form metadata: attributes under these prefixes become metadata keys (prefix stripped).
METADATA_PREFIXES: tuple[str, ...] = (
    "traceloop.association.properties.",
    "ai.telemetry.metadata.",
    "langfuse.trace.metadata.",
    "langfuse.observation.metadata.",
    "metadata.",
)
METADATA_JSON_KEYS: tuple[str, ...] = ("metadata",)  # a JSON object string (OpenInference)
# Metadata attributes whose values the SDK JSON-encodes (Langfuse writes the string "support" as '"support"').
METADATA_JSON_VALUE_PREFIXES: tuple[str, ...] = ("langfuse.trace.metadata.", "langfuse.observation.metadata.")
# metadata keys that are already fields of the record
METADATA_SKIP = frozenset({"user_id", "session_id", "userId", "sessionId", "tags", "finish_reason"})

# Indexed content attributes (flattened message lists), read only when content capture is on.
INPUT_CONTENT_PREFIXES: tuple[str, ...] = ("gen_ai.prompt.", "llm.input_messages.", "llm.prompts.")
OUTPUT_CONTENT_PREFIXES: tuple[str, ...] = ("gen_ai.completion.", "llm.output_messages.", "llm.completions.")

# Span events that mark the first streamed token (time of the first one = TTFT).
FIRST_TOKEN_EVENTS = frozenset(
    {
        "First Token Stream Event",
        "gen_ai.content.completion.chunk",
        "llm.content.completion.chunk",
        "ai.stream.firstChunk",
        "first_token",
    }
)
# Span events that carry prompt/completion content (OTel GenAI 1.26).
CONTENT_EVENTS: dict[str, tuple[str, str]] = {
    "gen_ai.content.prompt": ("input_content", "gen_ai.prompt"),
    "gen_ai.content.completion": ("output_content", "gen_ai.completion"),
}

# The OTel gen_ai.provider.name values: kept as they are (some contain dots).
OTEL_PROVIDERS = frozenset(
    {
        "openai",
        "anthropic",
        "aws.bedrock",
        "azure.ai.inference",
        "azure.ai.openai",
        "cohere",
        "deepseek",
        "gcp.gemini",
        "gcp.gen_ai",
        "gcp.vertex_ai",
        "groq",
        "ibm.watsonx.ai",
        "mistral_ai",
        "perplexity",
        "x_ai",
    }
)
# Provider spellings of every convention -> one name (the OTel gen_ai.provider.name value where there is one).
# A dotted name that is neither (Vercel "openai.chat", "google.vertex.chat") is matched by its longest known prefix.
PROVIDER_ALIASES: dict[str, str] = {
    "az.ai.inference": "azure.ai.inference",
    "az.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "google.generative-ai": "gcp.gemini",
    "google.vertex": "gcp.vertex_ai",
    "xai": "x_ai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock",
    "azure-openai": "azure.ai.openai",
    "google-vertex": "gcp.vertex_ai",
    "watsonx": "ibm.watsonx.ai",
}

# Our provider names -> genai-prices provider ids (None: let genai-prices find the provider from the model).
PRICING_PROVIDERS: dict[str, str | None] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "perplexity": "perplexity",
}

# genai-prices provider ids -> our provider names, for a provider inferred from the model (collector/pricing.py).
# A genai-prices id not listed here is used as it is. Google's models match "google" whichever Google API served
# them, so the inferred name is OTel's catch-all for Google's generative AI endpoints.
INFERRED_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gcp.gen_ai",
    "aws": "aws.bedrock",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "x-ai": "x_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "perplexity": "perplexity",
}


@dataclass(frozen=True)
class StreamLogRule:
    """A streamed call recorded as two spans: a request span that ends as soon as the stream object is returned
    (no response, no usage), and a log span emitted once the stream has been consumed, carrying the request
    attributes again plus the response and usage.

    The log span is the call. The request span is not (it would count the call twice) unless it failed, in which
    case no log follows and it is the call. The two are siblings (same parent) or, with no parent, roots of two
    different traces, and they are often exported in different batches, so the log span must stand alone: its
    start is its time minus `duration_key` (seconds). When its request span is in the same batch, the call
    starts when the request did.
    """

    convention: str
    attribute: str  # the attribute that marks the log span ...
    prefix: str  # ... when its value starts with this
    request_stream: Source  # true on a request span whose stream is logged this way
    duration_key: str | None = None  # the log's attribute holding the stream's duration in seconds


# Logfire: "streaming response from {request_data[model]!r} took {duration:.2f}s" (Azure AI Inference without a
# model: "streaming response took ..."); the request span says `"stream": true` in its request body. The log's
# context is the one captured before the request span opened.
STREAM_LOG_RULES: tuple[StreamLogRule, ...] = (
    StreamLogRule(
        "logfire",
        "logfire.msg_template",
        "streaming response",
        request_stream=Source("request_data", json_key="stream"),
        duration_key="duration",
    ),
)
