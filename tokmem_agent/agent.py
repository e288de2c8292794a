"""TokMemAgent: a trained memory bank + callables = an agent that runs multi-step tool chains.

>>> agent = TokMemAgent.from_pretrained("banks/my-tools", tools=[add, convert_currency, add_todo])
>>> result = agent.run("Convert 120 USD to EUR, add 15% tip and put a todo to pay it on Friday")
>>> result.answer, [s.tool for s in result.steps]
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .config import ControllerConfig
from .decoding.controller import Controller, ToolChoice
from .decoding.runlog import RunResult, Step
from .registry import Tool
from .tokmem import ModelLike, TokMem
from .traces import Message


class TokMemAgent:
    """Runs a :class:`TokMem` model with the decoding controller and real tools."""

    def __init__(self, tm: TokMem, tools: Iterable[Any] = (), config: ControllerConfig | None = None):
        self.tm = tm
        self.controller = Controller(tm, config)
        self._lock = threading.Lock()  # one generation at a time per model
        self.bind(tools)

    @classmethod
    def from_pretrained(cls, bank: str | os.PathLike[str], tools: Iterable[Any] = (), *, model: ModelLike = None,
                        config: ControllerConfig | None = None, **overrides: Any) -> TokMemAgent:
        """Load a bank and bind tools (functions, pydantic models, dicts or Tools with callables)."""
        if overrides:
            config = ControllerConfig(**{**(config.__dict__ if config else {}), **overrides})
        return cls(TokMem.load(bank, model), tools, config)

    @property
    def config(self) -> ControllerConfig:
        return self.controller.config

    def bind(self, tools: Iterable[Any]) -> list[Tool]:
        """Attach callables to the bank's tools; each must have a memory token with the same schema."""
        bound = self.tm.require_tools(tools)
        return bound

    def register(self, tools: Iterable[Any], traces: Sequence[Any] | None = None, **kwargs: Any) -> Any:
        """Train memory tokens for new tools (see :meth:`TokMem.register`) and bind their callables."""
        tools = list(tools)
        with self._lock:
            result = self.tm.register(tools, traces, **kwargs)
        self.bind(tools)
        return result

    @property
    def tools(self) -> list[Tool]:
        """Tools with a callable (what :meth:`run` may call by default)."""
        return [t for t in (self.tm.tools.get(n) for n in self.tm.tool_names) if t.fn is not None]

    def run(self, query: str | Sequence[Message], *, tools: Iterable[Any] | None = None,
            tool_choice: ToolChoice = None, on_step: Callable[[Step], None] | None = None) -> RunResult:
        """Answer a request, calling tools until the model gives a final answer (see :class:`RunResult`).

        tools: restrict (or extend, with callables) the tools of this run; default: every bound tool.
        tool_choice: None/"auto", "none", "any"/"required" or a tool name (applies to the first turn).
        on_step: called with each call's :class:`Step` as soon as it has run.
        """
        return self._run(query, tools, tool_choice, on_step, None)

    def run_many(self, queries: Sequence[str | Sequence[Message]], *, tools: Iterable[Any] | None = None,
                 tool_choice: ToolChoice = None, on_step: Callable[[int, Step], None] | None = None,
                 batch_size: int | None = None) -> list[RunResult]:
        """:meth:`run` for several requests, decoded together (one forward pass per step for up to
        ``batch_size`` of them, default ``ControllerConfig.batch_size``; each goes on calling tools until its
        own answer, then the next request takes its row). The results, in the order of ``queries``, equal
        :meth:`run` on each alone (greedy decoding; float tolerance). on_step: called with (index, step)."""
        active = self._active(tools)
        with self._lock:
            return self.controller.run_many([self.tm.messages_for(q) for q in queries], active,
                                            tool_choice=tool_choice, on_step=on_step, batch_size=batch_size)

    async def arun(self, query: str | Sequence[Message], *, tools: Iterable[Any] | None = None,
                   tool_choice: ToolChoice = None, on_step: Callable[[Step], None] | None = None) -> RunResult:
        """:meth:`run` from async code: decoding runs in a worker thread (the event loop stays free) and
        ``async def`` tools run on the caller's loop, so they may use its sessions and locks."""
        import asyncio

        loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self._run, query, tools, tool_choice, on_step, loop)

    def _active(self, tools: Iterable[Any] | None) -> list[Tool]:
        """The tools of one run: ``tools`` bound to the bank, or every bound tool."""
        return self.bind(tools) if tools is not None else self.tools

    def _run(self, query: Any, tools: Any, tool_choice: ToolChoice, on_step: Any, loop: Any) -> RunResult:
        active = self._active(tools)
        with self._lock:
            return self.controller.run(self.tm.messages_for(query), active, tool_choice=tool_choice,
                                       on_step=on_step, loop=loop)
