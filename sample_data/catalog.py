"""The demo's world as data: models, services (features of one company's product) and their traffic shapes.

Model names are real ones that genai-prices prices (so costs are real), except UNPRICED_MODEL, a "new" model
the price data does not know yet. Latency figures are rough medians of public provider dashboards; they only
need to be plausible and model-dependent.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    name: str  # the request model
    provider: str  # as the collector records it (the OTel gen_ai.provider.name value)
    response: str  # the model the API answers with (OpenAI answers with a dated snapshot)
    base_ms: float  # median time before the first token for a small prompt
    tokens_per_s: float  # output speed
    reasoning_median: int = 0  # reasoning models: median reasoning tokens per call
    caching: str = ""  # "explicit" (Anthropic: reads and writes), "auto" (OpenAI: reads of long prompts), ""
    operation: str = "chat"


MODELS: tuple[Model, ...] = (
    Model("gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18", 350, 85, caching="auto"),
    Model("gpt-4.1-mini", "openai", "gpt-4.1-mini-2025-04-14", 400, 75, caching="auto"),
    Model("gpt-4.1-nano", "openai", "gpt-4.1-nano-2025-04-14", 250, 120, caching="auto"),
    Model("gpt-4.1", "openai", "gpt-4.1-2025-04-14", 550, 55, caching="auto"),
    Model("gpt-4o", "openai", "gpt-4o-2024-08-06", 500, 60, caching="auto"),
    Model("gpt-3.5-turbo", "openai", "gpt-3.5-turbo-0125", 300, 90),
    Model("o4-mini", "openai", "o4-mini-2025-04-16", 900, 110, reasoning_median=900, caching="auto"),
    Model("gpt-5-mini", "openai", "gpt-5-mini-2025-08-07", 700, 90, reasoning_median=500, caching="auto"),
    Model("text-embedding-3-small", "openai", "text-embedding-3-small", 120, 1e9, operation="embeddings"),
    Model("claude-sonnet-4-20250514", "anthropic", "claude-sonnet-4-20250514", 800, 55, caching="explicit"),
    Model("claude-3-5-haiku-20241022", "anthropic", "claude-3-5-haiku-20241022", 500, 70, caching="explicit"),
    Model("gemini-2.5-flash", "gcp.gemini", "gemini-2.5-flash", 450, 160),
    Model("gemini-2.5-pro", "gcp.gemini", "gemini-2.5-pro", 1300, 80),
    Model("gemini-2.0-flash", "gcp.gemini", "gemini-2.0-flash", 300, 180),
    Model("mistral-small-latest", "mistral_ai", "mistral-small-2506", 350, 110),
    Model("deepseek-chat", "deepseek", "deepseek-chat", 800, 35),
    Model("deepseek-v4-preview", "deepseek", "deepseek-v4-preview", 900, 45),
    # long tail: only the playground uses these, as many as n_models allows
    Model("claude-opus-4-1-20250805", "anthropic", "claude-opus-4-1-20250805", 1500, 30, caching="explicit"),
    Model("gpt-5", "openai", "gpt-5-2025-08-07", 1200, 60, reasoning_median=1200, caching="auto"),
    Model("grok-3-mini", "x_ai", "grok-3-mini", 500, 90, reasoning_median=300),
    Model("gemini-2.5-flash-lite", "gcp.gemini", "gemini-2.5-flash-lite", 250, 200),
    Model("mistral-large-latest", "mistral_ai", "mistral-large-2411", 700, 45),
    Model("claude-3-7-sonnet-20250219", "anthropic", "claude-3-7-sonnet-20250219", 850, 55, caching="explicit"),
    Model("deepseek-reasoner", "deepseek", "deepseek-reasoner", 1500, 30, reasoning_median=1500),
    Model("llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile", 150, 280),
    Model("command-r-plus", "cohere", "command-r-plus", 600, 50),
    Model("gpt-4o-2024-05-13", "openai", "gpt-4o-2024-05-13", 500, 60, caching="auto"),
    Model("o3", "openai", "o3-2025-04-16", 1500, 60, reasoning_median=2000, caching="auto"),
)
MODEL_INDEX = {m.name: i for i, m in enumerate(MODELS)}
UNPRICED_MODEL = "deepseek-v4-preview"  # genai-prices does not know it: cost NULL, pricing 'unpriced'


@dataclass(frozen=True)
class Service:
    """One feature of the product. Token sizes are lognormal: (median, sigma)."""

    name: str
    convention: str  # the instrumentation library it uses, as the collector names it
    weight: float  # share of traces (requests)
    models: tuple[tuple[str, float], ...]  # chat model mix
    input_tokens: tuple[float, float]
    output_tokens: tuple[float, float]
    stream_p: float
    features: tuple[str, ...]
    tags: tuple[str, ...] = ()  # service tags; the user's plan tier is added when the convention carries tags
    embedding_model: str | None = None  # search: an embedding call before the chat call
    agent: bool = False  # several chat steps per trace with tool calls between
    batch: bool = False  # a nightly batch job without users
    has_user: bool = True


SERVICES: tuple[Service, ...] = (
    Service(
        "support-bot",
        "openllmetry",
        0.33,
        (("gpt-4o-mini", 0.55), ("claude-sonnet-4-20250514", 0.35), ("gpt-4.1-mini", 0.10)),
        (1800, 0.55),
        (220, 0.7),
        0.9,
        ("chat", "ticket-triage"),
        ("support",),
    ),
    Service(
        "search-rerank",
        "openinference",
        0.22,
        (("gpt-4.1-nano", 1.0),),
        (2500, 0.35),
        (30, 0.4),
        0.0,
        ("semantic-search",),
        ("search", "rag"),
        embedding_model="text-embedding-3-small",
    ),
    Service(
        "summarizer",
        "otel_genai",
        0.14,
        (("gemini-2.5-flash", 0.6), ("claude-3-5-haiku-20241022", 0.4)),
        (6000, 0.8),
        (350, 0.5),
        0.2,
        ("thread-summary", "meeting-notes"),
        ("summaries",),
    ),
    Service(
        "research-agent",
        "vercel_ai",
        0.06,
        (("o4-mini", 0.6), ("claude-sonnet-4-20250514", 0.4)),
        (3000, 0.5),
        (400, 0.6),
        0.5,
        ("deep-research",),
        ("agent",),
        agent=True,
    ),
    Service(
        "doc-extract",
        "langfuse",
        0.08,
        (("gpt-4.1", 0.5), ("claude-3-5-haiku-20241022", 0.3), ("gemini-2.5-pro", 0.2)),
        (12000, 0.7),
        (600, 0.45),
        0.0,
        ("invoice-fields", "contract-clauses"),
        ("extraction",),
    ),
    Service(
        "email-drafter",
        "openlit",
        0.07,
        (("mistral-small-latest", 0.5), ("gemini-2.0-flash", 0.3), ("deepseek-chat", 0.2)),
        (900, 0.5),
        (400, 0.5),
        0.6,
        ("reply-draft", "follow-up"),
        ("email",),
    ),
    Service(
        "legacy-classifier",
        "otel_genai_deprecated",
        0.05,
        (("gpt-3.5-turbo", 1.0),),
        (400, 0.4),
        (5, 0.3),
        0.0,
        ("ticket-routing",),
        batch=True,
        has_user=False,
    ),
    Service(
        "sql-copilot",
        "logfire",
        0.04,
        (("gpt-4o", 0.7), ("gpt-5-mini", 0.3)),
        (3000, 0.5),
        (250, 0.6),
        0.0,
        ("nl-to-sql",),
        ("analytics",),
    ),
    Service(
        "playground",  # internal prompt playground: the long tail of models (see models_in_use)
        "otel_genai",
        0.03,
        (),
        (1500, 1.0),
        (500, 0.9),
        0.5,
        ("prompt-lab",),
    ),
)
SERVICE_INDEX = {s.name: i for i, s in enumerate(SERVICES)}

# Conventions that carry tags natively; the others leave tags NULL (as the collector would).
TAG_CONVENTIONS = frozenset({"openinference", "langfuse", "logfire", "vercel_ai"})
# Conventions whose attribute set has no cache-write count (the generator never gives them one).
NO_CACHE_WRITE = frozenset({"vercel_ai", "otel_genai_deprecated"})
NO_CACHE = frozenset({"otel_genai_deprecated"})
# Conventions that name only the model: no provider (the collector infers it from the model and marks it inferred),
# no separate response model (the collector leaves it NULL).
MODEL_NAME_ONLY = frozenset({"langfuse"})
NO_FINISH_REASON = frozenset({"langfuse"})  # Langfuse generations carry no finish reason

ENVIRONMENTS: tuple[tuple[str, float], ...] = (("production", 0.88), ("staging", 0.09), ("development", 0.03))
TIERS: tuple[str, ...] = ("tier:enterprise", "tier:pro", "tier:free")  # by user rank: top 2%, next 20%, rest


@dataclass(frozen=True)
class ErrorKind:
    name: str
    error_type: str
    http_status: int | None
    duration_ms: tuple[float, float]  # lognormal (median, sigma)
    message: str


ERRORS: tuple[ErrorKind, ...] = (
    ErrorKind("rate_limit", "RateLimitError", 429, (180, 0.5), "Error code: 429 - Rate limit reached for requests"),
    ErrorKind("server", "InternalServerError", 500, (1500, 0.8), "Error code: 500 - The server had an error"),
    ErrorKind("unavailable", "InternalServerError", 503, (900, 0.6), "Error code: 503 - Service unavailable"),
    ErrorKind("timeout", "APITimeoutError", None, (60_000, 0.02), "Request timed out."),
    ErrorKind("bad_request", "BadRequestError", 400, (250, 0.4), "Error code: 400 - context_length_exceeded"),
)
# Base probability of each error kind per call, outside incidents (sums to 1.8%; ~2% with the incidents).
BASE_ERROR_P: tuple[float, ...] = (0.008, 0.003, 0.002, 0.002, 0.003)


def models_in_use(n_models: int) -> list[int]:
    """Indexes of the models the traffic uses: every model a service names (always, plus the unpriced one),
    then playground models from the long tail until there are n_models."""
    core: list[int] = []
    for s in SERVICES:
        for name in [s.embedding_model, *(m for m, _ in s.models)]:
            if name and MODEL_INDEX[name] not in core:
                core.append(MODEL_INDEX[name])
    if MODEL_INDEX[UNPRICED_MODEL] not in core:
        core.append(MODEL_INDEX[UNPRICED_MODEL])
    tail = [i for i in range(len(MODELS)) if i not in core]
    return core + tail[: max(0, n_models - len(core))]
