"""The tool executor: hung tools cannot exhaust it or keep the process alive; failures become results."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from tokmem_agent import executor
from tokmem_agent.executor import abandoned_calls, execute, execute_many


def add(a: int, b: int) -> int:
    return a + b


async def async_add(a: int, b: int) -> int:
    return a + b


def boom() -> None:
    raise ValueError("bad input")


@pytest.fixture()
def gate():
    """An event hung tools wait on; set at teardown so their threads end."""
    ev = threading.Event()
    yield ev
    ev.set()
    deadline = time.monotonic() + 5
    while abandoned_calls() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_twenty_hung_calls_then_a_normal_call_succeeds(gate):
    hung = [execute(gate.wait, {}, timeout=0.02) for _ in range(20)]
    assert [r.kind for r in hung] == ["timeout"] * 20 and "timed out after 0.02 s" in hung[0].error
    assert abandoned_calls() == 20
    r = execute(add, {"a": 2, "b": 3}, timeout=1.0)
    assert r.ok and r.value == 5
    gate.set()
    deadline = time.monotonic() + 5
    while abandoned_calls() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert abandoned_calls() == 0  # finished threads are no longer counted


def test_past_the_bound_calls_are_refused_with_a_clear_error(gate, monkeypatch):
    monkeypatch.setattr(executor, "MAX_ABANDONED", 3)
    for _ in range(3):
        assert execute(gate.wait, {}, timeout=0.01).kind == "timeout"
    r = execute(add, {"a": 1, "b": 1})
    assert not r.ok and r.kind == "timeout" and "3 earlier tool calls timed out" in r.error
    gate.set()
    deadline = time.monotonic() + 5
    while abandoned_calls() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert execute(add, {"a": 1, "b": 1}).value == 2


def test_a_process_that_met_a_hung_tool_exits_at_once():
    code = ("import time\nfrom tokmem_agent.executor import execute\n"
            "def hang():\n    time.sleep(120)\n"
            "r = execute(hang, {}, timeout=0.1)\nprint(r.kind)\n")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    took = time.monotonic() - t0
    assert out.returncode == 0 and out.stdout.strip() == "timeout", out.stderr
    assert took < 30  # the hung call sleeps 120 s; interpreter start and import are the rest


def test_exceptions_async_tools_and_order():
    res = execute_many([(add, {"a": 1, "b": 2}), (boom, {}), (async_add, {"a": 3, "b": 4})], timeout=5)
    assert [r.kind for r in res] == ["ok", "exception", "ok"]
    assert res[0].value == 3 and res[2].value == 7 and res[1].error == "ValueError: bad input"
    seq = execute_many([(add, {"a": 1, "b": 1}), (add, {"a": 2, "b": 2})], parallel=False)
    assert [r.value for r in seq] == [2, 4]


def test_parallel_calls_share_one_timeout_budget(gate):
    t0 = time.perf_counter()
    res = execute_many([(gate.wait, {}), (gate.wait, {}), (add, {"a": 0, "b": 0})], timeout=0.1)
    assert [r.kind for r in res] == ["timeout", "timeout", "ok"]
    assert time.perf_counter() - t0 < 1.0  # concurrent: not 2 x the timeout


async def test_async_tools_run_on_the_callers_loop_and_time_out_there():
    import asyncio

    loop = asyncio.get_running_loop()
    seen = []

    async def where() -> str:
        seen.append(asyncio.get_running_loop() is loop)
        return "ok"

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            seen.append("cancelled")

    res = await asyncio.to_thread(execute_many, [(where, {}), (forever, {})], timeout=0.2, loop=loop)
    assert res[0].ok and res[0].value == "ok" and seen[0] is True
    assert not res[1].ok and res[1].kind == "timeout"
    for _ in range(50):  # the timed-out coroutine is cancelled on the caller's loop
        if "cancelled" in seen:
            break
        await asyncio.sleep(0.01)
    assert "cancelled" in seen
    # without a loop an async tool still runs (on its own thread, under asyncio.run)
    assert execute(where, {}).ok and seen[-1] is False
