"""A small model that is already served (a vLLM server, a Ray Serve LLM app, another team's
endpoint) as a fleet member: the engine it gets, what it sends for each structured kind, and the
clear error from a server without structured output. Against the scripted OpenAI-compatible server
here; (slow) against vLLM's own server, the stand-in, with vLLM's structured outputs."""

from __future__ import annotations

import asyncio
import json

import pytest

from slmflow.core.errors import StructuredOutputUnsupported
from slmflow.core.records import GenerationRequest, Message
from tests.support.openai_server import ScriptedOpenAIServer
from workers.engines import OpenAIEngine
from workers.replica import ReplicaSpec, build_engine

KEY = "sk-endpoint-test-0123456789"
CLASSIFY = GenerationRequest(
    kind="classify", choices=["yes", "no"], messages=[Message(role="user", content="Is the sky blue?")]
)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
EXTRACT = GenerationRequest(
    kind="extract", json_schema=SCHEMA, messages=[Message(role="user", content="I live in Paris.")], max_tokens=32
)
TOOLS = [{"type": "function", "function": {"name": "get_order", "parameters": {"type": "object", "properties": {}}}}]
CALL_SCHEMA = {"type": "object", "properties": {"name": {"enum": ["get_order"]}, "arguments": {"type": "object"}}}
TOOL_CALL = GenerationRequest(
    kind="tool_call",
    tools=TOOLS,
    json_schema=CALL_SCHEMA,
    messages=[Message(role="user", content="Where is my order?")],
)


def answer(request: dict) -> str:
    """What a server holding answers to the form sends back for each request."""
    if "label" in json.dumps(request.get("response_format", {})):
        return json.dumps({"label": "yes"})
    outputs = request.get("structured_outputs") or {}
    if outputs.get("choice"):
        return outputs["choice"][0]
    if "get_order" in json.dumps(request):
        return json.dumps({"name": "get_order", "arguments": {}})
    return json.dumps({"city": "Paris"})


def run(engine: OpenAIEngine, *requests: GenerationRequest):
    async def go():
        try:
            return [await engine.generate(r) for r in requests]
        finally:
            await engine.shutdown()

    return asyncio.run(go())


def member(server: ScriptedOpenAIServer, structured: str = "json_schema") -> OpenAIEngine:
    spec = ReplicaSpec(
        member="remote",
        replica="small:remote:0",
        model_name=server.model,
        model_path=server.model,
        kinds=["classify", "extract", "tool_call"],
        base_url=server.base_url,
        structured_output=structured,
    )
    engine = build_engine(spec, KEY)
    assert isinstance(engine, OpenAIEngine)
    return engine


def test_a_vllm_server_member_gets_vllms_structured_outputs():
    with ScriptedOpenAIServer(answer, model="Qwen/Qwen3-1.7B") as server:
        label, city, call = run(member(server, "vllm"), CLASSIFY, EXTRACT, TOOL_CALL)
    assert (label.output, city.output, call.output) == (
        "yes",
        {"city": "Paris"},
        {"name": "get_order", "arguments": {}},
    )
    classify, extract, tool = server.requests
    assert classify["structured_outputs"] == {"choice": ["yes", "no"]} and "response_format" not in classify
    assert extract["structured_outputs"] == {"json": SCHEMA}
    # The tools go along for the chat template; the answer is held to the call schema.
    assert tool["structured_outputs"] == {"json": CALL_SCHEMA}
    assert tool["tools"] == TOOLS and tool["tool_choice"] == "none"
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"
    assert label.engine_s is None and label.tokens_in > 0  # priced by its tokens, not engine time


def test_any_openai_compatible_member_gets_response_format():
    with ScriptedOpenAIServer(answer, model="team-b-small") as server:
        label, city = run(member(server), CLASSIFY, EXTRACT)
    assert (label.output, city.output) == ("yes", {"city": "Paris"})
    assert [r["response_format"]["type"] for r in server.requests] == ["json_schema", "json_schema"]


def test_a_server_without_structured_output_fails_the_probe_naming_the_setting():
    with ScriptedOpenAIServer(answer, model="team-b-small", structured=False) as server:
        engine = member(server)

        async def probe():
            try:
                await engine.probe(["answer", "classify", "extract"])
            finally:
                await engine.shutdown()

        with pytest.raises(StructuredOutputUnsupported) as err:
            asyncio.run(probe())
    message = str(err.value)
    assert "team-b-small at http://127.0.0.1:" in message and "structured_output: json_schema" in message
    assert "response_format is not supported" in message and KEY not in message


def test_an_answer_only_member_sends_no_form_and_refuses_structured_kinds():
    with ScriptedOpenAIServer(lambda request: "Paris is the capital.", model="plain") as server:
        spec = ReplicaSpec(
            member="plain",
            replica="small:plain:0",
            model_name="plain",
            model_path="plain",
            kinds=["answer"],
            base_url=server.base_url,
            structured_output="none",
        )
        engine = build_engine(spec)
        answer_request = GenerationRequest(kind="answer", messages=[Message(role="user", content="Capital?")])
        (draft,) = run(engine, answer_request)
        assert draft.output == "Paris is the capital."
        assert not {"response_format", "structured_outputs", "tools"} & set(server.requests[0])
        with pytest.raises(StructuredOutputUnsupported, match="cannot answer a classify request"):
            run(build_engine(spec), CLASSIFY)


@pytest.mark.slow
def test_vllms_own_server_as_a_member(standin):
    """The stand-in is vLLM's OpenAI-compatible server: a real `structured_output: vllm` member."""
    from workers.frontier import STANDIN_MODEL

    spec = ReplicaSpec(
        member="served",
        replica="small:served:0",
        model_name=STANDIN_MODEL,
        model_path=STANDIN_MODEL,
        kinds=["classify", "extract"],
        base_url=standin.url,
        structured_output="vllm",
    )
    engine = build_engine(spec)
    label, city = run(engine, CLASSIFY, EXTRACT)
    assert label.output in ("yes", "no") and label.confidence is not None
    assert isinstance(city.output, dict) and isinstance(city.output.get("city"), str)
