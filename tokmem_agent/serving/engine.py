"""The server's decode loop: one thread owns the model and decodes every request's turn with continuous
batching (:func:`~tokmem_agent.decoding.schedule.run_jobs`), fed from a bounded queue.

A request is one assistant turn (the client runs the tools, as with any OpenAI endpoint). Requests that
arrive together are decoded together, up to ``batch_size`` rows; a finished row goes to the next waiting
request at once. Over ``max_queue`` waiting requests :meth:`Engine.submit` raises :class:`Overloaded`
(the server answers 429 with Retry-After) instead of building a backlog. A cancelled request (a client
that went away) leaves the queue, or its row, at the next step. Events reach the caller through
``on_event`` from the engine thread: ``("text", str)``, ``("call", index, name)``, ``("args", index, str)``,
``("done", Turn)`` or ``("error", Exception)``.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..config import ControllerConfig
from ..decoding.controller import Controller
from ..decoding.schedule import WAIT, OneRow, TurnSpec, run_jobs
from ..decoding.turn import Turn, TurnDecoder
from ..errors import TokMemError

if TYPE_CHECKING:
    from ..tokmem import TokMem

log = logging.getLogger("tokmem_agent")

Event = tuple[Any, ...]


class Overloaded(TokMemError):
    """The engine's queue is full: try again later."""


@dataclass
class Request:
    """One turn to decode for a client."""

    prompt: list[int]
    spec: TurnSpec
    on_event: Callable[[Event], None]
    parallel_calls: bool = True
    stream: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()


class Engine:
    """Decodes :class:`Request` turns on a background thread (see the module docstring)."""

    def __init__(self, tm: TokMem, config: ControllerConfig | None = None, *, batch_size: int = 8,
                 max_queue: int = 64):
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be >= 1")
        self.tm = tm
        self.controller = Controller(tm, config)
        self.batch_size, self.max_queue = batch_size, max_queue
        self._queue: collections.deque[Request] = collections.deque()
        self._cv = threading.Condition()
        self._stop = False
        self._pending: TokMem | None = None  # a bank to switch to once the rows in flight are done
        self.swaps = 0
        self.active = 0
        self.served = 0
        self.cancelled = 0  # turns ended early because their client went away
        self._thread = threading.Thread(target=self._loop, name="tokmem-engine", daemon=True)
        self._thread.start()

    # ----- the caller's side ----------------------------------------------------------------------------
    def submit(self, request: Request) -> None:
        """Queue a request (raises :class:`Overloaded` when ``max_queue`` are waiting)."""
        with self._cv:
            if self._stop:
                raise TokMemError("the engine is shut down")
            if len(self._queue) >= self.max_queue:
                raise Overloaded(f"{len(self._queue)} requests are waiting (max_queue {self.max_queue})")
            self._queue.append(request)
            self._cv.notify()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def swap(self, tm: TokMem, timeout: float | None = None) -> bool:
        """Switch to another bank (one with tools registered since): requests in flight finish on the old one,
        requests admitted afterwards use the new one. Waits until the switch happened (or ``timeout``)."""
        with self._cv:
            self._pending = tm
            self._cv.notify_all()
            return self._cv.wait_for(lambda: self._pending is None or self._stop, timeout)

    def _apply_swap(self) -> None:
        with self._cv:
            if self._pending is not None:
                self.tm, self._pending = self._pending, None
                self.controller = Controller(self.tm, self.controller.config)
                self.swaps += 1
                self._cv.notify_all()

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the rows in flight; queued requests get an error event."""
        with self._cv:
            self._stop = True
            pending = list(self._queue)
            self._queue.clear()
            self._cv.notify()
        for r in pending:
            r.on_event(("error", TokMemError("the server is shutting down")))
        self._thread.join(timeout)

    # ----- the engine thread -----------------------------------------------------------------------------
    def _next(self, block: bool) -> Request | None:
        with self._cv:
            while True:
                while self._queue and self._queue[0].cancelled.is_set():
                    self._queue.popleft()
                if self._queue:
                    return self._queue.popleft()
                if not block or self._stop or self._pending is not None:
                    return None
                self._cv.wait(timeout=0.5)

    def _loop(self) -> None:
        while True:
            self._apply_swap()  # between batches: nothing is decoding
            first = self._next(block=True)
            if first is None:
                if self._stop:
                    return
                continue
            admitted: list[Request] = []

            def source(first: Request = first, admitted: list[Request] = admitted) -> Iterator[Any]:
                nxt: Request | None = first
                while True:
                    if nxt is None and self._pending is None:  # a new bank waits: admit nothing more
                        nxt = self._next(block=False)
                    if nxt is None:
                        if self._stop:
                            return
                        yield WAIT
                        continue
                    admitted.append(nxt)
                    yield nxt.prompt, nxt
                    nxt = None

            def new_decoder(logits: torch.Tensor, req: Request) -> _Streaming:
                return _Streaming(self.controller, logits, req)

            def on_turn(j: int, turn: Any, admitted: list[Request] = admitted) -> None:
                self.active -= 1
                self.served += 1
                self.cancelled += admitted[j].cancelled.is_set() and not (turn.ended or turn.out_of_budget)
                admitted[j].on_event(("done", turn))

            def on_admit(j: int, _seconds: float) -> None:
                self.active += 1

            try:
                batch: Any = (OneRow(self.controller.session_factory, self.tm.model) if self.batch_size == 1
                              else _batch(self.tm))
                with torch.inference_mode():
                    run_jobs(new_decoder, batch, source(), on_turn, width=self.batch_size, on_admit=on_admit)
            except Exception as exc:
                log.exception("decoding failed")
                for r in admitted:
                    r.on_event(("error", exc))
                self.active = 0


def _batch(tm: TokMem) -> Any:
    from ..decoding.batch import BatchSession

    return BatchSession(tm.model, 0, pad_id=tm.chat.eot_id)


class _Streaming:
    """A :class:`TurnDecoder` that reports text and argument deltas as they are decoded, stops after the
    first call when parallel calls are off, and ends the turn when its request is cancelled."""

    def __init__(self, ctl: Controller, logits: torch.Tensor, req: Request):
        spec = req.spec
        self.dec = TurnDecoder(ctl, logits, spec.bound, tool_choice=spec.tool_choice, budget=spec.budget,
                               after=spec.after, ground=spec.ground)
        self.req, self.decode = req, ctl.tm.tokenizer.decode
        self.sent_text = ""
        self.sent_args: list[str] = []
        self.done = False

    def step(self, logits: torch.Tensor) -> int | None:
        if self.req.cancelled.is_set():
            self.done = self.dec.done = True
            return None
        dec = self.dec
        n_calls = len(dec.calls)
        tok = dec.step(logits)
        if not self.req.parallel_calls and dec.state == "after":
            dec.done = True  # one call only: the turn ends when its arguments are complete
        self.done = dec.done
        if self.req.stream:
            if len(dec.calls) > n_calls:
                self.sent_args.append("")
                self.req.on_event(("call", len(dec.calls) - 1, dec.calls[-1].tool))
            elif dec.calls:
                self._args(len(dec.calls) - 1, final=False)
            else:
                self._text(final=False)
        return tok

    def _text(self, final: bool) -> None:
        dec = self.dec
        upto = len(dec.text_ids) if final or dec.loop_watch is None else dec.loop_watch.start
        text = self.decode(dec.text_ids[:upto]).strip() if final else self.decode(dec.text_ids[:upto]).lstrip()
        if not final:
            text = text.rstrip()
        if text.endswith("\ufffd") or not text.startswith(self.sent_text):
            return
        if len(text) > len(self.sent_text):
            self.req.on_event(("text", text[len(self.sent_text):]))
            self.sent_text = text

    def _args(self, i: int, final: bool) -> None:
        text = self.decode(self.dec.calls[i].arg_ids)
        text = text.strip() if final else text.lstrip().rstrip()
        if text.endswith("\ufffd") or not text.startswith(self.sent_args[i]):
            return
        if len(text) > len(self.sent_args[i]):
            self.req.on_event(("args", i, text[len(self.sent_args[i]):]))
            self.sent_args[i] = text

    def turn(self) -> Turn:
        turn = self.dec.turn()
        if self.req.stream:  # the rest of what the turn says, after its final clean-up
            if not turn.calls:
                self._text(final=True)
            for i in range(len(turn.calls)):
                self._args(i, final=True)
        return turn
