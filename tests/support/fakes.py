"""Fakes at the `Workers` seam (flows.cascade.Workers): engines that answer from a script, with the
real verifier behind them, so the flow's logic runs without Ray or a model."""

from __future__ import annotations

import json
import threading

from slmflow.core.records import Draft, Evidence
from slmflow.core.settings import Price, Settings
from verification.verifier import Verifier

# Two priced models, so costs and counterfactuals in assertions are easy to compute by hand.
SETTINGS = Settings(
    prices={"small": Price(input_per_m=1, output_per_m=2), "big": Price(input_per_m=10, output_per_m=20)}
)


class FakeWorkers:
    """One canned small-model draft and one frontier answer (or the error it raises)."""

    def __init__(self, small: Draft, frontier: Draft | Exception | None = None):
        self._small, self._frontier = small, frontier
        self.small_requests = []
        self.frontier_requests = []

    def search(self, collection, query, k):
        return [Evidence(chunk_id="d#0", doc_id="d", text="text", score=1.0, collection=collection)]

    def small(self, request):
        self.small_requests.append(request)
        return self._small

    def frontier(self, request):
        self.frontier_requests.append(request)
        if isinstance(self._frontier, Exception):
            raise self._frontier
        return self._frontier

    def verify(self, request):
        return Verifier().verify(request)


def draft(model, output, text=None, tokens_in=100, tokens_out=10, confidence=0.9):
    return Draft(
        model=model,
        text=text if text is not None else json.dumps(output) if not isinstance(output, str) else output,
        output=output,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        latency_s=0.1,
        finish_reason="stop",
        confidence=confidence,
    )


class Scripted:
    """Engines that answer from scripts; retrieval returns a planted (poisoned) passage."""

    def __init__(self, small, frontier=(), passage="Refunds within 30 days."):
        self.small_script, self.frontier_script = list(small), list(frontier)
        self.passage = passage
        self.small_requests = []
        self.frontier_requests = []

    def search(self, collection, query, k):
        return [Evidence(chunk_id="kb#0", doc_id="kb", text=self.passage, score=1.0, collection=collection)]

    def small(self, request):
        self.small_requests.append(request)
        return call_draft("small", self.small_script.pop(0))

    def frontier(self, request):
        self.frontier_requests.append(request)
        answer = self.frontier_script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return call_draft("big", answer)

    def verify(self, request):
        return Verifier().verify(request)


def call_draft(model, tool_call):
    return Draft(
        model=model,
        text=json.dumps(tool_call),
        output=tool_call,
        tokens_in=100,
        tokens_out=10,
        latency_s=0.0,
        finish_reason="stop",
        confidence=0.9,
    )


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


class ByFirstWord(FakeWorkers):
    """Keyed on the first word of the prompt (a classify task over choices a, b): 'a' passes on the
    small model, 'b' needs the frontier, and 'c' fails on both. Counts the small model's calls."""

    def __init__(self):
        super().__init__(small=None)
        self.small_calls = 0
        self._lock = threading.Lock()

    def small(self, request):
        with self._lock:  # units call from many threads
            self.small_calls += 1
        text = request.messages[-1].content.split()[0]
        return draft("small", {"a": "a", "b": "zz", "c": "zz"}[text])

    def frontier(self, request):
        text = request.messages[-1].content.split()[0]
        return draft("big", {"b": "b", "c": "nope"}[text])
