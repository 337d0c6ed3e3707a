"""Many concurrent calls to one actor method, sent as one call with a list.

A run keeps dozens of units in flight, each waiting on a small-model draft or a verdict. One Ray
call per request costs the driver, the raylet and the actor a few hundred microseconds each; at
thousands of units per second that, not the engine, becomes the bottleneck. A `Coalescer` sends
whatever requests have queued while its previous list calls were in flight (at most `outstanding`
of them), so batching adapts to the load: one request alone goes out at once, a crowd goes out
together. Each caller gets its own result, or its own exception, back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class _Answer:
    """One caller's answer: a plain lock its caller blocks on, released once the answer is in. A
    `Future` would do, at several times the cost (a condition variable on a reentrant lock), and
    every unit waits on two of these."""

    __slots__ = ("_ready", "value", "error")

    def __init__(self) -> None:
        self._ready = threading.Lock()
        self._ready.acquire()
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error
        self._ready.release()

    def wait(self, timeout: float | None) -> Any:
        if not self._ready.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"no answer within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.value


class Coalescer:
    def __init__(
        self,
        send: Callable[[list[Any]], Any],
        *,
        decode: Callable[[Any], Any] = lambda result: result,
        max_batch: int = 256,
        outstanding: int = 2,
    ):
        """`send(list)` starts one list call and returns its Ray ObjectRef, which resolves to a list
        of results in the same order; an item that failed is its exception. Each caller gets its
        result through `decode` (workers.wire)."""
        self._send = send
        self._decode = decode
        self._max_batch = max_batch
        self._slots = threading.Semaphore(outstanding)
        self._queue: list[tuple[Any, _Answer]] = []
        self._wake = threading.Condition()
        threading.Thread(target=self._dispatch, name="coalescer", daemon=True).start()

    def call(self, item: Any, timeout: float | None = None) -> Any:
        answer = _Answer()
        with self._wake:
            self._queue.append((item, answer))
            self._wake.notify()
        return answer.wait(timeout)

    def _dispatch(self) -> None:
        while True:
            self._slots.acquire()  # released when a list call settles
            with self._wake:
                while not self._queue:
                    self._wake.wait()
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                ref = self._send([item for item, _ in batch])
                ref.future().add_done_callback(lambda done, batch=batch: self._settle(batch, done))
            except Exception as exc:  # the call could not even be sent (e.g. the actor is gone)
                self._fail(batch, exc)

    def _settle(self, batch: list[tuple[Any, _Answer]], done: Future) -> None:
        self._slots.release()
        error = done.exception()
        if error is not None:
            self._fail(batch, error)
            return
        for (_, answer), outcome in zip(batch, done.result(), strict=True):
            if isinstance(outcome, BaseException):
                answer.set(error=outcome)
                continue
            try:
                answer.set(self._decode(outcome))
            except Exception as exc:  # an answer that does not decode fails its caller, not the batch
                answer.set(error=exc)

    def _fail(self, batch: list[tuple[Any, _Answer]], error: BaseException) -> None:
        for _, answer in batch:
            answer.set(error=error)
