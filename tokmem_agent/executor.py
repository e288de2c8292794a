"""Running tool calls: timeout, exception capture, result serialisation with a size cap (no torch).

Each call runs on a fresh **daemon** thread, so a tool that never returns cannot take a worker from later
calls, and cannot keep the process from exiting. A call past its timeout is reported as a timeout and its
thread is *abandoned* (Python cannot kill a thread; it finishes, or not, in the background). At most
:data:`MAX_ABANDONED` abandoned threads may be running at once: past that bound new calls are refused with
a clear error instead of piling up threads. Async tools run with ``asyncio.run`` on their own thread.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: timed-out calls whose threads may still be running before new calls are refused
MAX_ABANDONED = 32

_lock = threading.Lock()
_abandoned = 0


def abandoned_calls() -> int:
    """Timed-out calls whose threads are still running."""
    return _abandoned


@dataclass
class ToolResult:
    """What a call returned (``ok``) or why it failed (``error`` with ``kind``: exception, timeout)."""

    ok: bool
    value: Any = None
    error: str | None = None
    kind: str = "ok"
    seconds: float = 0.0


class _Job:
    """One call on its own daemon thread."""

    def __init__(self, fn: Callable[..., Any], args: dict[str, Any], loop: asyncio.AbstractEventLoop | None = None):
        self.fn, self.args, self.loop = fn, args, loop
        self.future: Any = None  # a coroutine submitted to ``loop`` (cancelled when abandoned)
        self.done = threading.Event()
        self.value: Any = None
        self.exc: BaseException | None = None
        self.abandoned = False

    def run(self) -> None:
        global _abandoned
        try:
            self.value = self._call()
        except BaseException as exc:  # noqa: BLE001 - reported to the model, never raised in the thread
            self.exc = exc
        finally:
            with _lock:
                self.done.set()
                if self.abandoned:
                    _abandoned -= 1

    def abandon(self) -> bool:
        """Mark a timed-out job abandoned; False if it finished meanwhile."""
        global _abandoned
        with _lock:
            if self.done.is_set():
                return False
            self.abandoned = True
            _abandoned += 1
        if self.future is not None:  # an async tool on the caller's loop: stop it there
            self.future.cancel()
        return True

    def _call(self) -> Any:
        fn, args, loop = self.fn, self.args, self.loop
        if loop is not None and loop.is_running() and inspect.iscoroutinefunction(fn):
            # the caller's event loop (TokMemAgent.arun): the tool may use resources bound to it
            self.future = asyncio.run_coroutine_threadsafe(fn(**args), loop)
            if self.abandoned:  # timed out before the coroutine was submitted: abandon() saw no future
                self.future.cancel()
            return self.future.result()
        return _call(fn, args)


def serialize(value: Any, max_chars: int = 2000) -> str:
    """Compact JSON (strings as is), cut to ``max_chars`` with a marker."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return _cap(text, max_chars)


def _cap(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[: max(0, max_chars - 20)] + f"…[+{len(text) - max_chars + 20} chars]"


def _call(fn: Callable[..., Any], args: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(fn(**args))
    out = fn(**args)
    if inspect.isawaitable(out):
        async def _await() -> Any:
            return await out
        return asyncio.run(_await())
    return out


def execute(fn: Callable[..., Any], args: dict[str, Any], *, timeout: float | None = 30.0,
            loop: asyncio.AbstractEventLoop | None = None) -> ToolResult:
    """Run ``fn(**args)`` (sync or async) on its own daemon thread; never raises. With ``loop`` (a running
    event loop of another thread), an ``async def`` tool runs on that loop instead.

    A call that exceeds ``timeout`` seconds is reported as a timeout; its thread cannot be killed and
    finishes in the background (tools that may hang should enforce their own limits too).
    """
    return execute_many([(fn, args)], timeout=timeout, loop=loop)[0]


def execute_many(calls: Sequence[tuple[Callable[..., Any], dict[str, Any]]], *, timeout: float | None = 30.0,
                 parallel: bool = True, loop: asyncio.AbstractEventLoop | None = None) -> list[ToolResult]:
    """Run several calls, concurrently when ``parallel``; results in call order. Never raises. ``loop``: see
    :func:`execute`."""
    if not parallel:
        return [r for fn, a in calls for r in execute_many([(fn, a)], timeout=timeout, loop=loop)]
    t0 = time.perf_counter()
    jobs: list[_Job | ToolResult] = []
    for fn, a in calls:
        if _abandoned >= MAX_ABANDONED:
            jobs.append(ToolResult(False, kind="timeout", error=f"not run: {_abandoned} earlier tool calls timed out "
                                   "and are still running (the bound is executor.MAX_ABANDONED)"))
            continue
        job = _Job(fn, a, loop)
        threading.Thread(target=job.run, name=f"tokmem-tool-{getattr(fn, '__name__', 'call')}", daemon=True).start()
        jobs.append(job)
    out = []
    for job in jobs:
        if isinstance(job, ToolResult):
            out.append(job)
            continue
        left = None if timeout is None else max(0.0, timeout - (time.perf_counter() - t0))
        out.append(_collect(job, left, timeout, t0))
    return out


def _collect(job: _Job, left: float | None, timeout: float | None, t0: float) -> ToolResult:
    if not job.done.wait(left) and job.abandon():
        return ToolResult(False, error=f"timed out after {timeout:g} s", kind="timeout",
                          seconds=time.perf_counter() - t0)
    exc = job.exc
    if exc is not None:  # the tool's own failure: reported to the model, not raised
        msg = str(exc) or type(exc).__name__
        return ToolResult(False, error=f"{type(exc).__name__}: {msg}", kind="exception",
                          seconds=time.perf_counter() - t0)
    return ToolResult(True, job.value, seconds=time.perf_counter() - t0)
