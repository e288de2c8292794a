"""LangChain integration: :class:`ChatTokMem` (a tool-calling chat model) and :func:`agent_runnable`.

This is the only module of the package that imports LangChain (``langchain-core``).

>>> from tokmem_agent.integrations.langchain import ChatTokMem
>>> llm = ChatTokMem.from_pretrained("banks/my-tools")          # the model loads on first use
>>> msg = llm.bind_tools([get_weather]).invoke("What's the weather in Paris?")
>>> msg.tool_calls
[{'name': 'get_weather', 'args': {'city': 'Paris'}, 'id': 'call_…', 'type': 'tool_call'}]

Each call to the model generates **one assistant turn** with the decoding controller
(:meth:`Controller.generate_turn`): free text, or memory tokens of bound tools each followed by JSON
arguments (decoded under the tool's schema when ``ControllerConfig.constrained``). LangChain runs the
tools and sends the results back as ``ToolMessage`` s; :func:`lc_tool` / :func:`as_langchain_tools` make
plain functions LangChain tools whose exceptions come back to the model as error results (as in
:class:`TokMemAgent`) instead of ending the run. :func:`agent_runnable` instead wraps
:meth:`TokMemAgent.run`, the controller's own loop (tools executed in-process, KV cache reused).

See docs/langchain.md for the message mapping, ``tool_choice`` semantics and what is not supported.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import queue
import threading
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool, StructuredTool, ToolException, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from ..config import ControllerConfig
from ..errors import ConfigError, ModelMismatchError, TokMemError, ToolNotFoundError
from ..registry import Tool
from ..traces import Call, Message, last_role
from ..validation import check_arguments

if TYPE_CHECKING:
    from ..agent import TokMemAgent
    from ..decoding.controller import Controller
    from ..tokmem import TokMem

log = logging.getLogger("tokmem_agent")

__all__ = ["ChatTokMem", "agent_runnable", "as_langchain_tools", "lc_tool", "to_tokmem_messages",
           "tool_error_middleware", "tool_error_text"]

#: One lock per TokMem: the model (KV caches, memory bank) serves one generation at a time.
_LOCKS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()
_LOAD_LOCK = threading.Lock()
#: Per TokMem: tools given an untrained token by ``auto_register`` (their schema may be replaced).
_AUTO_REGISTERED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _lock_for(tm: Any, preferred: Any = None) -> Any:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(tm)
        if lock is None:
            lock = preferred if preferred is not None else threading.RLock()
            _LOCKS[tm] = lock
        return lock


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


# ----- message mapping ------------------------------------------------------------------------------
def _content_text(content: Any, *, role: str, strict: bool) -> str:
    """Text of a message's content (a string or a list of content blocks)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            kind = block.get("type")
            if kind in ("text", "text-plain") or (kind is None and "text" in block):
                parts.append(str(block.get("text", "")))
            elif kind in ("tool_use", "tool_call", "tool_call_chunk", "invalid_tool_call", "reasoning",
                          "thinking", "server_tool_call", "server_tool_result"):
                continue  # calls come from AIMessage.tool_calls; reasoning is not shown to the model
            elif strict:
                raise ValueError(f"ChatTokMem is text-only: cannot read a {kind!r} content block in a "
                                 f"{role} message")
    return "".join(parts)


def _tool_content(msg: BaseMessage) -> str:
    content = msg.content
    if isinstance(content, str):
        text = content
    elif isinstance(content, list) and all(
            isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text") for b in content):
        text = _content_text(content, role="tool", strict=True)
    else:
        text = json.dumps(content, ensure_ascii=False, default=str)
    if getattr(msg, "status", "success") == "error":
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not (isinstance(parsed, dict) and "error" in parsed):  # the controller's own error format
            text = json.dumps({"error": text}, ensure_ascii=False)
    return text


def to_tokmem_messages(messages: Sequence[BaseMessage],
                       known_tools: Sequence[str] | None = None) -> list[Message]:
    """LangChain messages → the dict messages of :class:`ChatFormat`.

    SystemMessage → system, HumanMessage → user, AIMessage → assistant (its ``tool_calls`` become
    ``calls``), ToolMessage → tool (``name`` from the message or from the matching call; a run of
    ToolMessages is put in the order of the calls they answer, matched by ``tool_call_id``; an
    ``status="error"`` result becomes ``{"error": …}`` as the controller writes failures).
    known_tools: tools with a memory token. A past call of any other tool is rendered as JSON text in
    the assistant turn (there is no token to render it with). None: every call is rendered as a call.
    """
    known = None if known_tools is None else set(known_tools)
    out: list[Message] = []
    order: dict[str, int] = {}  # tool_call_id → position in the last assistant turn
    names: dict[str, str] = {}  # tool_call_id → tool name
    pending: list[tuple[int, int, Message]] = []  # ToolMessages since the last assistant turn

    def flush() -> None:
        out.extend(m for _, _, m in sorted(pending, key=lambda p: (p[0], p[1])))
        pending.clear()

    for msg in messages:
        if isinstance(msg, ToolMessage | FunctionMessage):
            call_id = getattr(msg, "tool_call_id", None)
            name = msg.name or names.get(call_id or "", None)
            tm_msg: Message = {"role": "tool", "content": _tool_content(msg)}
            if name:
                tm_msg["name"] = name
            pending.append((order.get(call_id or "", len(order)), len(pending), tm_msg))
            continue
        flush()
        if isinstance(msg, SystemMessage):
            out.append({"role": "system", "content": _content_text(msg.content, role="system", strict=True)})
        elif isinstance(msg, HumanMessage):
            out.append({"role": "user", "content": _content_text(msg.content, role="user", strict=True)})
        elif isinstance(msg, AIMessage):
            text = _content_text(msg.content, role="assistant", strict=False)
            calls: list[Call] = []
            as_text: list[str] = []
            order, names = {}, {}
            for i, tc in enumerate(msg.tool_calls):
                if tc.get("id"):
                    order[tc["id"]] = i
                    names[tc["id"]] = tc["name"]
                if known is None or tc["name"] in known:
                    calls.append(Call(tc["name"], dict(tc.get("args") or {})))
                else:
                    as_text.append(json.dumps({"name": tc["name"], "arguments": tc.get("args") or {}},
                                              ensure_ascii=False))
            if as_text:
                text = "\n".join([t for t in (text, *as_text) if t])
            m: Message = {"role": "assistant", "content": text}
            if calls:
                m["calls"] = calls
            out.append(m)
        elif isinstance(msg, ChatMessage):
            role = {"human": "user", "ai": "assistant"}.get(msg.role, msg.role)
            out.append({"role": role, "content": _content_text(msg.content, role=role, strict=True)})
        else:
            raise TypeError(f"ChatTokMem cannot read a message of type {type(msg).__name__}")
    flush()
    return out


# ----- tools ------------------------------------------------------------------------------------------
def _choice_name(tool_choice: Any) -> Any:
    if isinstance(tool_choice, dict):
        if isinstance(tool_choice.get("function"), dict):
            return tool_choice["function"].get("name")
        if tool_choice.get("type") in ("tool", "function") and tool_choice.get("name"):
            return tool_choice["name"]
        if tool_choice.get("type") in ("any", "auto", "none", "required"):
            return tool_choice["type"]
        raise ValueError(f"unrecognised tool_choice {tool_choice!r}")
    return tool_choice


def _normalize_tool_choice(tool_choice: Any, names: Sequence[str]) -> str | None:
    """None/"auto" → None; "none"/False → "none"; "any"/"required"/True → "any"; a bound tool's name."""
    choice = _choice_name(tool_choice)
    if choice is None or choice == "auto":
        return None
    if choice is False or choice == "none":
        return "none"
    if choice is True or choice in ("any", "required"):
        if not names:
            raise ValueError("tool_choice forces a tool call but no tools are bound")
        return "any"
    if isinstance(choice, str):
        if choice not in names:
            raise ValueError(f"tool_choice {choice!r} is not one of the bound tools "
                             f"({', '.join(names) or 'none'})")
        return choice
    raise ValueError(f"unrecognised tool_choice {tool_choice!r}")


# ----- one generated turn ---------------------------------------------------------------------------
class _Abort(Exception):
    """Raised inside the decode loop to stop it (stop sequence reached, or the stream was closed)."""


class _Deltas:
    """Growing decoded text → pieces whose concatenation is always a prefix of the final stripped text."""

    def __init__(self, hold: int = 0):
        self.sent = ""
        self.hold = hold  # characters held back (a stop sequence may be starting there)

    def update(self, text: str) -> str:
        if text.endswith("\ufffd"):  # an incomplete UTF-8 character
            return ""
        safe = text.strip()
        if self.hold:
            safe = safe[: max(0, len(safe) - self.hold)]
        if len(safe) <= len(self.sent) or not safe.startswith(self.sent):
            return ""
        delta, self.sent = safe[len(self.sent):], safe
        return delta

    def finish(self, final: str) -> str:
        if not final.startswith(self.sent):  # decoding of a prefix changed (cannot retract what was sent)
            return ""
        delta, self.sent = final[len(self.sent):], final
        return delta


@dataclass
class _CallOut:
    tool: str
    id: str
    text: str = ""
    cut: bool = False
    ids: list[int] = field(default_factory=list)
    sent: bool = False  # streaming: its argument text was sent


@dataclass
class _TurnOut:
    text: str
    calls: list[_CallOut]
    prompt_tokens: int
    generated: int
    finish_reason: str  # stop | length | tool_calls
    text_deltas: _Deltas | None = None  # streaming: what of the text was already sent


class _Watch:
    """Wraps the decode session: sees every generated token as the controller feeds it back.

    Reports text/call/argument deltas to ``sink`` (streaming), applies stop sequences to the text, and
    aborts on request. The controller feeds each chosen token except a final end-of-turn token.
    """

    def __init__(self, inner: Any, tm: Any, stop: Sequence[str], sink: Callable[[tuple], None] | None,
                 cancel: threading.Event | None):
        self.inner, self.tm, self.stop = inner, tm, [s for s in stop if s]
        self.sink, self.cancel = sink, cancel
        self.text_ids: list[int] = []
        self.text = _Deltas(hold=max((len(s) for s in self.stop), default=1) - 1)
        self.calls: list[_CallOut] = []
        self.generated = 0
        self.started = False
        self.stopped_text: str | None = None

    @property
    def logits(self) -> Any:
        return self.inner.logits

    def feed(self, ids: Sequence[int]) -> Any:
        if self.cancel is not None and self.cancel.is_set():
            raise _Abort
        logits = self.inner.feed(ids)
        if not self.started:
            self.started = True  # the prompt
            return logits
        dec, model = self.tm.tokenizer.decode, self.tm.model
        for tok in ids:
            self.generated += 1
            if model.is_memory(tok):
                if self.calls:  # the previous call is complete: send its arguments
                    prev = self.calls[-1]
                    prev.sent = True
                    self._emit(("args", len(self.calls) - 1, dec(prev.ids).strip()))
                call = _CallOut(model.tool_of(tok), _new_call_id())
                self.calls.append(call)
                self._emit(("call", len(self.calls) - 1, call.tool, call.id))
            elif self.calls:
                self.calls[-1].ids.append(tok)
            else:
                self.text_ids.append(tok)
                text = dec(self.text_ids)
                cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
                if cut >= 0:
                    self.stopped_text = text[:cut].strip()
                    raise _Abort
                delta = self.text.update(text)
                if delta:
                    self._emit(("text", delta))
        return logits

    def _emit(self, event: tuple) -> None:
        if self.sink is not None:
            self.sink(event)


# ----- the chat model --------------------------------------------------------------------------------
class ChatTokMem(BaseChatModel):
    """A TokMem model as a LangChain chat model with native tool calling.

    Build it from a saved bank (loaded lazily, on first use), a :class:`TokMem` or a :class:`TokMemAgent`::

        ChatTokMem.from_pretrained("banks/my-tools")
        ChatTokMem(tm=tm)            # or ChatTokMem(agent=agent): shares its controller and its lock

    Tools are chosen by memory tokens, so a bound tool must have one in the bank (same name, same
    argument schema up to descriptions/titles): otherwise ``bind_tools`` raises ToolNotFoundError /
    ModelMismatchError. ``auto_register=True`` instead gives an unknown tool a fresh, **untrained**
    memory token (initialised from its name and description): the model can then be forced to call it
    (``tool_choice``) but will rarely choose it on its own until the token is trained.

    Decoding is greedy; ``temperature`` is accepted for compatibility and only 0/None is honoured.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    tm: Any = Field(default=None, exclude=True)
    """A loaded :class:`TokMem`."""
    agent: Any = Field(default=None, exclude=True)
    """A :class:`TokMemAgent` (its TokMem, controller and lock are used)."""
    bank: str | None = None
    """Path of a saved bank, loaded on first use (see :meth:`from_pretrained`)."""
    base_model: Any = Field(default=None, exclude=True)
    """Base model for ``bank`` (ModelLike: None = the bank's own base model)."""
    model_name: str | None = None
    """Name reported to LangChain/LangSmith (default: the base model's id)."""
    controller_config: Any = Field(default=None, exclude=True)
    """A :class:`ControllerConfig` (argument-token limit, constrained decoding…); not with ``agent``."""
    max_tokens: int | None = None
    """Tokens generated per turn (default: ``ControllerConfig.max_new_tokens``)."""
    temperature: float | None = None
    """Only greedy decoding: 0 or None."""
    stop: list[str] | None = None
    """Stop sequences applied to the generated text (not to tool arguments)."""
    auto_register: bool = False
    """Give bound tools without a memory token a fresh, UNTRAINED token instead of raising."""
    streaming: bool = False
    """Use the streaming path for ``invoke`` (as other LangChain chat models)."""

    _tm_loaded: Any = PrivateAttr(default=None)
    _controller: Any = PrivateAttr(default=None)
    _resolved: dict[str, str] = PrivateAttr(default_factory=dict)
    _bank_model_id: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_sources(self) -> ChatTokMem:
        given = [n for n in ("tm", "agent", "bank") if getattr(self, n) is not None]
        if not given:
            raise ConfigError("ChatTokMem needs a model: ChatTokMem.from_pretrained(bank), "
                              "ChatTokMem(tm=TokMem) or ChatTokMem(agent=TokMemAgent)")
        if len(given) > 1 and not (given == ["tm", "agent"] and self.agent.tm is self.tm):
            raise ConfigError(f"ChatTokMem: pass only one of tm=, agent=, bank= (got {', '.join(given)})")
        if self.agent is not None and self.controller_config is not None:
            raise ConfigError("ChatTokMem: with agent=, the agent's controller config is used; "
                              "do not pass controller_config")
        if self.temperature:
            warnings.warn("ChatTokMem decodes greedily; temperature is ignored", stacklevel=2)
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        return self

    @classmethod
    def from_pretrained(cls, bank: str | os.PathLike[str], *, model: Any = None,
                        config: ControllerConfig | None = None, **kwargs: Any) -> ChatTokMem:
        """A chat model over a saved bank; the bank and its base model load on first use."""
        return cls(bank=os.fspath(bank), base_model=model, controller_config=config, **kwargs)

    # ----- the model (lazy) ---------------------------------------------------------------------------
    @property
    def tokmem(self) -> TokMem:
        """The TokMem (loads the bank on first access)."""
        if self.agent is not None:
            return self.agent.tm
        if self.tm is not None:
            return self.tm
        if self._tm_loaded is None:
            with _LOAD_LOCK:
                if self._tm_loaded is None:
                    from ..tokmem import TokMem

                    self._tm_loaded = TokMem.load(self.bank, self.base_model)
        return self._tm_loaded

    @property
    def controller(self) -> Controller:
        """The decoding controller (tests may set its ``session_factory``)."""
        if self.agent is not None:
            return self.agent.controller
        if self._controller is None:
            tm = self.tokmem
            with _LOAD_LOCK:
                if self._controller is None:
                    from ..decoding.controller import Controller

                    self._controller = Controller(tm, self.controller_config)
        return self._controller

    def _lock(self) -> Any:
        return _lock_for(self.tokmem, getattr(self.agent, "_lock", None))

    def _model_id(self) -> str:
        if self.model_name:
            return self.model_name
        tm = self.agent.tm if self.agent is not None else self.tm if self.tm is not None else self._tm_loaded
        if tm is not None:
            return str(tm.loaded.model_id)
        if self._bank_model_id is None:  # do not load a model just to name it
            try:
                from ..serialization import read_config

                self._bank_model_id = str(read_config(self.bank)["base_model"])
            except (TokMemError, OSError, KeyError):  # reported when loading; a name is not worth failing for
                self._bank_model_id = "tokmem"
        return self._bank_model_id

    # ----- LangChain metadata --------------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "tokmem"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        cfg = self.agent.config if self.agent is not None else (self.controller_config or ControllerConfig())
        return {"model_name": self._model_id(), "bank": self.bank, "max_tokens": self.max_tokens,
                "constrained": cfg.constrained, "max_arg_tokens": cfg.max_arg_tokens,
                "auto_register": self.auto_register}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "tokmem"
        params["ls_model_name"] = kwargs.get("model") or self._model_id()
        params["ls_temperature"] = 0.0
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or [])
        return params

    # ----- tools --------------------------------------------------------------------------------------
    def _format_tool(self, tool: Any) -> dict[str, Any]:
        if isinstance(tool, Tool):
            return tool.to_openai()
        if isinstance(tool, str):  # the name of a tool of the bank
            return self.tokmem.tools.get(tool).to_openai()
        return convert_to_openai_tool(tool)

    def _resolve_tools(self, tools: Sequence[dict[str, Any]]) -> list[str]:
        """Names of the bank tools for bound tool dicts (registers unknown ones with auto_register).

        Call with the model's lock held (registering a tool changes the logit width).
        """
        tm = self.tokmem
        names = []
        for d in tools:
            key = json.dumps(d, sort_keys=True, default=str)
            name = self._resolved.get(key)
            if name is None or name not in tm.bank.names:
                name = self._resolve_one(tm, d)
                self._resolved[key] = name
            names.append(name)
        return names

    def _resolve_one(self, tm: TokMem, d: dict[str, Any]) -> str:
        tool = Tool.from_dict(d)
        if tool.name not in tm.bank.names:
            if not self.auto_register:
                try:
                    tm.require_tools([tool])
                except ToolNotFoundError as exc:
                    raise ToolNotFoundError(f"{exc} Or pass ChatTokMem(auto_register=True) to give it a "
                                            "fresh, untrained token.") from None
            tm.add_tools([tool])
            _AUTO_REGISTERED.setdefault(tm, set()).add(tool.name)
            log.warning("ChatTokMem: tool '%s' got a new UNTRAINED memory token (auto_register=True); "
                        "train it before relying on the model choosing it", tool.name)
            return tool.name
        known = tm.tools.get(tool.name)
        if not known.same_schema(tool):
            if self.auto_register and tool.name in _AUTO_REGISTERED.get(tm, ()):
                # an untrained token learnt no schema: it follows the new one
                tm.tools.register(tool, replace=True)
                return tool.name
            raise ModelMismatchError(
                f"tool '{tool.name}': the bound schema differs from the one its memory token was trained "
                f"with (bank: {json.dumps(known.parameters, sort_keys=True)}; bound: "
                f"{json.dumps(tool.parameters, sort_keys=True)}); bind the bank's version or retrain the "
                "token")
        return tool.name

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (``@tool`` functions, BaseTools, pydantic models, functions, OpenAI/Anthropic dicts,
        :class:`Tool` s or names of bank tools).

        tool_choice: None/"auto" (the model decides), "none" (no call), "any"/"required"/True (must call
        a bound tool), a tool name or ``{"type": "function", "function": {"name": …}}`` (must call it
        first). Raises ToolNotFoundError for a tool without a memory token (unless ``auto_register``)
        and ModelMismatchError when a tool's schema differs from the bank's.
        """
        formatted = [self._format_tool(t) for t in tools]
        with self._lock():
            names = self._resolve_tools(formatted)
        choice = _normalize_tool_choice(tool_choice, names)
        return self.bind(tools=formatted, tool_choice=choice, **kwargs)

    # ----- generation ---------------------------------------------------------------------------------
    def _decode(self, messages: Sequence[BaseMessage], stop: Sequence[str] | None, kwargs: dict[str, Any], *,
                sink: Callable[[tuple], None] | None = None,
                cancel: threading.Event | None = None) -> _TurnOut:
        override = kwargs.get("model")
        if override and override != self._model_id():
            raise ValueError(f"ChatTokMem serves one local model ({self._model_id()}); it cannot switch to "
                             f"{override!r} per call")
        tools = [self._format_tool(t) for t in kwargs.get("tools") or []]
        stop_list = list(stop if stop is not None else self.stop or [])
        tm = self.tokmem
        controller = self.controller
        with self._lock():
            bound = self._resolve_tools(tools)
            choice = _normalize_tool_choice(kwargs.get("tool_choice"), bound) if bound else "none"
            convo = to_tokmem_messages(messages, tm.bank.names)
            prompt = tm.chat.prompt_ids(convo)
            watch = _Watch(controller.session_factory(tm.model), tm, stop_list, sink, cancel)
            watch.feed(prompt)
            budget = self.max_tokens or controller.config.max_new_tokens
            try:
                turn = controller.generate_turn(watch, bound, tool_choice=choice, budget=budget,
                                                after=last_role(convo))
            except _Abort:
                if watch.stopped_text is None:
                    raise
                return _TurnOut(watch.stopped_text, [], len(prompt), watch.generated, "stop", watch.text)
        calls = []
        for i, pc in enumerate(turn.calls):
            out = watch.calls[i] if i < len(watch.calls) else _CallOut(pc.tool, _new_call_id())
            out.text, out.cut = pc.text, pc.cut
            calls.append(out)
        if kwargs.get("parallel_tool_calls") is False:
            calls = calls[:1]
        cut = turn.out_of_budget or any(c.cut for c in calls)
        finish = "length" if cut else "tool_calls" if calls else "stop"
        return _TurnOut(turn.text, calls, len(prompt), turn.generated, finish, watch.text)

    def _tool_calls(self, out: _TurnOut) -> tuple[list[Any], list[Any]]:
        tm = self.tokmem
        limit = self.controller.config.max_arg_tokens
        good, bad = [], []
        for i, c in enumerate(out.calls):
            if c.cut:
                bad.append(invalid_tool_call(name=c.tool, args=c.text, id=c.id,
                                             error=f"arguments exceeded {limit} tokens (max_arg_tokens)"))
                continue
            chk = check_arguments(c.text, tm.tools.get(c.tool).parameters)
            if chk.ok:
                good.append(tool_call(name=c.tool, args=chk.arguments or {}, id=c.id))
            elif out.finish_reason == "length" and i == len(out.calls) - 1:
                bad.append(invalid_tool_call(name=c.tool, args=c.text, id=c.id,
                                             error="the turn's token budget (max_tokens) ran out in the "
                                                   f"arguments: {chk.error}"))
            else:
                bad.append(invalid_tool_call(name=c.tool, args=c.text, id=c.id, error=chk.error))
        return good, bad

    def _metadata(self, out: _TurnOut) -> tuple[UsageMetadata, dict[str, Any]]:
        usage = UsageMetadata(input_tokens=out.prompt_tokens, output_tokens=out.generated,
                              total_tokens=out.prompt_tokens + out.generated)
        meta = {"model_name": self._model_id(), "finish_reason": out.finish_reason}
        return usage, meta

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        out = self._decode(messages, stop, kwargs)
        good, bad = self._tool_calls(out)
        usage, meta = self._metadata(out)
        msg = AIMessage(content=out.text, tool_calls=good, invalid_tool_calls=bad, usage_metadata=usage,
                        response_metadata=meta)
        return ChatResult(generations=[ChatGeneration(message=msg,
                                                      generation_info={"finish_reason": out.finish_reason})])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        """Text as it is generated, token by token. Each call as two ``tool_call_chunks`` merged by index:
        name and id as soon as its memory token is generated, then its whole argument text once the call
        is complete (not piece by piece: LangChain parses streamed arguments leniently, so a call cut short
        would otherwise look valid mid-stream). A last chunk carries usage and ``chunk_position="last"``."""
        events: queue.Queue[Any] = queue.Queue()
        cancel = threading.Event()
        done = object()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["out"] = self._decode(messages, stop, kwargs, sink=events.put, cancel=cancel)
            except BaseException as exc:  # noqa: BLE001  # re-raised in the consumer
                result["error"] = exc
            finally:
                events.put(done)

        worker = threading.Thread(target=work, name="tokmem-stream", daemon=True)
        worker.start()
        single = kwargs.get("parallel_tool_calls") is False
        try:
            while True:
                ev = events.get()
                if ev is done:
                    break
                if ev[0] == "text":  # (BaseChatModel reports each chunk to the callbacks itself)
                    yield ChatGenerationChunk(message=AIMessageChunk(content=ev[1]))
                elif single and ev[1] > 0:
                    continue
                elif ev[0] == "call":
                    _, index, name, call_id = ev
                    start = tool_call_chunk(name=name, args="", id=call_id, index=index)
                    yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[start]))
                else:
                    _, index, delta = ev
                    yield ChatGenerationChunk(message=AIMessageChunk(
                        content="", tool_call_chunks=[tool_call_chunk(args=delta, index=index)]))
        finally:
            cancel.set()
            worker.join()
        if "error" in result:
            raise result["error"]
        out: _TurnOut = result["out"]
        text_rest = out.text_deltas.finish(out.text) if out.text_deltas is not None else out.text
        if text_rest:
            yield ChatGenerationChunk(message=AIMessageChunk(content=text_rest))
        for i, c in enumerate(out.calls):
            if not c.sent:
                yield ChatGenerationChunk(message=AIMessageChunk(
                    content="", tool_call_chunks=[tool_call_chunk(args=c.text, index=i)]))
        usage, meta = self._metadata(out)
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=usage, response_metadata=meta,
                                   chunk_position="last"),
            generation_info={"finish_reason": out.finish_reason})


# ----- tools whose errors go back to the model -----------------------------------------------------
ErrorTypes = bool | type[Exception] | tuple[type[Exception], ...]


def tool_error_text(exc: BaseException) -> str:
    """``"ValueError: message"``: the text :class:`TokMemAgent` reports for a failed call."""
    if isinstance(exc, ToolException) and exc.args and isinstance(exc.args[0], str):
        return exc.args[0]  # already converted (see lc_tool)
    return f"{type(exc).__name__}: {str(exc) or type(exc).__name__}"


def _error_types(handle_errors: ErrorTypes) -> tuple[type[Exception], ...]:
    if handle_errors is True:
        return (Exception,)
    if isinstance(handle_errors, type) and issubclass(handle_errors, Exception):
        return (handle_errors,)
    if isinstance(handle_errors, tuple) and handle_errors and all(
            isinstance(t, type) and issubclass(t, Exception) for t in handle_errors):
        return handle_errors
    raise TypeError(f"handle_errors must be a bool, an Exception type or a tuple of them, got {handle_errors!r}")


def _passthrough() -> tuple[type[BaseException], ...]:
    """Exceptions never turned into results: LangGraph's control flow (``interrupt()``, ``Command``)."""
    try:
        from langgraph.errors import GraphBubbleUp
    except ImportError:  # langchain-core alone: no graph to bubble up to
        return (ToolException,)
    return (ToolException, GraphBubbleUp)


def _as_tool_exception(fn: Callable[..., Any], types: tuple[type[Exception], ...]) -> Callable[..., Any]:
    """``fn`` raising :class:`ToolException` (with :func:`tool_error_text`) for exceptions of ``types``."""
    keep = _passthrough()
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def arun(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except keep:
                raise
            except types as exc:
                raise ToolException(tool_error_text(exc)) from exc

        return arun

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except keep:
            raise
        except types as exc:
            raise ToolException(tool_error_text(exc)) from exc

    return run


def lc_tool(fn: Callable[..., Any] | StructuredTool, *, handle_errors: ErrorTypes = True) -> StructuredTool:
    """A LangChain tool (as ``@tool``) whose exceptions become error results the model sees.

    LangChain only returns :class:`ToolException` to the model, and only from a tool with
    ``handle_tool_error`` set; ``create_agent``'s ToolNode returns argument-validation errors but re-raises
    anything else, ending the run. Here an exception of ``handle_errors`` (True: any ``Exception``; or an
    Exception type / tuple of types; False: plain ``tool(fn)``) is re-raised as ``ToolException`` and the
    tool has ``handle_tool_error=True``: the call gets ``ToolMessage(content="ValueError: …",
    status="error")`` and ChatTokMem shows the model ``{"error": "ValueError: …"}``, as TokMemAgent does.
    Other exceptions, and LangGraph interrupts, propagate. fn: a typed function (sync or async) or a
    StructuredTool (copied; the original is left as it is).
    """
    if isinstance(fn, StructuredTool):
        base = fn
    elif isinstance(fn, BaseTool):
        raise TypeError(f"lc_tool wraps functions and StructuredTools, not {type(fn).__name__}: raise "
                        "ToolException in its _run and set handle_tool_error=True, or use tool_error_middleware()")
    elif callable(fn):
        base = tool(fn)
    else:
        raise TypeError(f"lc_tool needs a function or a StructuredTool, got {type(fn).__name__}")
    if handle_errors is False:
        return base
    types = _error_types(handle_errors)
    update: dict[str, Any] = {"handle_tool_error": True}
    if base.func is not None:
        update["func"] = _as_tool_exception(base.func, types)
    if base.coroutine is not None:
        update["coroutine"] = _as_tool_exception(base.coroutine, types)
    return base.model_copy(update=update)


def as_langchain_tools(fns: Sequence[Callable[..., Any] | StructuredTool], *,
                       handle_errors: ErrorTypes = True) -> list[StructuredTool]:
    """:func:`lc_tool` for each function: ``create_agent(ChatTokMem(...), tools=as_langchain_tools(fns))``."""
    return [lc_tool(f, handle_errors=handle_errors) for f in fns]


def tool_error_middleware(errors: type[Exception] | tuple[type[Exception], ...] = Exception, *,
                          tools: Sequence[Any] | None = None) -> Any:
    """A ``create_agent`` middleware returning tool exceptions to the model, for tools you built yourself.

    LangChain's ``ToolErrorMiddleware`` with :func:`tool_error_text` as the error ToolMessage's content, for
    exceptions of ``errors``; ``tools``: only these (tools or names). Others propagate.
    ``create_agent(llm, tools=[...], middleware=[tool_error_middleware()])``.
    """
    try:
        from langchain.agents.middleware import ToolErrorMiddleware
    except ImportError as exc:
        raise ImportError("tool_error_middleware needs a langchain with ToolErrorMiddleware (1.5.2 has it); "
                          "otherwise build the tools with as_langchain_tools()") from exc
    types = _error_types(errors)

    def on_error(exc: Exception, request: Any) -> str | None:
        return tool_error_text(exc) if isinstance(exc, types) else None

    return ToolErrorMiddleware(on_error, tools=list(tools) if tools is not None else None)


# ----- the controller's own loop as a runnable ------------------------------------------------------
def _agent_input(value: Any, known: Sequence[str]) -> tuple[str | list[Message], Any]:
    """str | {"input"/"query": str} | {"messages": [...]} | messages → (query, tool_choice)."""
    choice = None
    if isinstance(value, dict):
        choice = value.get("tool_choice")
        if "messages" in value:
            value = value["messages"]
        elif "input" in value or "query" in value:
            value = value.get("input", value.get("query"))
        else:
            raise ValueError("agent input dict needs 'input' (a string) or 'messages'")
    if isinstance(value, str):
        return value, choice
    if hasattr(value, "to_messages"):  # a PromptValue
        value = value.to_messages()
    if isinstance(value, BaseMessage):
        value = [value]
    return to_tokmem_messages(convert_to_messages(value), known), choice


def agent_runnable(agent: TokMemAgent) -> Runnable[Any, dict[str, Any]]:
    """A Runnable over :meth:`TokMemAgent.run`: the controller executes the tools itself.

    Input: a string, ``{"input": str}``, ``{"messages": [...]}`` or messages (optionally with
    ``"tool_choice"`` in the dict). Output: :meth:`RunResult.to_dict` (``answer``, ``steps``, ``outcome``,
    ``text``, token counts, ``timings``, ``messages``). Each executed call is also dispatched as a custom
    callback event ``"tokmem_step"`` (visible with ``astream_events``).
    """

    def run(value: Any, config: RunnableConfig) -> dict[str, Any]:
        query, choice = _agent_input(value, agent.tm.tool_names)

        def on_step(step: Any) -> None:
            from langchain_core.callbacks.manager import dispatch_custom_event

            try:
                dispatch_custom_event("tokmem_step", asdict(step), config=config)
            except RuntimeError:  # no parent run: nobody to tell
                log.debug("tokmem_step event not dispatched (no parent run)")

        return agent.run(query, tool_choice=choice, on_step=on_step).to_dict()

    return RunnableLambda(run, name="TokMemAgent")
