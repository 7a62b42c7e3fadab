"""The README's "Official OpenAI instrumentation" snippet, run as it is shown, then one chat call.

The environment configures it as it would an app: OTEL_EXPORTER_OTLP_ENDPOINT (callscope), OTEL_SERVICE_NAME,
OPENAI_BASE_URL / OPENAI_API_KEY (the provider). tests/integration/test_readme_examples.py runs it against a
fake provider and a real callscope and checks the README shows this code.
"""

# --- README: Official OpenAI instrumentation
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint from OTEL_EXPORTER_OTLP_ENDPOINT
trace.set_tracer_provider(provider)
OpenAIInstrumentor().instrument()
# ... use openai.OpenAI() as usual. For cache and reasoning token counts also set
# OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental.
# --- end

import openai  # noqa: E402

reply = openai.OpenAI().chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], max_tokens=12
)
print(reply.choices[0].message.content)
provider.shutdown()  # flushes the spans before the process exits
