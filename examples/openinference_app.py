"""The README's "OpenInference" snippet, run as it is shown, then one chat call (see examples/openai_v2_app.py)."""

# --- README: OpenInference
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
OpenAIInstrumentor().instrument(tracer_provider=provider)
# --- end

import openai  # noqa: E402

reply = openai.OpenAI().chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], max_tokens=12
)
print(reply.choices[0].message.content)
provider.shutdown()  # flushes the spans before the process exits
