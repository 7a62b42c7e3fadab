"""The README's "OpenLLMetry" snippet, run as it is shown, then one chat call (see examples/openai_v2_app.py).

TRACELOOP_BASE_URL, when set, wins over api_endpoint (the test points it at its own callscope that way).
"""

# --- README: OpenLLMetry
from traceloop.sdk import Traceloop

Traceloop.init(app_name="my-app", api_endpoint="http://127.0.0.1:4318")  # or TRACELOOP_BASE_URL
# --- end

import openai  # noqa: E402

reply = openai.OpenAI().chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], max_tokens=12
)
print(reply.choices[0].message.content)  # the SDK flushes its spans when the process exits
