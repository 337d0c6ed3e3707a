"""The frontier: any OpenAI-compatible endpoint, called only for tasks that failed verification.

Transient faults (429, 5xx, timeouts, connection errors, malformed bodies) are retried with
exponential backoff and jitter by tenacity; what still fails surfaces as `FrontierError`, which
the flow turns into an explicit needs-review result. The API key never leaves this object.
"""

from __future__ import annotations

import json

import openai
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from slmflow.core.errors import EngineOutputError, FrontierError
from slmflow.core.records import Draft, GenerationRequest
from workers.engines import OpenAIEngine

STANDIN_MODEL = "frontier-standin"
STANDIN_LABEL = "local stand-in for a frontier model"

RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.APIResponseValidationError,
    json.JSONDecodeError,
    EngineOutputError,
)


class FrontierClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        *,
        attempts: int = 4,
        timeout_s: float = 60.0,
        backoff_s: float = 0.5,
        label: str | None = None,
    ):
        self.engine = OpenAIEngine(base_url, model, api_key, timeout_s=timeout_s)
        self._key = api_key
        self.model = model
        self.label = label or model
        self._attempts = attempts
        self._backoff_s = backoff_s
        self.calls = 0
        self.retries = 0

    async def generate(self, request: GenerationRequest) -> Draft:
        self.calls += 1
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(RETRYABLE),
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential_jitter(multiplier=self._backoff_s, max=30),
                reraise=True,
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.retries += 1
                    return await self.engine.generate(request)
        except RETRYABLE + (openai.APIStatusError,) as exc:
            # Never include request headers or the client in the message: they carry the key.
            raise FrontierError(f"{type(exc).__name__}: {self._redact(_status(exc))}") from None
        raise AssertionError("unreachable")

    async def check(self) -> None:
        """One cheap authenticated call (list models) to prove the endpoint is there."""
        try:
            await self.engine.client.models.list()
        except openai.OpenAIError as exc:
            raise FrontierError(
                f"frontier endpoint {self.engine.base_url} is unreachable: "
                f"{type(exc).__name__}: {self._redact(_status(exc))}"
            ) from None

    def stats(self) -> dict[str, int | str]:
        return {"model": self.model, "label": self.label, "calls": self.calls, "retries": self.retries}

    async def shutdown(self) -> None:
        await self.engine.shutdown()

    def _redact(self, text: str) -> str:
        # Some providers echo the key they rejected in the error body; the message reaches results
        # and Prefect states, so the key is cut out here.
        return text.replace(self._key, "***") if self._key else text


def _status(exc: Exception) -> str:
    code = getattr(exc, "status_code", None)
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"HTTP {code} {text}" if code else text
