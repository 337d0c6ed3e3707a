"""FrontierClient against real HTTP servers: a scripted fault-injecting one, and (slow) the vLLM
OpenAI-compatible stand-in."""

import asyncio
import json

import pytest

from slmflow.core.errors import FrontierError
from slmflow.core.records import GenerationRequest, Message
from tests.support.openai_server import ScriptedOpenAIServer
from workers.frontier import FrontierClient

KEY = "sk-test-DO-NOT-LEAK-1234567890"
CLASSIFY = GenerationRequest(
    kind="classify", choices=["yes", "no"], messages=[Message(role="user", content="Is the sky blue?")]
)


def label(request: dict) -> str:
    return json.dumps({"label": "yes"})


def call(server, request=CLASSIFY, **kwargs):
    client = FrontierClient(server.base_url, server.model, KEY, backoff_s=0.01, **kwargs)
    try:
        return client, asyncio.run(client.generate(request))
    finally:
        asyncio.run(client.shutdown())


def test_success_parses_label_and_usage_and_sends_the_key():
    with ScriptedOpenAIServer(label) as server:
        client, draft = call(server)
    assert draft.output == "yes" and draft.tokens_in > 0 and draft.tokens_out > 0
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"
    assert server.requests[0]["response_format"]["type"] == "json_schema"
    assert client.retries == 0


def test_429_then_success_is_retried():
    with ScriptedOpenAIServer(label) as server:
        server.faults.extend([("status", 429), ("status", 503)])
        client, draft = call(server)
    assert draft.output == "yes" and client.retries == 2 and len(server.requests) == 3


def test_persistent_500_raises_frontier_error_without_the_key():
    with ScriptedOpenAIServer(label) as server:
        server.faults.extend([("status", 500)] * 10)
        with pytest.raises(FrontierError) as exc:
            call(server, attempts=3)
    assert len(server.requests) == 3
    assert KEY not in str(exc.value) and "500" in str(exc.value)


def test_hang_past_timeout_is_retried_then_fails():
    with ScriptedOpenAIServer(label) as server:
        server.faults.extend([("hang", 3), ("hang", 3)])
        with pytest.raises(FrontierError, match="Timeout"):
            call(server, attempts=2, timeout_s=0.5)


def test_truncated_json_body_is_retried():
    with ScriptedOpenAIServer(label) as server:
        server.faults.append(("truncated", None))
        client, draft = call(server)
    assert draft.output == "yes" and client.retries == 1


def test_client_errors_are_not_retried():
    with ScriptedOpenAIServer(label) as server:
        server.faults.append(("status", 401))
        with pytest.raises(FrontierError, match="401"):
            call(server)
    assert len(server.requests) == 1


def test_retry_after_ms_sets_the_delay_before_the_next_try():
    with ScriptedOpenAIServer(label) as server:
        server.faults.append(("status", 429, {"retry-after-ms": "700"}))
        client, draft = call(server)  # backoff_s=0.01: without the header it would retry at once
    assert draft.output == "yes" and client.retries == 1
    gap = server.times[1] - server.times[0]
    assert 0.65 <= gap < 3, gap


def test_retry_after_seconds_sets_the_delay_before_the_next_try():
    with ScriptedOpenAIServer(label) as server:
        server.faults.append(("status", 503, {"retry-after": "1"}))
        client, draft = call(server)
    assert draft.output == "yes" and 0.95 <= server.times[1] - server.times[0] < 4


def test_a_retry_after_beyond_the_limit_is_not_waited_for():
    with ScriptedOpenAIServer(label) as server:
        server.faults.append(("status", 429, {"retry-after": "300"}))
        with pytest.raises(FrontierError, match="retry after 300 s, more than the 60 s allowed"):
            call(server)
    assert len(server.requests) == 1


def test_a_reasoning_model_gets_max_completion_tokens_and_no_sampling_parameters():
    # What LiteLLM knows of o3-mini: the first request is already right, nothing is refused.
    refuse = {"max_tokens", "temperature", "logprobs"}
    with ScriptedOpenAIServer(label, model="o3-mini", refuse=refuse) as server:
        client, draft = call(server)
    assert draft.output == "yes" and client.retries == 0 and len(server.requests) == 1
    sent = server.requests[0]
    assert sent["max_completion_tokens"] == CLASSIFY.max_tokens
    assert not {"max_tokens", "temperature", "logprobs"} & set(sent)


def test_an_unknown_model_that_refuses_parameters_is_answered_and_remembered():
    refuse = {"max_tokens", "temperature", "logprobs"}
    with ScriptedOpenAIServer(label, model="acme-reasoner-1", refuse=refuse) as server:
        client = FrontierClient(server.base_url, server.model, KEY, backoff_s=0.01)

        async def twice():
            try:
                return [await client.generate(CLASSIFY), await client.generate(CLASSIFY)]
            finally:
                await client.shutdown()

        drafts = asyncio.run(twice())
    assert [d.output for d in drafts] == ["yes", "yes"]
    # One refusal per parameter, each answered at once (not a transient retry); then remembered.
    assert len(server.requests) == 5 and client.retries == 0
    assert [
        sorted(set(r) & {"max_tokens", "max_completion_tokens", "temperature", "logprobs"}) for r in server.requests
    ] == [
        ["logprobs", "max_tokens", "temperature"],
        ["logprobs", "max_completion_tokens", "temperature"],
        ["logprobs", "max_completion_tokens"],
        ["max_completion_tokens"],
        ["max_completion_tokens"],
    ]


@pytest.mark.slow
def test_against_the_vllm_standin(standin):
    from workers.frontier import STANDIN_MODEL

    client = FrontierClient(standin.url, STANDIN_MODEL, None)
    extract = GenerationRequest(
        kind="extract",
        json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        messages=[Message(role="user", content="Extract the city as JSON: I live in Paris.")],
        max_tokens=40,
    )

    async def both():
        try:
            await client.check()
            return await asyncio.gather(client.generate(CLASSIFY), client.generate(extract))
        finally:
            await client.shutdown()

    cls, ext = asyncio.run(both())
    assert cls.output in ("yes", "no") and cls.tokens_in > 0 and cls.confidence is not None
    assert isinstance(ext.output, dict) and isinstance(ext.output.get("city"), str)
