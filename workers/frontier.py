"""The frontier: any OpenAI-compatible endpoint, called only for tasks that failed verification.

Transient faults (429, 5xx, timeouts, connection errors, malformed bodies) are retried by tenacity:
after the delay the provider asks for (`retry-after-ms`, `retry-after`) when it names one, else with
exponential backoff and jitter. A provider that asks for a longer wait than `max_wait_s` is not
retried. What still fails surfaces as `FrontierError`, which the flow turns into an explicit
needs-review result. The API key never leaves this object.
"""

from __future__ import annotations

import email.utils
import json
import time

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from slmflow.core.errors import EngineOutputError, FrontierError, StructuredOutputUnsupported
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


def retry_after_s(exc: BaseException | None) -> float | None:
    """The delay a provider's response asks for before the next try, as OpenAI's SDK reads it:
    `retry-after-ms`, else `retry-after` in seconds or as an HTTP date; None when it names none."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return max(float(headers["retry-after-ms"]) / 1000, 0.0)
        raw = headers.get("retry-after")
        if not raw:
            return None
        try:
            return max(float(raw), 0.0)
        except ValueError:
            when = email.utils.parsedate_to_datetime(raw)
            return max(when.timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, OverflowError):
        return None


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
        max_wait_s: float = 60.0,
        label: str | None = None,
    ):
        self.engine = OpenAIEngine(base_url, model, api_key, timeout_s=timeout_s)
        self._key = api_key
        self.model = model
        self.label = label or model
        self._attempts = attempts
        self._max_wait_s = max_wait_s
        self._backoff = wait_exponential_jitter(multiplier=backoff_s, max=30)
        self.calls = 0
        self.retries = 0

    def _retryable(self, exc: BaseException) -> bool:
        asked = retry_after_s(exc)
        return isinstance(exc, RETRYABLE) and (asked is None or asked <= self._max_wait_s)

    def _wait(self, state: RetryCallState) -> float:
        asked = retry_after_s(state.outcome.exception()) if state.outcome else None
        return asked if asked is not None else self._backoff(state)

    async def generate(self, request: GenerationRequest) -> Draft:
        self.calls += 1
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(self._retryable),
                stop=stop_after_attempt(self._attempts),
                wait=self._wait,
                reraise=True,
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.retries += 1
                    return await self.engine.generate(request)
        except RETRYABLE + (openai.APIStatusError, StructuredOutputUnsupported) as exc:
            # Never include request headers or the client in the message: they carry the key.
            asked = retry_after_s(exc)
            wait = ""
            if asked is not None and asked > self._max_wait_s:
                wait = f" (it asked to retry after {asked:.0f} s, more than the {self._max_wait_s:.0f} s allowed)"
            raise FrontierError(f"{type(exc).__name__}: {self._redact(_status(exc))}{wait}") from None
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
