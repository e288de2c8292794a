"""Continuous batching: the turns of many jobs decoded together, at most ``width`` rows at a time.

A *job* is a prompt and the turns that follow it (an eval record: one turn; an agent conversation: turns
with tool results fed between them). Every step feeds each decoding row its next token in one forward pass
of a :class:`~.batch.BatchSession`. When a row's turn ends, ``on_turn`` says what the job does next: feed a
tool turn and decode again, decode the turn again after forgetting it, or finish. A finished row leaves the
batch at once (:meth:`BatchSession.keep`) and the next waiting job takes its place
(:meth:`BatchSession.add`, its prompt prefilled alone), so no row waits for the batch's longest turn.
Greedy decoding per row, so every job's turns equal those of a batch of one (to float tolerance).

``rows_factory`` is a :class:`~.batch.BatchSession`-like object; :class:`OneRow` adapts a single
:class:`~.generate.DecodeSession` (``Controller.session_factory``) for width 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from .grounding import Grounding
from .turn import ToolChoice, Turn, TurnDecoder


@dataclass
class TurnSpec:
    """How to decode a job's next turn (the arguments of :class:`TurnDecoder`)."""

    bound: Sequence[str]
    tool_choice: ToolChoice = None
    budget: int | None = None
    after: str | None = None
    #: what the turn may take from its conversation (:func:`.grounding.grounding_for`), or None
    ground: Grounding | None = None


@dataclass
class Next:
    """What a job does after a turn: feed ``feed`` (a tool turn), or with ``redo`` forget the turn's ids
    (its fed ids are rolled back), then decode a turn as ``spec`` (a :class:`TurnSpec`) says."""

    spec: Any
    feed: Sequence[int] = ()
    redo: bool = False


#: What a job source yields when it has no job now but may have later (a server's queue): admission stops
#: for this step, and :func:`run_jobs` returns once its rows are done instead of waiting.
WAIT = object()

#: ``on_turn(job index, turn)`` → :class:`Next`, or None when the job is finished.
OnTurn = Callable[[int, Turn], "Next | None"]


class RowDecoder(Protocol):
    """One row's token decisions (:class:`TurnDecoder` is one): the next id after ``logits``, or None when the
    turn is over without one; ``done`` may also be set after a returned id (fed, then over)."""

    done: bool

    def step(self, logits: torch.Tensor) -> int | None: ...
    def turn(self) -> Any: ...


#: ``new_decoder(logits after the row's last id, spec)`` → the decoder of the row's next turn.
NewDecoder = Callable[[torch.Tensor, Any], RowDecoder]


def turn_decoder(ctl: Any) -> NewDecoder:
    """The controller's turns (:class:`TurnDecoder` for a :class:`TurnSpec`)."""
    return lambda logits, spec: TurnDecoder(ctl, logits, spec.bound, tool_choice=spec.tool_choice,
                                            budget=spec.budget, after=spec.after, ground=spec.ground)


class Rows(Protocol):
    """What the scheduler needs of a batch: :class:`~.batch.BatchSession` has it; :class:`OneRow` for one."""

    rows: int

    def add(self, prompt: Sequence[int]) -> int: ...
    def feed(self, ids: dict[int, Sequence[int]]) -> None: ...
    def logits(self, row: int) -> torch.Tensor: ...
    def rollback(self, row: int, n: int) -> None: ...
    def keep(self, rows: Sequence[int]) -> None: ...


class OneRow:
    """A :class:`DecodeSession` as a batch of at most one row (a new session per job)."""

    def __init__(self, factory: Callable[[Any], Any], model: Any):
        self.factory, self.model = factory, model
        self.session: Any = None  # a DecodeSession (or a test's scripted one)
        self.rows = 0

    def add(self, prompt: Sequence[int]) -> int:
        if self.rows:
            raise ValueError("OneRow holds one sequence at a time")
        self.session = self.factory(self.model)
        self.session.feed(list(prompt))
        self.rows = 1
        return 0

    def feed(self, ids: dict[int, Sequence[int]]) -> None:
        if ids.get(0) and self.session is not None:
            self.session.feed(list(ids[0]))

    def logits(self, row: int) -> torch.Tensor:
        assert self.session is not None
        return self.session.logits

    def rollback(self, row: int, n: int) -> None:
        assert self.session is not None
        self.session.rollback(n)

    def keep(self, rows: Sequence[int]) -> None:
        if not list(rows):
            self.session, self.rows = None, 0


def run_jobs(new_decoder: NewDecoder, batch: Rows, jobs: Iterable[tuple[Sequence[int], Any]], on_turn: OnTurn, *,
             width: int, on_admit: Callable[[int, float], None] | None = None,
             on_feed: Callable[[int, float], None] | None = None) -> None:
    """Decode ``jobs`` (prompt ids, the spec of the first turn) on ``batch`` with at most ``width`` rows at
    once, numbered in order of admission (a source may also yield :data:`WAIT`); ``on_turn`` is called as
    each turn ends, ``on_admit(job, prefill seconds)`` as each joins, ``on_feed(job, seconds)`` for each job whose feed of a step was more than one id (a tool turn)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    pending = iter(jobs)
    count = 0  # jobs admitted so far: the next one's index
    exhausted = False
    slot: dict[int, int] = {}  # job -> its row in the batch
    waiting: dict[int, Any] = {}  # job -> spec of its next turn, which starts after the coming feed
    decoders: dict[int, RowDecoder] = {}
    while True:
        for j, spec in waiting.items():
            decoders[j] = new_decoder(batch.logits(slot[j]), spec)
        waiting = {}
        feeds: dict[int, list[int]] = {}  # job -> ids
        finished: list[int] = []
        for j, dec in list(decoders.items()):
            tok = dec.step(batch.logits(slot[j]))
            if tok is not None:
                feeds[j] = [tok]
            if tok is not None and not dec.done:
                continue
            del decoders[j]  # the turn is over (a returned id with done set is fed first)
            turn = dec.turn()
            nxt = on_turn(j, turn)
            if nxt is None:
                feeds.pop(j, None)
                finished.append(j)
            elif nxt.redo:
                fed = len(turn.ids) - int(turn.ended) - int(feeds.pop(j, None) is not None)
                batch.rollback(slot[j], fed)
                waiting[j] = nxt.spec
            else:
                feeds[j] = feeds.get(j, []) + list(nxt.feed)
                waiting[j] = nxt.spec
        if finished:
            for j in finished:
                del slot[j]
            order = sorted(slot, key=slot.get)  # type: ignore[arg-type]
            batch.keep([slot[j] for j in order])
            slot = {j: i for i, j in enumerate(order)}
        while not exhausted and len(slot) < width:
            try:
                item = next(pending)
            except StopIteration:
                exhausted = True
                break
            if item is WAIT:
                break
            (prompt, spec), j = item, count
            count += 1
            t0 = time.perf_counter()
            slot[j] = batch.add(prompt)
            if on_admit is not None:
                on_admit(j, time.perf_counter() - t0)
            waiting[j] = spec
        if feeds:
            t0 = time.perf_counter()
            batch.feed({slot[j]: ids for j, ids in feeds.items()})
            if on_feed is not None:
                seconds = time.perf_counter() - t0
                for j, ids in feeds.items():
                    if len(ids) > 1:
                        on_feed(j, seconds)
        if not decoders and not waiting:
            return
