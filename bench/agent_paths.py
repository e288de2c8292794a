"""The two ways ``bench/agent_quality.py`` runs a request (``--path``), each giving the same :class:`Run`.

* ``agent``: ``TokMemAgent(tm, fns, config).run(query)``, the controller's own loop (KV cache kept across
  tool rounds, tools run by the controller's executor);
* ``langchain``: LangChain's real agent, ``create_agent(ChatTokMem(tm=tm, controller_config=config),
  tools=as_langchain_tools(fns))`` invoked with the query as one HumanMessage: each model turn re-encodes the
  conversation, LangChain's ToolNode runs the tools, a tool that raises comes back to the model as an error
  ToolMessage (as in the agent path) instead of ending the run.

Both paths report the calls in the agent path's format (:func:`call_entry`), so the scoring cannot tell them
apart: name, the parsed arguments, status ("ok" or why the call failed: ``exception`` for an error
ToolMessage, ``empty`` / ``invalid_json`` / ``schema`` / ``token_budget`` for an ``invalid_tool_call``), the
result (the tool's real return value, captured by wrapping the functions; else the ToolMessage parsed as
JSON) and the error text. Differences that remain are the paths' own: LangChain's budget is per turn
(``max_tokens`` = ``ControllerConfig.max_new_tokens``) where the agent's is per run, it has no repeat
suppression (``stop_repeats``) and it ends a run on a turn whose calls are all invalid. The recursion limit
(:func:`recursion_limit`) stops it after ``max_steps`` tool rounds, as the agent does (outcome ``max_steps``,
no answer).
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: runs one query with the record's fresh tools
Runner = Callable[[list[Callable[..., Any]], str], "Run"]
PATHS = ("agent", "langchain")


@dataclass
class Run:
    """What one path did with a request: the calls in order (:func:`call_entry` dicts), the final answer, how
    the run ended and, on the agent path, the memory-token mass at the first decision."""

    pred: list[dict[str, Any]]
    answer: str
    outcome: str
    call_prob: float | None = None


def call_entry(name: str, arguments: dict[str, Any] | None, status: str, result: Any = None,
               error: str | None = None) -> dict[str, Any]:
    """One predicted call as both paths report it (the result as JSON, only when the call is ok)."""
    return {"name": name, "arguments": arguments, "status": status,
            "result": json.loads(json.dumps(result, default=str)) if status == "ok" else None, "error": error}


# ----- the agent path ---------------------------------------------------------------------------------------
def step_calls(steps: list[Any]) -> list[dict[str, Any]]:
    """RunResult steps as plain predicted calls."""
    return [call_entry(s.tool, s.arguments, s.status, s.result, s.error) for s in steps]


def agent_path(tm: Any, config: Any = None) -> Runner:
    """``TokMemAgent(tm, fns, config).run(query)``."""
    def run(fns: list[Callable[..., Any]], query: str) -> Run:
        from tokmem_agent.agent import TokMemAgent

        r = TokMemAgent(tm, fns, config).run(query)
        return Run(step_calls(r.steps), r.answer, r.outcome, r.call_prob)

    return run


# ----- the LangChain path -----------------------------------------------------------------------------------
class Returns:
    """Wraps tool functions so that what they really return is kept, to report it instead of the text the
    model saw. Thread-safe (ToolNode runs a turn's calls in threads)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], Any]] = []
        self._lock = threading.Lock()

    def wrap(self, fns: Sequence[Callable[..., Any]]) -> list[Callable[..., Any]]:
        """The functions, recording each return (same name, signature and docstring: same schema)."""
        def one(fn: Callable[..., Any]) -> Callable[..., Any]:
            sig = inspect.signature(fn)

            @functools.wraps(fn)
            def recorded(*args: Any, **kwargs: Any) -> Any:
                value = fn(*args, **kwargs)
                with self._lock:
                    self.calls.append((fn.__name__, dict(sig.bind(*args, **kwargs).arguments), value))
                return value
            return recorded
        return [one(f) for f in fns]

    def take(self, name: str, arguments: dict[str, Any]) -> tuple[bool, Any]:
        """(found, value) of the first unclaimed return of ``name`` with these arguments (else of ``name``)."""
        with self._lock:
            for same_args in (True, False):
                for i, (n, kw, value) in enumerate(self.calls):
                    if n == name and (kw == arguments or not same_args):
                        del self.calls[i]
                        return True, value
        return False, None


def message_text(message: Any) -> str:
    """The text of a message (text blocks joined when the content is a list)."""
    content = message.content
    if isinstance(content, str):
        return content.strip()
    return "".join(b if isinstance(b, str) else b.get("text", "") for b in content
                   if isinstance(b, str) or b.get("type") == "text").strip()


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


def _invalid_status(call: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The agent path's status of a call ChatTokMem reported invalid, and its arguments if they parse."""
    from tokmem_agent.validation import parse_arguments

    if "max_arg_tokens" in (call.get("error") or ""):
        return "token_budget", None
    parsed = parse_arguments(call.get("args") or "")
    return (parsed.kind if not parsed.ok else "schema"), parsed.arguments


def message_calls(messages: Sequence[Any], returns: Returns | None = None) -> list[dict[str, Any]]:
    """The calls of a LangChain conversation in the agent path's format, in order: each AIMessage's tool
    calls with their ToolMessage (status "error" → ``exception``; no ToolMessage → not counted), then its
    ``invalid_tool_calls`` (never run)."""
    from langchain_core.messages import AIMessage, ToolMessage

    answers = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    pred = []
    for m in messages:
        if not isinstance(m, AIMessage):
            continue
        for c in m.tool_calls:
            tm = answers.get(c["id"])
            if tm is None:
                continue
            if tm.status == "error":
                pred.append(call_entry(c["name"], c["args"], "exception", error=message_text(tm)))
                continue
            found, value = returns.take(c["name"], c["args"]) if returns is not None else (False, None)
            pred.append(call_entry(c["name"], c["args"], "ok", value if found else _parsed(tm.content)))
        for c in m.invalid_tool_calls:
            status, arguments = _invalid_status(c)
            pred.append(call_entry(c.get("name") or "", arguments, status, error=c.get("error")))
    return pred


def langchain_run(messages: Sequence[Any], returns: Returns | None = None, stopped: bool = False) -> Run:
    """A LangChain conversation as a :class:`Run`: the answer is the text of the final AIMessage when the run
    ended on it without calls; ``stopped``: the recursion limit ended it (outcome ``max_steps``, no answer)."""
    from langchain_core.messages import AIMessage

    pred = message_calls(messages, returns)
    last = messages[-1] if messages else None
    if stopped or not isinstance(last, AIMessage) or last.tool_calls:
        return Run(pred, "", "max_steps" if stopped else "no_answer")
    if last.invalid_tool_calls:
        outcome = "invalid_call"
    else:
        outcome = "token_budget" if last.response_metadata.get("finish_reason") == "length" else "answer"
    return Run(pred, message_text(last), outcome)


def recursion_limit(config: Any = None) -> int:
    """LangGraph steps for ``max_steps`` tool rounds (a model and a tool step each) and no further turn."""
    from tokmem_agent import ControllerConfig

    return 2 * (config or ControllerConfig()).max_steps


def langchain_path(tm: Any, config: Any = None, llm: Any = None) -> Runner:
    """``create_agent(ChatTokMem(tm=tm, controller_config=config), tools=as_langchain_tools(fns))``.

    llm: that chat model already built (tests script its controller).
    """
    from langchain.agents import create_agent
    from langgraph.errors import GraphRecursionError

    from tokmem_agent.integrations.langchain import ChatTokMem, as_langchain_tools

    llm = llm or ChatTokMem(tm=tm, controller_config=config)
    limit = recursion_limit(config)

    def run(fns: list[Callable[..., Any]], query: str) -> Run:
        returns = Returns()
        agent = create_agent(llm, tools=as_langchain_tools(returns.wrap(fns)))
        messages: list[Any] = []
        try:  # streamed, to keep the conversation when the recursion limit stops it
            for state in agent.stream({"messages": [("user", query)]}, {"recursion_limit": limit},
                                      stream_mode="values"):
                messages = state["messages"]
        except GraphRecursionError:
            return langchain_run(messages, returns, stopped=True)
        return langchain_run(messages, returns)

    return run


def make_runner(path: str, tm: Any, config: Any = None) -> Runner:
    """The runner of ``--path``."""
    return {"agent": agent_path, "langchain": langchain_path}[path](tm, config)
