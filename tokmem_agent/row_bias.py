"""A logit bias per memory row, calibrated after registering tools from their schemas alone
(:attr:`RegisterConfig.calibrate_bias`).

A row trained on synthetic requests only is *timid* on real ones: the old rows were trained (with the
adaptation round) on real traces and answer hand-written requests with larger logits, so "It's 09:30 in
Tokyo — what time is that in New York?" goes to ``convert_currency`` by a logit or two although the new
``convert_timezone`` row is second. Its logit scale is a free parameter no loss fixed: the new row's cross
entropy on synthetic data is already small, and the anchors only push it *below* old rows.

So after training, each zero-data row gets an additive logit bias ``b`` placed like an SVM's offset, in the
middle of the gap between

* **positives** — held-out synthetic requests for the tool (a seed the training did not use): the margin of
  its logit over the best other choice there (any other row, or text);
* **negatives** — where it must lose: the bank's anchors of other tools (real requests for old tools, their
  gold row's logit), the shipped no-call messages (text's logit), and the other new tools' held-out requests.

``b`` maximises balanced accuracy (positives and negatives weigh the same, however many anchors there are)
and sits in the middle of the best interval; it is clipped to ±:data:`MAX_BIAS`. The biases are stored in
the bank's meta (:data:`~tokmem_agent.config.ROW_BIAS_KEY`) and added to the rows' logits in the turns that
answer a user message (call or answer, which tool, the call-probability mass of a calibrated threshold); not
after a tool result, where "call again or answer" is another decision the bias was not fitted to (a
negative one would otherwise come from the new tool being called again after its own result). Training a
row again drops its bias. Measured in docs/benchmarks.md (session 17, issue 17).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .config import ANSWER_BIAS_KEY, ROW_BIAS_KEY
from .decoding.generate import DecodeSession
from .executor import serialize
from .synth import synthesize_traces
from .training.replies import no_call_pool

if TYPE_CHECKING:
    from .registry import Tool
    from .training.protocol import MemoryModel

__all__ = ["MAX_BIAS", "calibrate_answer_biases", "calibrate_row_biases", "choose_bias"]

log = logging.getLogger("tokmem_agent")
#: the largest bias either way (logits)
MAX_BIAS = 8.0
#: shipped no-call messages used as negatives
N_NO_CALL = 24
#: how far below the closest negative's cut a positive bias stays (logits)
KEEP_OUT = 0.5
#: the lead (logits) the text keeps over the memory tokens at the held-out answer points after a result
ANSWER_MARGIN = 1.0


def choose_bias(pos: Sequence[float], neg: Sequence[float]) -> float:
    """The offset ``b`` for margins ``pos`` (right when ``m + b > 0``) and ``neg`` (right when ``m + b < 0``):
    best balanced accuracy, the middle of the best interval, clipped to ±:data:`MAX_BIAS`; 0 without both.
    Never so high that it takes a negative it did not take already: at most :data:`KEEP_OUT` below the
    closest one's cut (balanced accuracy weighs 8 synthetic positives as much as 200 real old requests, and
    once bought a BMI row "23 kg, how many pounds?")."""
    if not pos or not neg:
        return 0.0
    return float(min(_balanced(pos, neg), max(0.0, -max(neg) - KEEP_OUT)))


def _balanced(pos: Sequence[float], neg: Sequence[float]) -> float:
    """:func:`choose_bias` before the cap on negatives."""
    # the count of right answers only changes where b crosses -m; try a point inside every interval
    cuts = sorted({-m for m in [*pos, *neg]})
    cands = [cuts[0] - 1.0, *[(a + b) / 2 for a, b in itertools.pairwise(cuts)], cuts[-1] + 1.0]

    def score(b: float) -> float:
        return (sum(m + b > 0 for m in pos) / len(pos) + sum(m + b < 0 for m in neg) / len(neg)) / 2

    scores = [score(c) for c in cands]
    best = max(scores)
    idx = [i for i, s in enumerate(scores) if s >= best - 1e-12]
    # the best region runs between the cuts around its first and last candidates
    lo = cuts[idx[0] - 1] if idx[0] > 0 else -math.inf
    hi = cuts[idx[-1]] if idx[-1] < len(cuts) else math.inf
    if math.isinf(lo) and math.isinf(hi):
        mid = 0.0
    elif math.isinf(lo):
        mid = min(0.0, hi - 1.0)
    elif math.isinf(hi):
        mid = max(0.0, lo + 1.0)
    else:
        mid = (lo + hi) / 2
    if score(mid) < best - 1e-12:  # the best region is not contiguous: take its first interval's middle
        mid = cands[idx[0]]
    return float(max(-MAX_BIAS, min(MAX_BIAS, mid)))


#: what a decision point keeps: the best text logit, and the rows' logits [N] (CPU; only compared)
Point = tuple[float, torch.Tensor]


@torch.no_grad()
def _point(tm: MemoryModel, messages: list[dict[str, Any]]) -> Point:
    """The decision after ``messages`` (a prompt for the assistant's turn)."""
    session = DecodeSession(tm.model)
    session.feed(tm.chat.prompt_ids(messages))
    logits = session.logits.float().cpu()  # [V+N]
    v = tm.model.vocab_size
    return float(logits[:v].max()), logits[v:].clone()  # the rows alone: the vocabulary part is let go


def _bias_vector(tm: MemoryModel) -> torch.Tensor:
    """The stored row biases as [N] (0 for rows without one)."""
    stored = tm.meta.get(ROW_BIAS_KEY) or {}
    return torch.tensor([float(stored.get(n, 0.0)) for n in tm.bank.names], device="cpu")


def calibrate_row_biases(tm: MemoryModel, tools: Sequence[Tool], *, per_tool: int = 8, seed: int = 0,
                         exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, float]:
    """Calibrate a bias for each of ``tools`` (registered from their schemas, rows already trained), store
    them in ``tm.meta`` and return them. ``per_tool`` held-out synthetic requests each (``seed`` differs from
    the training's; ``exclude``: queries the training used)."""
    names = list(tm.bank.names)
    idx = {t.name: names.index(t.name) for t in tools}
    bias = _bias_vector(tm)  # [N]: other rows keep theirs
    for t in tools:
        bias[idx[t.name]] = 0.0

    def margin(point: Point, j: int) -> float:
        """Row ``j``'s logit over the best other choice at ``point``: text, or another row (with its bias)."""
        text, rows = point
        others = rows + bias  # [N]
        others[j] = -math.inf
        return float(rows[j]) - max(text, float(others.max()))

    held: dict[str, list[Point]] = {}
    for t in tools:
        traces = [tr for tr in synthesize_traces(t, per_tool * 2, seed=seed) if tr.query not in exclude][:per_tool]
        held[t.name] = [_point(tm, list(tr.messages)) for tr in traces]
    no_call = [_point(tm, [{"role": "user", "content": q}]) for q in no_call_pool()[:N_NO_CALL]]
    anchors = tm.anchors.without({t.name for t in tools}) if tm.anchors is not None else None
    anchor_margins: dict[str, list[float]] = {t.name: [] for t in tools}
    if anchors is not None and len(anchors):
        with torch.no_grad():  # the rows' logits at the anchors, h · M_outᵀ (as TokMemModel.logits computes them)
            h = anchors.h.to(device=tm.bank.steer.device, dtype=torch.float32)  # [K, d]
            rows = (h @ tm.bank.address.float().t()).cpu()  # [K, N]
        gold = torch.tensor([names.index(g) for g in anchors.tools], device="cpu")  # [K]
        gold_logit = rows[torch.arange(len(gold), device="cpu"), gold] + bias[gold]  # [K]
        for t in tools:
            anchor_margins[t.name] = (rows[:, idx[t.name]] - gold_logit).tolist()

    out: dict[str, float] = {}
    for t in tools:
        j = idx[t.name]
        pos = [margin(p, j) for p in held[t.name]]
        kinds = {"anchors": anchor_margins[t.name],
                 "no-call": [margin(p, j) for p in no_call],
                 "other new tools": [margin(p, j) for o in tools if o.name != t.name for p in held[o.name]]}
        neg = [m for ms in kinds.values() for m in ms]
        out[t.name] = round(choose_bias(pos, neg), 3)
        closest = {k: round(max(ms), 2) for k, ms in kinds.items() if ms}
        log.info("row bias of %s: %+.2f (%d held-out requests, closest %+.2f; %d negatives, closest by kind %s)",
                 t.name, out[t.name], len(pos), min(pos, default=math.nan), len(neg), closest)
    tm.meta[ROW_BIAS_KEY] = {**(tm.meta.get(ROW_BIAS_KEY) or {}), **out}
    return out


def calibrate_answer_biases(tm: MemoryModel, tools: Sequence[Tool], *, per_tool: int = 8, seed: int = 0,
                            exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, float]:
    """For each of ``tools`` (registered from their schemas and run for real results), the least bias on the
    text — against every memory token — in the turn right after the tool's result that makes held-out
    synthetic traces answer there by :data:`ANSWER_MARGIN` (0 when they all do already; at most
    :data:`MAX_BIAS`); stored in ``tm.meta`` and returned.

    Registration taught each such tool to be answered after its result (its synthetic traces are single
    calls with an answer), but the decision there is made by a backbone trained on the old tools' chains:
    after a BMI it called ``convert_units`` with the BMI as kilograms. Only positives exist (no synthetic
    trace chains a new tool into another), so the bias is the smallest that makes them right: a real chain
    starting with such a tool still runs when the model wants the next call by more than that.
    """
    out: dict[str, float] = {}
    for t in tools:
        traces = [tr for tr in synthesize_traces(t, per_tool * 2, seed=seed, run=True)
                  if tr.results is not None and tr.query not in exclude][:per_tool]
        margins = []
        for tr in traces:
            call = tr.calls[0]
            convo = [*tr.messages, {"role": "assistant", "content": "", "calls": [call]},
                     {"role": "tool", "name": call.name, "content": serialize(tr.results[0])}]
            text, rows = _point(tm, convo)
            margins.append(text - float(rows.max()))
        if not margins:
            continue
        out[t.name] = round(min(MAX_BIAS, max(0.0, ANSWER_MARGIN - min(margins))), 3)
        log.info("answer bias of %s: %+.2f (%d held-out results, closest text lead %+.2f)", t.name, out[t.name],
                 len(margins), min(margins))
    if out:
        tm.meta[ANSWER_BIAS_KEY] = {**(tm.meta.get(ANSWER_BIAS_KEY) or {}), **out}
    return out

