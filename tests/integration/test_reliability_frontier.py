"""Reliability scenario 2: frontier faults through the flow (docs/reliability.md).

Every unit's small-model draft fails verification, so every unit escalates to a real
`FrontierClient` talking HTTP to the scripted fault-injecting server (tests/support), and its
answer goes through the real verifier. The server injects, per unit: nothing, a 429, a 500 and a
503, a hang past the client's timeout, a truncated JSON body, a 500 on every attempt, or answers
in the wrong schema. The job completes; every unit ends escalated or needs_review, and nothing
unverified is accepted.

Units run one at a time (a single task thread), so the server meets the requests in a known
order and each fault lands on the unit it was written for.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from pathlib import Path

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cascade import UnitContext
from flows.job import run_units
from flows.ledger import Ledger
from flows.spec import build_job
from slmflow.core.records import Status
from tests.support.fakes import SETTINGS, draft
from tests.support.openai_server import ScriptedOpenAIServer
from tests.support.prefect_api import task_runs
from verification.verifier import Verifier
from workers.frontier import FrontierClient

TIMEOUT_S = 3.0  # the client's; generous, so that only the injected hang times out
ATTEMPTS = 3
OK = ("ok", None)  # the server pops one entry per request: this one injects nothing
# Per unit, the fault each of its frontier requests meets, in order.
SCRIPTS = {
    "clean": [OK],
    "rate-limited": [("status", 429), OK],
    "server-error": [("status", 500), ("status", 503), OK],
    "hang": [("hang", TIMEOUT_S + 2), OK],
    "truncated": [("truncated", None), OK],
    "down": [("status", 500)] * ATTEMPTS,  # every attempt fails: the client gives up
    "wrong-schema": [OK],  # answers, but not in the requested schema
}
SCHEMA = {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}

JOB = build_job(
    {
        "name": "frontier-faults",
        "inputs": {"items": [{"id": name, "text": f"Where is order NB-{n}?"} for n, name in enumerate(SCRIPTS)]},
        "tasks": [
            {
                "id": "label",
                "kind": "classify",
                "choices": ["shipping", "billing"],
                "prompt": "Ticket {{ item.id }}: {{ item.text }}",
            },
            {"id": "fields", "kind": "extract", "schema": SCHEMA, "prompt": "Ticket {{ item.id }}: {{ item.text }}"},
        ],
    },
    Path("."),
)


def respond(request: dict) -> str:
    """The frontier's answer: right, except for the wrong-schema ticket."""
    prompt = request["messages"][-1]["content"]
    ticket = re.search(r"Ticket (\S+):", prompt).group(1)
    order = re.search(r"NB-\d+", prompt).group(0)
    is_label = request["response_format"]["json_schema"]["name"] == "label"
    if ticket == "wrong-schema":
        return json.dumps({"answer": "shipping"} if is_label else {"order_id": 7})
    return json.dumps({"label": "shipping"} if is_label else {"order": order})


class EscalatingWorkers:
    """The Workers seam: a small model whose drafts never pass, the real FrontierClient on its
    own event loop (as in the frontier actor), and the real verifier."""

    def __init__(self, server: ScriptedOpenAIServer):
        self.client = FrontierClient(
            server.base_url, server.model, "sk-test", attempts=ATTEMPTS, timeout_s=TIMEOUT_S, backoff_s=0.01
        )
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.client.shutdown(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)

    def search(self, collection, query, k):
        return []

    def small(self, request):
        # Off-contract drafts: a label outside the choices, an object missing its field.
        return draft("small", "maybe") if request.kind == "classify" else draft("small", {})

    def frontier(self, request):
        return asyncio.run_coroutine_threadsafe(self.client.generate(request), self.loop).result(
            timeout=ATTEMPTS * (TIMEOUT_S + 5)
        )

    def verify(self, request):
        return Verifier().verify(request)


@flow(name="test-frontier-faults", task_runner=ThreadPoolTaskRunner(max_workers=1))
def faults_flow(workers: EscalatingWorkers):
    # The scripted frontier, priced as the fakes' "big" model.
    priced = SETTINGS.model_copy(update={"price_aliases": {"scripted-frontier": "big"}})
    ctx = UnitContext(JOB.spec.name, "faults", workers, Ledger(priced, "scripted-frontier"))
    return run_units(JOB, ctx, retries=2)


def test_frontier_faults_end_escalated_or_needs_review_never_unverified(prefect_api):
    with ScriptedOpenAIServer(respond) as server:
        for item in JOB.iter_items():  # units run item by item, label then fields
            server.faults.extend(SCRIPTS[item.id] * len(JOB.spec.tasks))
        workers = EscalatingWorkers(server)
        try:
            state = faults_flow(workers, return_state=True)
        finally:
            workers.close()
        assert state.is_completed(), state.message
        results = state.result()
        # Every scripted request was made, no more: each fault met the unit it was written for.
        assert not server.faults
        assert len(server.requests) == sum(map(len, SCRIPTS.values())) * len(JOB.spec.tasks)
    by_item: dict[str, set[Status]] = {}
    for r in results:
        by_item.setdefault(r.item_id, set()).add(r.status)
    assert by_item == {
        "clean": {Status.escalated},
        "rate-limited": {Status.escalated},
        "server-error": {Status.escalated},
        "hang": {Status.escalated},
        "truncated": {Status.escalated},
        "down": {Status.needs_review},
        "wrong-schema": {Status.needs_review},
    }

    for r in results:
        if r.status.verified:
            # The output is the frontier's, and that very draft passed verification.
            last = r.attempts[-1]
            assert last.role == "frontier" and last.verdict.accept
            assert r.output == last.draft.output is not None and r.model == "scripted-frontier"
        else:
            assert r.output is None  # never presented as a result
            assert not any(a.verdict.accept for a in r.attempts)
    down = [r for r in results if r.item_id == "down"]
    assert all(
        r.error.startswith("escalation failed: InternalServerError")
        and "500" in r.error
        and [a.role for a in r.attempts] == ["small"]
        for r in down
    )
    wrong = {r.task_id: r for r in results if r.item_id == "wrong-schema"}
    assert [a.role for a in wrong["label"].attempts] == ["small", "frontier"]
    assert any(x.startswith("frontier: valid_choice") for x in wrong["label"].reasons)
    assert any(x.startswith("frontier: schema") for x in wrong["fields"].reasons), wrong["fields"].reasons
    # Transient faults are retried inside the frontier client; the verdicts are final, so
    # Prefect retried nothing.
    assert workers.client.retries == 2 * (1 + 2 + 1 + 1 + (ATTEMPTS - 1))
    runs = task_runs(state.state_details.flow_run_id)
    assert len(runs) == len(results) and all(r.run_count == 1 for r in runs)
    states = Counter(r.state.name for r in runs)
    assert states == {"Escalated": 10, "NeedsReview": 4}, states
    print(
        f"\nRELIABILITY frontier-faults: units={len(results)}, requests={len(server.requests)}, "
        f"client_retries={workers.client.retries}, "
        f"outcomes={dict(Counter(r.status.value for r in results))}"
    )
