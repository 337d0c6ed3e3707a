"""A real HTTP server speaking the OpenAI chat-completions protocol, scripted for tests.

It answers with whatever `respond(request_json)` returns, and can inject faults first: a status
code (429, 500, ...) with optional headers (`retry-after`), a hang past the client's timeout, or a
truncated JSON body. It can play a model that refuses parameters (`refuse`: OpenAI's reasoning
models refuse `max_tokens`, `temperature` and `logprobs` with HTTP 400 naming the parameter) or a
server without structured output (`structured=False`). It records every request (including
headers and arrival times) so tests can assert what the client sent, and when.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# ("status", 429) | ("status", 429, {"retry-after": "1"}) | ("hang", seconds) | ("truncated", None)
Fault = tuple[Any, ...]

# What OpenAI answers a reasoning model's request with, per refused parameter.
_REFUSALS = {
    "max_tokens": (
        "unsupported_parameter",
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
    ),
    "temperature": (
        "unsupported_value",
        "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) value is supported.",
    ),
    "logprobs": ("unsupported_parameter", "Unsupported parameter: 'logprobs' is not supported with this model."),
}


class ScriptedOpenAIServer:
    def __init__(
        self,
        respond: Callable[[dict], str | dict],
        model: str = "scripted-frontier",
        refuse: set[str] | frozenset[str] = frozenset(),
        structured: bool = True,
    ):
        self.respond = respond
        self.model = model
        self.refuse = set(refuse)
        self.structured = structured
        self.faults: deque[Fault] = deque()
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []  # time.monotonic() at each POST
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def price_aliases(self) -> str:
        """SLMFLOW_PRICE_ALIASES for a run against this server: LiteLLM's price map does not list its
        model, so it is priced as the frontier it plays."""
        return json.dumps({self.model: "gpt-4o"})

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a hang past its timeout): that is the point

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200,
                        json.dumps(
                            {"object": "list", "data": [{"id": server.model, "object": "model", "owned_by": "tests"}]}
                        ).encode(),
                    )
                else:
                    self._send(404, b"{}")

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                server.times.append(time.monotonic())
                server.requests.append(request)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                refused = next((p for p in _REFUSALS if p in server.refuse and p in request), None)
                if refused:
                    code, message = _REFUSALS[refused]
                    error = {"message": message, "type": "invalid_request_error", "param": refused, "code": code}
                    self._send(400, json.dumps({"error": error}).encode())
                    return
                if not server.structured and "response_format" in request:
                    error = {"message": "response_format is not supported by this server", "param": None}
                    self._send(400, json.dumps({"error": error}).encode())
                    return
                fault = server.faults.popleft() if server.faults else None
                if fault and fault[0] == "status":
                    headers = fault[2] if len(fault) > 2 else None
                    self._send(fault[1], json.dumps({"error": {"message": "injected"}}).encode(), headers)
                    return
                if fault and fault[0] == "hang":
                    time.sleep(fault[1])
                content = server.respond(request)
                body = json.dumps(_completion(server.model, request, content)).encode()
                if fault and fault[0] == "truncated":
                    body = body[: len(body) // 2]
                self._send(200, body)

        return Handler


def _completion(model: str, request: dict, content: str | dict) -> dict:
    """`content` is the answer's text, or {"tool_calls": [{"name", "arguments"}]} for a call."""
    prompt_tokens = sum(len(m.get("content", "").split()) for m in request.get("messages", []))
    if isinstance(content, dict):
        calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for i, c in enumerate(content["tool_calls"])
        ]
        message, finish = {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
        completion_tokens = max(1, len(json.dumps(calls).split()))
    else:
        message, finish = {"role": "assistant", "content": content}, "stop"
        completion_tokens = max(1, len(content.split()))
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish, "logprobs": None, "message": message}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
