"""One generated turn of :class:`ChatTokMem`: the decode-session watcher that streams text, call and argument
events as the controller generates, and those events as LangChain chunks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk

from .messages import _new_call_id


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


#: the end of a stream's events
_DONE = object()


def _event_chunk(ev: tuple, single: bool) -> ChatGenerationChunk | None:
    """One decoding event as a chunk (None: dropped, a later call when ``parallel_tool_calls`` is False)."""
    if ev[0] == "text":  # (BaseChatModel reports each chunk to the callbacks itself)
        return ChatGenerationChunk(message=AIMessageChunk(content=ev[1]))
    if single and ev[1] > 0:
        return None
    if ev[0] == "call":
        _, index, name, call_id = ev
        start = tool_call_chunk(name=name, args="", id=call_id, index=index)
        return ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[start]))
    _, index, delta = ev
    return ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[tool_call_chunk(args=delta,
                                                                                                      index=index)]))
