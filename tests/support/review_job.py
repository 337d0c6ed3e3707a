"""A job that leaves units for review, on the null engine and a scripted frontier, and a webhook
receiver for the alert automations: what the review tests share.

`details` (extract, an order id like A123) always fails on the null engine (it answers `{}`) and
escalates; the scripted frontier then answers per item (`FRONTIER`): a grounded id (escalated), an
id that breaks the schema (needs review; only a correction or a rejection is possible), or a
well-formed id that is not in the ticket (needs review; the frontier's draft can be approved).
`route` (classify) depends on `details`, so it is blocked wherever `details` needs review, and runs
once a decision verifies it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# item -> what the frontier answers for its `details`
FRONTIER = {"r1": "A100", "r2": "nope", "r3": "A999", "r4": "nope"}
TEXT = {"r1": "order A100 is late", "r2": "my order is late", "r3": "my order is late", "r4": "my order is late"}
ORDER_SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]+$"}}}


def review_spec(name: str = "review-desk", items: dict[str, str] | None = None) -> dict[str, Any]:
    texts = items or TEXT
    return {
        "name": name,
        "description": "Test job: order ids (extract), then routing (classify) on the verified id.",
        "inputs": {"items": [{"id": k, "text": f"[{k}] {v}"} for k, v in texts.items()]},
        "tasks": [
            {
                "id": "details",
                "kind": "extract",
                "schema": {**ORDER_SCHEMA, "required": ["order_id"]},
                "prompt": "Ticket: {{ item.text }}",
            },
            {
                "id": "route",
                "kind": "classify",
                "choices": ["shipping", "billing"],
                "depends_on": ["details"],
                "prompt": "Order {{ upstream.details.order_id }}: {{ item.text }}",
            },
        ],
    }


def write_spec(folder: Path, raw: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{raw['name']}.yaml"
    path.write_text(json.dumps(raw))
    return path


def frontier_answer(request: dict) -> str:
    """The scripted frontier's answer to a request from `review_spec`'s job."""
    text = request["messages"][-1]["content"]
    for item, order in FRONTIER.items():
        if f"[{item}]" in text:
            return json.dumps({"order_id": order})
    return json.dumps({"order_id": "nope"})


class WebhookReceiver:
    """POSTs to http://127.0.0.1:<port>/hook, recorded with their headers."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.calls.append({"path": self.path, "headers": dict(self.headers), "body": body.decode()})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def alerts(self, kind: str) -> list[dict[str, Any]]:
        found = []
        for call in self.calls:
            try:
                body = json.loads(call["body"])
            except json.JSONDecodeError:
                continue
            if body.get("alert") == kind:
                found.append(body)
        return found

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
