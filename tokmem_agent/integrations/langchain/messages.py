"""LangChain messages and tool choices ↔ the library's, and the per-model lock and auto-registry."""

from __future__ import annotations

import json
import logging
import threading
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from ...traces import Call, Message

log = logging.getLogger("tokmem_agent")


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
