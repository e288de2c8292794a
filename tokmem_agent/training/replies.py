"""No-call traces: requests that need no tool, answered in plain text.

The paper's data has none, so a bank trained on it calls a tool for every message ("Good morning!" →
``add_todo``). Two things fix that here:

* a trace with no calls (``answers: []``) trains the model to answer in text; when it has no ``response``,
  :func:`fill_replies` writes the *frozen backbone's own reply* (its LM head alone: no memory tokens) as the
  target, so learning "do not call" does not also teach the adaptation round to answer differently;
* :func:`generic_negatives` draws messages that no tool serves (greetings, thanks, small talk, general
  questions) from a pool shipped with the package; :attr:`TrainConfig.no_call_share` mixes them in.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from ..traces import Trace

if TYPE_CHECKING:
    from .protocol import MemoryModel

log = logging.getLogger("tokmem_agent")
NEGATIVE_SOURCE = "tokmem-no-call"
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


@lru_cache(maxsize=1)
def no_call_pool() -> tuple[str, ...]:
    """The shipped messages that need no tool (``tokmem_agent/data/no_call.txt``), in file order."""
    text = resources.files("tokmem_agent").joinpath("data/no_call.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def generic_negatives(n: int, *, seed: int = 0, exclude: set[str] | frozenset[str] = frozenset()) -> list[Trace]:
    """Up to ``n`` no-call traces drawn (seeded, without repeats) from :func:`no_call_pool`.

    ``exclude``: messages not to draw (e.g. ones that already occur in the user's data). The traces have no
    ``response``: :func:`fill_replies` gives them the backbone's own replies.
    """
    pool = [q for q in no_call_pool() if q not in exclude]
    random.Random(seed).shuffle(pool)
    return [Trace(id=f"no-call-{i:03d}", messages=[{"role": "user", "content": q}], calls=[], tools=[],
                  results=[], between=[], response=None, query=q, source=NEGATIVE_SOURCE)
            for i, q in enumerate(pool[:max(n, 0)])]


def needs_reply(trace: Trace) -> bool:
    """A no-call trace without a target text."""
    return not trace.calls and not (trace.response or "").strip()


#: target for a reply that is only a loop (small models' greedy replies sometimes are)
FALLBACK_REPLY = "I'm not sure about that."


def trim_reply(text: str, complete: bool) -> str:
    """A clean training target from a greedy reply: cut by the token budget, it ends at its last full sentence
    (so the model learns to stop); a sentence said again is dropped; a reply that still loops (a word group
    repeated 3+ times) becomes :data:`FALLBACK_REPLY`."""
    text = text.strip()
    if not complete:
        ends = [m.end() for m in _SENTENCE_END.finditer(text)]
        text = text[:ends[-1]] if ends else text
    kept: list[str] = []
    for sent in re.split(r"(?<=[.!?])\s+", text):
        if sent and sent not in kept:
            kept.append(sent)
    text = " ".join(kept)
    words = text.lower().split()
    grams = [" ".join(words[i:i + 3]) for i in range(len(words) - 2)]
    stutter = any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2))
    if stutter or (grams and max(grams.count(g) for g in set(grams)) >= 3):
        return FALLBACK_REPLY
    return text


def fill_replies(tm: MemoryModel, traces: Sequence[Trace], *, max_new_tokens: int = 48, batch_size: int = 16,
                 progress: bool = True) -> list[Trace]:
    """``traces`` with every no-call trace that lacks a response given the backbone's own greedy reply.

    Call this before any LoRA round is enabled, so the replies are the base model's. The replies are generated
    by the backbone alone (its LM head has no memory tokens), in left-padded batches. Other traces are returned
    unchanged.
    """
    import torch

    todo = [i for i, t in enumerate(traces) if needs_reply(t)]
    if not todo:
        return list(traces)
    out = list(traces)
    base, stop, pad = tm.model.base, tm.chat.stop_ids, tm.pad_id
    device = next(base.parameters()).device
    bar = tqdm(total=len(todo), desc="backbone replies", unit="reply", disable=not progress, leave=False)
    for s in range(0, len(todo), batch_size):
        chunk = todo[s:s + batch_size]
        prompts = [tm.chat.prompt_ids(out[i].messages) for i in chunk]
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)  # [B, T] left-padded
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        with torch.no_grad():
            gen = base.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                eos_token_id=sorted(stop), pad_token_id=pad)[:, width:]  # [B, new]
        for i, row in zip(chunk, gen.tolist()):
            ended = next((k for k, x in enumerate(row) if x in stop), None)
            text = tm.tokenizer.decode(row[:ended] if ended is not None else row, skip_special_tokens=True)
            out[i] = replace(out[i], response=trim_reply(text, ended is not None) or "Okay.")
        bar.update(len(chunk))
    bar.close()
    log.info("wrote the backbone's own replies for %d no-call traces", len(todo))
    return out
