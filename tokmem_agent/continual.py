"""Continual memory: register new tools on a trained bank, replace a changed one, forget one.

Only the rows of the tools being registered train; every other row and the backbone stay bit-identical,
and after every step the new rows are rescaled to the mean norm of the old ones (paper eq. 5-6) so they
do not out-shout them. The bank's anchors (and anchors taken from replay traces) add a loss that keeps the
new rows below the old tools where those were called (:mod:`tokmem_agent.training.anchors`). A tool given
without traces gets synthetic ones (:mod:`tokmem_agent.synth`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .config import BIAS_KEYS, CALIBRATION_KEYS, ZERO_DATA_KEY, RegisterConfig
from .errors import ConfigError, DataFormatError
from .registry import Tool
from .synth import synthesize_traces
from .traces import Trace
from .training.anchors import Anchors
from .training.trainer import train

if TYPE_CHECKING:
    from .training.protocol import MemoryModel
    from .training.trainer import TrainResult

log = logging.getLogger("tokmem_agent")


@dataclass
class RegisterResult:
    """What a registration did."""

    added: list[str]
    replaced: list[str]
    unchanged: list[str]
    n_traces: int = 0
    n_synthetic: int = 0
    #: synthetic traces whose tool was run on their arguments (they carry its result and an answer)
    n_ran: int = 0
    n_replay: int = 0
    n_anchors: int = 0
    seconds: float = 0.0
    train: TrainResult | None = field(default=None, repr=False)
    #: a few synthetic requests per tool that got them (what the new token was taught)
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: why a tool's schema is thin to synthesise from (missing descriptions, free-form strings only)
    warnings: list[str] = field(default_factory=list)
    #: the logit bias calibrated for each tool registered from its schema alone (RegisterConfig.calibrate_bias)
    row_bias: dict[str, float] = field(default_factory=dict)
    #: the lead given to text after the result of each of those run for real results (the same switch)
    answer_bias: dict[str, float] = field(default_factory=dict)

    @property
    def trained(self) -> list[str]:
        return [*self.added, *self.replaced]


def thin_schema(tool: Any) -> list[str]:
    """What makes a tool's schema thin to synthesise requests from (empty when it is fine)."""
    problems = []
    if len((tool.description or "").split()) < 3:
        problems.append("no description (a sentence on what it does makes better synthetic requests)")
    props = (tool.parameters or {}).get("properties") or {}
    bare = [n for n, spec in props.items() if not (isinstance(spec, dict) and spec.get("description"))]
    if bare:
        problems.append(f"parameters without a description: {', '.join(bare)}")
    free = [n for n, spec in props.items() if isinstance(spec, dict) and spec.get("type") == "string"
            and not any(k in spec for k in ("enum", "format", "pattern", "examples"))]
    if props and len(free) == len(props):
        problems.append("only free-form string parameters (no enum, format or examples to draw values from)")
    return problems


def register(tm: MemoryModel, tools: Iterable[Any], traces: Sequence[Trace] | None = None, *,
             replay: Sequence[Trace] = (), config: RegisterConfig | None = None, retrain: bool = False,
             out_dir: str | os.PathLike[str] | None = None) -> RegisterResult:
    """Give ``tools`` memory tokens and train only them (see :meth:`TokMem.register`)."""
    cfg = config or RegisterConfig()
    if cfg.train.lora is not None:  # RegisterConfig refuses it too; this catches a later assignment
        raise ConfigError("registering trains only the new memory rows: RegisterConfig.train.lora must be None")
    t0 = time.perf_counter()
    given = [Tool.coerce(t) for t in tools]
    dup = sorted({t.name for t in given if sum(u.name == t.name for u in given) > 1})
    if dup:
        raise ConfigError(f"tools given twice: {dup}")
    added, replaced, unchanged = [], [], []
    for t in given:
        if t.name not in tm.bank.names:
            added.append(t)
        elif not tm.tools.get(t.name).same_schema(t):
            replaced.append(t)
        else:
            (replaced if retrain else unchanged).append(t)
            if t.fn is not None:
                tm.tools.get(t.name).fn = t.fn
    targets = [*added, *replaced]
    result = RegisterResult([t.name for t in added], [t.name for t in replaced], [t.name for t in unchanged])
    if not targets:
        return result

    target_names = {t.name for t in targets}
    traces = list(traces or [])
    known = set(tm.bank.names) | target_names
    for tr in traces:
        for i, c in enumerate(tr.calls):
            if c.name not in known:
                raise DataFormatError(f"trace '{tr.id}' calls '{c.name}', which is neither in the bank nor being "
                                      "registered; register that tool too", field=f"answers[{i}].name")
    covered = {c.name for tr in traces for c in tr.calls}
    paraphrase = tm.paraphraser() if cfg.paraphrase else None
    synthetic = [tr for t in targets if t.name not in covered
                 for tr in synthesize_traces(t, cfg.synth_per_tool, seed=cfg.train.seed, paraphrase=paraphrase,
                                             run=_may_run(t, cfg), dialogue_rate=cfg.synth_dialogue_rate,
                                             field_rate=cfg.synth_field_rate)]
    replay_sel = _cap_replay(replay, set(tm.bank.names) - target_names, cfg.replay_per_tool)
    for t in targets:
        if t.name in covered:
            continue
        own = sorted((tr for tr in synthetic if tr.calls and tr.calls[0].name == t.name),
                     key=lambda tr: len(tr.messages) > 1)  # one-message requests first: they read best
        result.examples[t.name] = [" / ".join(str(m.get("content", "")) for m in tr.messages) for tr in own][:3]
        for problem in thin_schema(t):
            result.warnings.append(f"{t.name}: {problem}")
            log.warning("registering %s from its schema alone: %s", t.name, problem)

    for t in replaced:  # same row index, fresh start from the new description and schema
        tm.tools.register(t, replace=True)
        _reinit_row(tm, t)
    tm.add_tools(added, seed=cfg.train.seed)
    # Schemas the trainer sees come from the registered tools, not from whatever the traces carry.
    defs = [t.to_dict() for t in targets]
    data = [_with_tools(tr, defs) for tr in [*traces, *synthetic]]
    anchors = _anchors(tm, replay_sel, target_names, cfg)
    if not len(anchors) and len(tm.bank) > len(targets) and cfg.train.anchor_weight > 0:
        log.warning("this bank keeps no anchors and no replay traces were given: the new tokens are trained "
                    "without examples of old requests and may take some of them (pass replay traces of the old "
                    "tools, or retrain the bank, which keeps anchors)")
    log.info("registering %s: %d traces (%d synthetic), %d anchors (%d from replay)", sorted(target_names),
             len(data), len(synthetic), len(anchors), len(replay_sel))
    if any(k in tm.meta for k in CALIBRATION_KEYS):
        result.warnings.append("the bank's call thresholds were calibrated before these tokens existed and are "
                               "dropped (argmax decisions now): run `tokmem calibrate` on held-out requests again")
    # chain reading: traces with results also teach the answer after the new tool's result
    res = train(tm, data, cfg.train, active_tools=sorted(target_names), out_dir=out_dir, anchors=anchors,
                reading="chain")
    result.n_traces, result.n_synthetic, result.n_replay = len(data), len(synthetic), len(replay_sel)
    result.n_ran = sum(tr.results is not None for tr in synthetic)
    zero = set(tm.meta.get(ZERO_DATA_KEY, [])) - target_names  # trained again: with real traces or synthetic
    tm.meta[ZERO_DATA_KEY] = sorted(zero | {t.name for t in targets if t.name not in covered})
    schema_only = [t for t in targets if t.name not in covered]
    if cfg.calibrate_bias and schema_only:
        from .row_bias import calibrate_answer_biases, calibrate_row_biases

        seen = {tr.query for tr in synthetic}  # held-out points are requests the training did not use
        result.row_bias = calibrate_row_biases(tm, schema_only, per_tool=cfg.bias_per_tool,
                                               seed=cfg.train.seed + 7919, exclude=seen)
        runnable = [t for t in schema_only if _may_run(t, cfg)]
        if runnable:
            result.answer_bias = calibrate_answer_biases(tm, runnable, per_tool=cfg.bias_per_tool,
                                                         seed=cfg.train.seed + 7919, exclude=seen)
    result.n_anchors = len(anchors)
    result.train = res
    result.seconds = time.perf_counter() - t0
    tm.meta.setdefault("versions", []).append({
        "version": len(tm.meta.get("versions", [])) + 1, "added": result.added, "replaced": result.replaced,
        "traces": len(traces), "synthetic": len(synthetic), "replay": len(replay_sel), "anchors": len(anchors),
        "seconds": round(result.seconds, 1)})
    if out_dir is not None:
        tm.save(out_dir)  # the trainer saved before the version note; write it again (atomic)
    return result


def _may_run(tool: Tool, cfg: RegisterConfig) -> bool:
    return tool.fn is not None and (cfg.run_tools == "always" or (cfg.run_tools == "read_only" and tool.read_only))


def forget(tm: MemoryModel, names: Iterable[str]) -> list[str]:
    """Remove tools' rows and registry entries; the other rows keep their values (indices shift)."""
    names = list(names)
    for n in names:
        tm.bank.index(n)  # raises ToolNotFoundError naming the bank's tools
    for n in names:
        tm.bank.remove(n)
        if n in tm.tools:
            tm.tools.remove(n)
    if tm.anchors is not None:
        tm.anchors = tm.anchors.without(names)
    tm.meta.setdefault("versions", []).append({"version": len(tm.meta.get("versions", [])) + 1, "removed": names})
    if ZERO_DATA_KEY in tm.meta:
        tm.meta[ZERO_DATA_KEY] = [n for n in tm.meta[ZERO_DATA_KEY] if n not in names]
    for key in BIAS_KEYS:
        if tm.meta.get(key):
            tm.meta[key] = {n: b for n, b in tm.meta[key].items() if n not in names}
    tm.drop_calibration()  # calibrated with the removed tokens
    return names


def _anchors(tm: MemoryModel, replay: Sequence[Trace], targets: set[str], cfg: RegisterConfig) -> Anchors:
    """The bank's anchors of the tools not being trained, plus anchors taken from the replay traces."""
    d = tm.bank.hidden_size
    stored = tm.anchors.without(targets) if tm.anchors is not None else Anchors.empty(d)
    if not replay or cfg.train.anchor_weight == 0:
        return stored
    return stored.plus(tm.anchors_from(replay, per_tool=max(cfg.replay_per_tool, 1),
                                       tools=set(tm.bank.names) - targets, max_length=cfg.train.max_length,
                                       batch_size=cfg.train.batch_size))


@torch.no_grad()
def _reinit_row(tm: MemoryModel, tool: Tool) -> None:
    i = tm.bank.index(tool.name)
    row = tm.initial_rows([tool], seed=0)[0]  # [d]
    for m in tm.bank.matrices():
        m.data[i] = row


def _with_tools(tr: Trace, defs: list[dict[str, Any]]) -> Trace:
    by_name = {d["name"]: d for d in defs}
    tools = [by_name.get(t.get("name"), t) for t in tr.tools]
    tools += [d for d in defs if d["name"] in {c.name for c in tr.calls} and d not in tools]
    return Trace(**{**tr.__dict__, "tools": tools})


def _cap_replay(replay: Sequence[Trace], old: set[str], per_tool: int) -> list[Trace]:
    """At most ``per_tool`` replay traces per old tool, only traces that call old tools only."""
    if per_tool <= 0:
        return []
    counts: dict[str, int] = {}
    out = []
    for tr in replay:
        names = [c.name for c in tr.calls]
        if not names or any(n not in old for n in names):
            continue
        if all(counts.get(n, 0) >= per_tool for n in names):
            continue
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        out.append(tr)
    return out
