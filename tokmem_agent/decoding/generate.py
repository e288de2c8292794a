"""Incremental greedy decoding over a :class:`TokMemModel` with a KV cache.

:class:`DecodeSession` is the piece the controller drives: feed ids (prompt, generated tokens, tool turns),
read the next-token logits. :func:`greedy_generate` is the plain paper-protocol loop (full-vocabulary
argmax, memory tokens included) built on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from ..model.wrapped import TokMemModel

#: A logits processor: (generated ids so far, logits [V+N]) → logits [V+N].
LogitsProcessor = Callable[[Sequence[int], torch.Tensor], torch.Tensor]


class DecodeSession:
    """One sequence being decoded: the ids so far and their KV cache."""

    def __init__(self, model: TokMemModel):
        self.model = model
        self.ids: list[int] = []
        self.cache = DynamicCache(config=model.base.config)
        self._last_logits: torch.Tensor | None = None  # [V+N]

    @torch.no_grad()
    def feed(self, ids: Sequence[int]) -> torch.Tensor:
        """Append ids (prefill or one step); return the float32 logits [V+N] after the last one."""
        if not ids:
            if self._last_logits is None:
                raise ValueError("feed() needs at least one id on an empty session")
            return self._last_logits
        x = torch.tensor([list(ids)], dtype=torch.long, device=self.model.device)  # [1, T]
        h, self.cache = self.model.hidden(x, past_key_values=self.cache, use_cache=True)  # [1, T, d]
        self.ids.extend(ids)
        self._last_logits = self.model.logits(h[0, -1])  # [V+N]
        return self._last_logits

    @torch.no_grad()
    def rollback(self, n: int) -> torch.Tensor:
        """Forget the last ``n`` fed ids (KV cache cropped); return the logits after the new last id."""
        if n <= 0:
            return self.logits
        keep = len(self.ids) - n
        if keep < 1:
            raise ValueError(f"cannot roll back {n} of {len(self.ids)} ids")
        last = self.ids[keep - 1]
        self.cache.crop(-(n + 1))  # keep the first keep-1 positions (transformers 5: negative = drop)
        del self.ids[keep - 1:]
        return self.feed([last])

    @property
    def logits(self) -> torch.Tensor:
        if self._last_logits is None:
            raise ValueError("nothing fed yet")
        return self._last_logits


@dataclass
class Generation:
    """Output of :func:`greedy_generate`."""

    prompt_ids: list[int]
    ids: list[int]  # generated ids (stop token included if one was produced)
    stopped: bool  # a stop token ended it (False: max_new_tokens reached)
    timings: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def greedy_generate(model: TokMemModel, prompt_ids: Sequence[int], *, max_new_tokens: int,
                    stop_ids: Iterable[int], processors: Sequence[LogitsProcessor] = ()) -> Generation:
    """Greedy decoding from ``prompt_ids`` until a stop id or ``max_new_tokens``."""
    import time

    session = DecodeSession(model)
    t0 = time.perf_counter()
    logits = session.feed(prompt_ids)
    t1 = time.perf_counter()
    row = _Greedy(set(stop_ids), processors, max_new_tokens)  # the same decisions as a batched row
    while (tok := row.step(logits)) is not None and not row.done:
        logits = session.feed([tok])
    t2 = time.perf_counter()
    return Generation(list(prompt_ids), row.out, row.stopped, {"prefill_s": t1 - t0, "decode_s": t2 - t1})


class _Greedy:
    """One row of :func:`greedy_generate_many` (a :class:`~.schedule.RowDecoder`)."""

    def __init__(self, stop: set[int], processors: Sequence[LogitsProcessor], max_new_tokens: int):
        self.stop, self.processors, self.max_new_tokens = stop, processors, max_new_tokens
        self.out: list[int] = []
        self.done = self.stopped = False

    def step(self, logits: torch.Tensor) -> int | None:
        if self.done or len(self.out) >= self.max_new_tokens:
            self.done = True
            return None
        for proc in self.processors:
            logits = proc(self.out, logits)
        nxt = int(torch.argmax(logits))
        self.out.append(nxt)
        if nxt in self.stop:
            self.stopped = self.done = True
            return None
        self.done = len(self.out) >= self.max_new_tokens  # the last id needs no feed
        return nxt

    def turn(self) -> _Greedy:
        return self


@torch.no_grad()
def greedy_generate_many(model: TokMemModel, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                         stop_ids: Iterable[int], processors: Sequence[LogitsProcessor] = (),
                         batch_size: int = 8) -> list[Generation]:
    """:func:`greedy_generate` for several prompts, up to ``batch_size`` decoded together with continuous
    batching (:func:`~.schedule.run_jobs` on a :class:`~.batch.BatchSession`); the same ids as one at a
    time (to float tolerance). ``processors`` are shared by all rows (they must not keep per-row state)."""
    import time

    from .batch import BatchSession
    from .schedule import run_jobs

    stop = set(stop_ids)
    out: list[Generation | None] = [None] * len(prompts)
    admitted: dict[int, tuple[float, float]] = {}  # prompt -> (when its prefill began, prefill seconds)

    def on_admit(i: int, seconds: float) -> None:
        admitted[i] = (time.perf_counter() - seconds, seconds)

    def on_turn(i: int, row: _Greedy) -> None:
        t0, prefill = admitted[i]
        out[i] = Generation(list(prompts[i]), row.out, row.stopped,
                            {"prefill_s": prefill, "decode_s": time.perf_counter() - t0 - prefill})

    if prompts:
        run_jobs(lambda _logits, _spec: _Greedy(stop, processors, max_new_tokens),
                 BatchSession(model, 0), ((p, None) for p in prompts), on_turn, width=batch_size,
                 on_admit=on_admit)
    return [g for g in out if g is not None]


def mask_memory_tokens(model: TokMemModel, allowed: Iterable[str] | None) -> LogitsProcessor:
    """A processor that masks the memory tokens of tools not in ``allowed`` (None = allow all)."""
    if allowed is None:
        return lambda _ids, logits: logits
    keep = {model.memory_id(n) for n in allowed}
    blocked = torch.tensor([i for i in range(model.vocab_size, model.total_vocab) if i not in keep], dtype=torch.long,
                           device=model.device)

    def proc(_ids: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
        if len(blocked):
            logits = logits.clone()
            logits[blocked] = float("-inf")
        return logits

    return proc
