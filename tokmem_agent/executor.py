"""Running tool calls: timeout, exception capture, result serialisation with a size cap (no torch)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="tokmem-tool")


@dataclass
class ToolResult:
    """What a call returned (``ok``) or why it failed (``error`` with ``kind``: exception, timeout)."""

    ok: bool
    value: Any = None
    error: str | None = None
    kind: str = "ok"
    seconds: float = 0.0

    def to_text(self, max_chars: int = 2000) -> str:
        """The text the model sees in the tool turn."""
        if not self.ok:
            return _cap(json.dumps({"error": self.error}, ensure_ascii=False), max_chars)
        return serialize(self.value, max_chars)


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


def execute(fn: Callable[..., Any], args: dict[str, Any], *, timeout: float | None = 30.0) -> ToolResult:
    """Run ``fn(**args)`` (sync or async) in a worker thread; never raises.

    A call that exceeds ``timeout`` seconds is reported as a timeout; its thread cannot be killed and
    finishes in the background (tools that may hang should enforce their own limits too).
    """
    return execute_many([(fn, args)], timeout=timeout)[0]


def execute_many(calls: Sequence[tuple[Callable[..., Any], dict[str, Any]]], *, timeout: float | None = 30.0,
                 parallel: bool = True) -> list[ToolResult]:
    """Run several calls, concurrently when ``parallel``; results in call order. Never raises."""
    if not parallel:
        return [r for fn, a in calls for r in execute_many([(fn, a)], timeout=timeout)]
    t0 = time.perf_counter()
    futs = [_POOL.submit(_call, fn, a) for fn, a in calls]
    out = []
    for fut in futs:
        left = None if timeout is None else max(0.0, timeout - (time.perf_counter() - t0))
        out.append(_collect(fut, left, timeout, t0))
    return out


def _collect(fut: concurrent.futures.Future[Any], left: float | None, timeout: float | None,
             t0: float) -> ToolResult:
    try:
        value = fut.result(timeout=left)
    except concurrent.futures.TimeoutError:
        return ToolResult(False, error=f"timed out after {timeout:g} s", kind="timeout",
                          seconds=time.perf_counter() - t0)
    except Exception as exc:  # the tool's own failure: reported to the model, not raised
        msg = str(exc) or type(exc).__name__
        return ToolResult(False, error=f"{type(exc).__name__}: {msg}", kind="exception",
                          seconds=time.perf_counter() - t0)
    return ToolResult(True, value, seconds=time.perf_counter() - t0)
