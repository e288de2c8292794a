"""Calibrate the call-or-answer decision on held-out requests.

At the first token of a turn that answers a user message the model either emits a memory token (call a
tool) or text (answer). Plain argmax compares the best memory token with the best text token; a small
model trained mostly on calls then calls for greetings and small talk. Instead the controller can call
only when the *mass* of the bound tools' memory tokens, ``p_call``, reaches a threshold
(:attr:`ControllerConfig.call_threshold`). This module picks that threshold on labelled held-out requests
(records with calls, and records with ``answers: []`` that need none): one prefill per record, no decoding.

The same holds after a tool result: call again (go on with a chain) or answer. A model trained on chains
that go on after a result may go on where the request is done (``add_todo`` then an unasked
``list_todos``), or stop early. That decision gets its own threshold
(:attr:`ControllerConfig.continue_threshold`), calibrated on the points after each result of held-out
traces with ``results``.

The call threshold maximises balanced accuracy (the mean of "call" recall on requests that need a tool and
"answer" recall on requests that need none): how many held-out requests need no tool is the calibration
set's choice, not the users', so neither side may win by being more numerous. The go-on threshold maximises
plain accuracy: its points are every step of real chains, in their natural mix, and a wrong step breaks a
task whichever way it is wrong. Ties go to the middle of the best interval. The result, with precision/recall of "call" at the threshold and at plain
argmax, is stored in the bank's ``meta`` (``call_threshold``, ``continue_threshold``, ``call_calibration``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import DataFormatError
from ..executor import serialize
from ..traces import Message, Trace, last_role
from .generate import DecodeSession

if TYPE_CHECKING:
    from ..tokmem import TokMem


@dataclass
class DecisionStats:
    """Precision/recall of "call" for one decision rule on labelled requests."""

    n_call: int  # requests that need a tool
    n_no_call: int  # requests that need none
    true_calls: int
    false_calls: int

    @property
    def recall(self) -> float:
        """Share of requests needing a tool that get a call."""
        return self.true_calls / self.n_call if self.n_call else float("nan")

    @property
    def precision(self) -> float:
        """Share of calls made on requests that need a tool."""
        made = self.true_calls + self.false_calls
        return self.true_calls / made if made else float("nan")

    @property
    def no_call_rate(self) -> float:
        """Share of requests needing no tool that get no call."""
        return 1 - self.false_calls / self.n_no_call if self.n_no_call else float("nan")

    @property
    def balanced_accuracy(self) -> float:
        return (self.recall + self.no_call_rate) / 2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(recall=_r(self.recall), precision=_r(self.precision), no_call_rate=_r(self.no_call_rate))
        return d


@dataclass
class ThresholdFit:
    """A calibrated threshold and how its decision does on the calibration set."""

    threshold: float
    at_threshold: DecisionStats
    at_argmax: DecisionStats

    def to_meta(self) -> dict[str, Any]:
        return {"threshold": _r(self.threshold), "at_threshold": self.at_threshold.to_dict(),
                "at_argmax": self.at_argmax.to_dict()}

    def summary(self, positive: str = "call", negative: str = "no-call") -> str:
        t, a = self.at_threshold, self.at_argmax
        return (f"threshold {self.threshold:.4f} on {t.n_call} {positive} + {t.n_no_call} {negative} points: "
                f"precision {t.precision:.3f} recall {t.recall:.3f}, {negative} {t.no_call_rate:.3f} "
                f"(argmax: precision {a.precision:.3f} recall {a.recall:.3f}, {negative} {a.no_call_rate:.3f})")


@dataclass
class Calibration:
    """The two thresholded decisions: after a user message (call or answer) and after a tool result
    (call again or answer). None where the data had no such decision points of both kinds."""

    call: ThresholdFit | None
    go_on: ThresholdFit | None

    def summary(self) -> str:
        lines = []
        if self.call is not None:
            lines.append("call after a user message:   " + self.call.summary("call", "no-call"))
        if self.go_on is not None:
            lines.append("call again after a result:   " + self.go_on.summary("go-on", "stop"))
        return "\n".join(lines)


def _r(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


#: (conversation up to a decision, whether a call is right there)
Point = tuple[list[Message], bool]


def decision_points(traces: Sequence[Trace], max_result_chars: int = 2000) -> dict[str, list[Point]]:
    """The call decisions in held-out traces, by what they follow (``"user"`` or ``"tool"``).

    After the user turn: a call is right iff the trace has calls. With ``results``, after each result (fed as
    the controller feeds it): a call is right iff another call follows. Stops at a ``between`` turn that
    holds an assistant message (the next decision is then that report, not a call).
    """
    points: dict[str, list[Point]] = {"user": [], "tool": []}
    for t in traces:
        points["user"].append((list(t.messages), bool(t.calls)))
        if not t.calls or t.results is None or len(t.results) < len(t.calls):
            continue
        msgs: list[Message] = list(t.messages)
        between = t.between or []
        for i, call in enumerate(t.calls):
            msgs += [{"role": "assistant", "content": "", "calls": [call]},
                     {"role": "tool", "name": call.name, "content": serialize(t.results[i], max_result_chars)}]
            extra = between[i] if i < len(between) else []
            if any(m.get("role") == "assistant" for m in extra):
                break
            msgs += extra
            role = last_role(msgs)
            if role is not None:
                points[role].append((list(msgs), i < len(t.calls) - 1))
    return points


def first_decisions(tm: TokMem, points: Sequence[Point], *, progress: bool = False,
                    desc: str = "call decisions", after: str = "user") -> list[tuple[float, bool, bool]]:
    """For each point: (p_call there, whether a call is right, whether argmax calls). ``after``: what the
    points follow, "user" or "tool" (registered rows' calibrated biases apply after a user message only)."""
    from tqdm.auto import tqdm

    from .controller import Controller

    ctl = Controller(tm)
    names = tm.tool_names
    model = tm.model
    bias = ctl._memory_bias(set(names), rows=after != "tool")
    out = []
    for msgs, label in tqdm(points, desc=desc, unit="point", disable=not progress, leave=False):
        session = DecodeSession(model)
        session.feed(tm.chat.prompt_ids(msgs))
        logits = session.logits  # [V+N]
        p = ctl.call_probability(logits, names, bias=bias)
        out.append((p, label, model.is_memory(int(torch.argmax(logits + bias)))))
    return out


def stats(decisions: Sequence[tuple[float, bool, bool]], threshold: float | None) -> DecisionStats:
    """How a rule does: call when p_call >= threshold (None: when argmax calls)."""
    called = [(p >= threshold) if threshold is not None else am for p, _, am in decisions]
    gold = [g for _, g, _ in decisions]
    return DecisionStats(n_call=sum(gold), n_no_call=len(gold) - sum(gold),
                         true_calls=sum(c and g for c, g in zip(called, gold)),
                         false_calls=sum(c and not g for c, g in zip(called, gold)))


def _score(decisions: Sequence[tuple[float, bool, bool]], threshold: float, objective: str) -> float:
    st = stats(decisions, threshold)
    if objective == "balanced":
        return st.balanced_accuracy
    return 1 - (st.false_calls + st.n_call - st.true_calls) / len(decisions)  # plain accuracy


def choose_threshold(decisions: Sequence[tuple[float, bool, bool]], objective: str = "balanced") -> float:
    """The threshold with the best ``objective`` ("balanced" accuracy, or plain "accuracy"), in the middle
    of the best interval (in log-odds)."""
    n_call = sum(g for _, g, _ in decisions)
    if n_call == 0 or n_call == len(decisions):
        raise DataFormatError("calibrating the call threshold needs held-out requests with calls and requests "
                              f"without (answers: []); got {n_call} with and {len(decisions) - n_call} without")
    ps = sorted({p for p, _, _ in decisions})
    # candidate thresholds: each observed p (calls at p >= t), and just above the largest
    cands = ps + [min(1.0, ps[-1] + 1e-6)]
    scored = [(_score(decisions, t, objective), i) for i, t in enumerate(cands)]
    best = max(sc for sc, _ in scored)
    idx = [i for sc, i in scored if sc >= best - 1e-12]
    lo_i, hi_i = idx[0], idx[-1]
    # candidate i stands for every threshold in (ps[i-1], ps[i]]: the best region runs from the largest p
    # below the first best candidate to the last best candidate
    lo = ps[lo_i - 1] if lo_i > 0 else 0.0
    hi = cands[hi_i]

    def logit(x: float) -> float:
        x = min(max(x, 1e-9), 1 - 1e-9)
        return math.log(x / (1 - x))

    mid = 1 / (1 + math.exp(-(logit(lo) + logit(hi)) / 2))
    # keep the middle inside the region that scores best (it can leave it when the region is not contiguous)
    return mid if _score(decisions, mid, objective) >= best - 1e-12 else hi


def fit(decisions: Sequence[tuple[float, bool, bool]], objective: str = "balanced") -> ThresholdFit:
    threshold = choose_threshold(decisions, objective)
    return ThresholdFit(threshold, stats(decisions, threshold), stats(decisions, None))


def calibrate_call_threshold(tm: TokMem, traces: Sequence[Trace], *, progress: bool = True) -> Calibration:
    """Pick both thresholds on held-out ``traces`` and store them in ``tm.meta``.

    The call threshold needs traces with calls and traces without (``answers: []``); the go-on threshold
    needs traces with ``results`` where some have more than one call (it is skipped when there are none).
    """
    unknown = sorted({c.name for t in traces for c in t.calls} - set(tm.tool_names))
    if unknown:
        raise DataFormatError(f"held-out traces call tools the bank has no token for: {', '.join(unknown[:5])}")
    points = decision_points(traces)
    call = fit(first_decisions(tm, points["user"], progress=progress, desc="calibrating: call or answer"))
    after = points["tool"]
    go_on = None
    if 0 < sum(lab for _, lab in after) < len(after):
        go_on = fit(first_decisions(tm, after, progress=progress, desc="calibrating: go on or answer", after="tool"),
                    "accuracy")
    tm.meta["call_threshold"] = call.threshold
    tm.meta["call_calibration"] = {"call": call.to_meta(), "go_on": go_on.to_meta() if go_on else None}
    if go_on is not None:
        tm.meta["continue_threshold"] = go_on.threshold
    else:
        tm.meta.pop("continue_threshold", None)
    return Calibration(call, go_on)


def no_call_traces(path: str | Path) -> list[Trace]:
    """Requests that need no tool from a text file, one per line ('#' lines and blank lines skipped)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataFormatError(f"cannot read no-call messages: {exc}", path=str(p)) from None
    out = [Trace(id=f"{p.stem}-{i}", messages=[{"role": "user", "content": line.strip()}], calls=[],
                 query=line.strip(), source="no-call")
           for i, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise DataFormatError("no messages (one per line) in the file", path=str(p))
    return out
