"""A local fake OpenAI-compatible LLM server: the only part that stands in for something outside the machine.

POST /v1/chat/completions answers like OpenAI: usage with prompt = 10 x messages + 7 tokens, completion =
max_tokens (20 when unset). Markers in the last message steer it: "[status=429]" / "[status=500]" answer
that error; "[cached=N]" / "[reasoning=N]" add OpenAI's usage details (N of the prompt tokens were cached, N of
the completion tokens were reasoning); streaming requests get SSE chunks with the first after `first_chunk_ms`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLM:
    def __init__(self, first_chunk_ms: int = 50) -> None:
        self.first_chunk_ms = first_chunk_ms
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.requests.append(body)
                text = body["messages"][-1]["content"]
                status = re.search(r"\[status=(\d{3})\]", text)
                if status:
                    code = int(status.group(1))
                    payload = json.dumps({"error": {"message": f"Fake error {code}", "type": "fake"}}).encode()
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                prompt = 10 * len(body["messages"]) + 7
                completion = body.get("max_tokens") or body.get("max_completion_tokens") or 20
                usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
                cached, reasoning = re.search(r"\[cached=(\d+)\]", text), re.search(r"\[reasoning=(\d+)\]", text)
                if cached or reasoning:  # OpenAI's usage details: parts of prompt_tokens / completion_tokens
                    usage["prompt_tokens_details"] = {"cached_tokens": int(cached[1]) if cached else 0}
                    usage["completion_tokens_details"] = {"reasoning_tokens": int(reasoning[1]) if reasoning else 0}
                n = len(fake.requests)
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    time.sleep(fake.first_chunk_ms / 1000)
                    for i, piece in enumerate(["fake ", "reply"]):
                        chunk = {
                            "id": f"chatcmpl-{n}",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "delta": {"role": "assistant", "content": piece} if i == 0 else {"content": piece},
                                    "finish_reason": None,
                                }
                            ],
                        }
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    last = {
                        "id": f"chatcmpl-{n}",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": body["model"],
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": usage,
                    }
                    self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
                    return
                payload = json.dumps(
                    {
                        "id": f"chatcmpl-{n}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "fake reply"},
                            }
                        ],
                        "usage": usage,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
