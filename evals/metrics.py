"""Metrics and checkers for tool calling: pure functions over :class:`~tokmem_agent.traces.Call` lists.

No torch, no model. Everything here is deterministic and side-effect free (BFCL style: checkers are
pure functions returning ``{"valid", "error", "error_type"}``).

Definitions (see also ``docs/evaluation.md``):

* **Value equality** — :func:`normalize_value` maps a JSON value to a canonical, hashable form; two
  values are equal iff their canonical forms are equal. It is deliberately *not* lenient: types
  matter (``1 != "1"``, ``True != 1``, ``None != ""``), numbers compare as JSON numbers
  (``1 == 1.0``), strings compare exactly after stripping surrounding whitespace (no case folding, no
  punctuation removal), lists are order-sensitive, dicts compare recursively (same keys, equal
  values).
* **Tool P/R/F1** (:func:`tool_prf`) — over tool names as a multiset.
* **Argument P/R/F1** (:func:`arg_prf`) — over ``(key, value)`` pairs, matched only within calls
  aligned by tool name (:func:`align_calls`).
* **Exact match** (:func:`exact_match`) — the whole ordered call list is equal.
* **Tool accuracy** (:func:`tool_accuracy`) — the ordered list of tool names is equal.

Zero-division convention, used everywhere: when there are neither predicted nor gold items,
precision = recall = F1 = 1 (nothing to find, nothing wrongly claimed: e.g. predicting no call for
an irrelevant request). Otherwise a ratio with a zero denominator is 0, and F1 = 0 when P + R = 0.
"""

from __future__ import annotations

import json
import math
import numbers
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from tokmem_agent.traces import Call, Trace

__all__ = [
    "Counts", "Example", "aggregate", "align_calls", "arg_counts", "arg_prf", "check_calls", "exact_match",
    "json_valid", "normalize_value", "prf", "schema_errors", "schema_valid", "score_example", "tool_accuracy",
    "tool_counts", "tool_prf", "values_equal",
]


# ----- value normalisation ------------------------------------------------------------------------------
def normalize_value(value: Any) -> Any:
    """Canonical, hashable form of a JSON value, used for every argument comparison.

    ============================  ===============================================================
    value                         canonical form
    ============================  ===============================================================
    ``True`` / ``False``          ``("bool", value)`` — checked before numbers, so ``True != 1``
    int / float (not bool)        ``("num", value)`` — ``1`` and ``1.0`` are equal, NaN == NaN
    str                           ``("str", value.strip())`` — exact, case-sensitive
    ``None``                      ``("null",)``
    list / tuple                  ``("list", (canonical items…))`` — order-sensitive
    dict                          ``("dict", frozenset((key, canonical value)…))`` — keys exact
    ============================  ===============================================================

    Strings nested in lists and dicts are stripped too; dict keys are not. Anything that is not a JSON
    value raises :class:`TypeError`.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, numbers.Real):
        if isinstance(value, float) and math.isnan(value):
            return ("num", "nan")
        return ("num", value)
    if isinstance(value, str):
        return ("str", value.strip())
    if value is None:
        return ("null",)
    if isinstance(value, (list, tuple)):
        return ("list", tuple(normalize_value(v) for v in value))
    if isinstance(value, Mapping):
        return ("dict", frozenset((k, normalize_value(v)) for k, v in value.items()))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def values_equal(a: Any, b: Any) -> bool:
    """``normalize_value(a) == normalize_value(b)``."""
    return normalize_value(a) == normalize_value(b)


def _kind(value: Any) -> str:
    try:
        return normalize_value(value)[0]
    except TypeError:
        return type(value).__name__


# ----- counts and P/R/F1 --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    """True positives, number of predicted items, number of gold items (summable for micro-averages)."""

    tp: int = 0
    n_pred: int = 0
    n_gold: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.n_pred + other.n_pred, self.n_gold + other.n_gold)


def prf(counts: Counts) -> tuple[float, float, float]:
    """``(precision, recall, f1)`` from counts: P = tp/n_pred, R = tp/n_gold, F1 = 2PR/(P+R).

    If ``n_pred == n_gold == 0`` all three are 1.0; otherwise a zero denominator gives 0.0.
    """
    if counts.n_pred == 0 and counts.n_gold == 0:
        return 1.0, 1.0, 1.0
    p = counts.tp / counts.n_pred if counts.n_pred else 0.0
    r = counts.tp / counts.n_gold if counts.n_gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f1


def tool_counts(pred: Sequence[Call], gold: Sequence[Call]) -> Counts:
    """Multiset overlap of tool names: ``tp = Σ_name min(#pred(name), #gold(name))``."""
    cp, cg = Counter(c.name for c in pred), Counter(c.name for c in gold)
    return Counts(sum((cp & cg).values()), len(pred), len(gold))


def tool_prf(pred: Sequence[Call], gold: Sequence[Call]) -> tuple[float, float, float]:
    """Tool-selection precision, recall, F1 over tool names as a multiset (order ignored).

    E.g. pred ``[a, a, b]``, gold ``[a, c]``: tp = 1, P = 1/3, R = 1/2.
    """
    return prf(tool_counts(pred, gold))


def _arg_matches(p: Call, g: Call) -> int:
    """Number of gold ``(key, value)`` pairs of ``g`` that ``p`` has with an equal value."""
    n = 0
    for k, v in g.arguments.items():
        if k in p.arguments and values_equal(p.arguments[k], v):
            n += 1
    return n


def align_calls(pred: Sequence[Call], gold: Sequence[Call]) -> list[tuple[int, int]]:
    """Pair predicted with gold calls of the same tool name; returns ``(pred_index, gold_index)`` pairs.

    Each call is used at most once; per tool name, ``min(#pred, #gold)`` pairs are made. When a name
    occurs more than once, pairs are chosen greedily: repeatedly take the pair with the most matching
    ``(key, value)`` pairs, ties broken by closeness of their positions among the calls of that name,
    then by position (so identical calls pair up in order). Sorted by gold index.
    """
    pred_by: dict[str, list[int]] = {}
    gold_by: dict[str, list[int]] = {}
    for i, c in enumerate(pred):
        pred_by.setdefault(c.name, []).append(i)
    for j, c in enumerate(gold):
        gold_by.setdefault(c.name, []).append(j)
    pairs: list[tuple[int, int]] = []
    for name, gis in gold_by.items():
        pis = pred_by.get(name, [])
        if not pis:
            continue
        if len(pis) == 1 and len(gis) == 1:
            pairs.append((pis[0], gis[0]))
            continue
        cands = sorted((-_arg_matches(pred[i], gold[j]), abs(ri - rj), ri, rj, i, j)
                       for ri, i in enumerate(pis) for rj, j in enumerate(gis))
        used_p: set[int] = set()
        used_g: set[int] = set()
        for *_, i, j in cands:
            if i not in used_p and j not in used_g:
                pairs.append((i, j))
                used_p.add(i)
                used_g.add(j)
    return sorted(pairs, key=lambda ij: ij[1])


def arg_counts(pred: Sequence[Call], gold: Sequence[Call]) -> Counts:
    """Argument ``(key, value)`` pair counts.

    ``n_pred`` = total number of arguments over all predicted calls, ``n_gold`` likewise over gold
    calls, ``tp`` = over the pairs of :func:`align_calls`, the gold arguments whose key the predicted
    call has with an equal value (:func:`values_equal`). Arguments of unaligned calls (wrong tool,
    extra or missing calls) only count in the denominators.
    """
    tp = sum(_arg_matches(pred[i], gold[j]) for i, j in align_calls(pred, gold))
    return Counts(tp, sum(len(c.arguments) for c in pred), sum(len(c.arguments) for c in gold))


def arg_prf(pred: Sequence[Call], gold: Sequence[Call]) -> tuple[float, float, float]:
    """Argument precision, recall, F1 over ``(key, value)`` pairs within name-aligned calls."""
    return prf(arg_counts(pred, gold))


def _calls_equal(p: Call, g: Call) -> bool:
    return p.name == g.name and normalize_value(p.arguments) == normalize_value(g.arguments)


def exact_match(pred: Sequence[Call], gold: Sequence[Call]) -> bool:
    """The whole ordered call list is equal: same length, and call ``i`` has the same name and the
    same argument keys with equal values (:func:`values_equal`) for every ``i``."""
    return len(pred) == len(gold) and all(_calls_equal(p, g) for p, g in zip(pred, gold))


def tool_accuracy(pred: Sequence[Call], gold: Sequence[Call]) -> bool:
    """The ordered sequence of tool names is equal (arguments ignored)."""
    return [c.name for c in pred] == [c.name for c in gold]


# ----- raw argument texts -------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_args(text: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, TypeError):
        return None
    return obj if isinstance(obj, dict) else None


def json_valid(text: str) -> bool:
    """Whether a raw argument text is a strict JSON *object* (``NaN``/``Infinity`` are rejected, and so are
    arrays, scalars and Python literals such as ``{'a': 1}``). Surrounding whitespace is allowed."""
    return isinstance(text, str) and _parse_args(text) is not None


def _parameters(tool_or_schema: Mapping[str, Any]) -> dict[str, Any]:
    if "parameters" in tool_or_schema and "name" in tool_or_schema:
        return dict(tool_or_schema["parameters"] or {"type": "object"})
    return dict(tool_or_schema)


_VALIDATORS: dict[str, Any] = {}


def _validator(schema: dict[str, Any], allow_extra: bool) -> Any:
    if not allow_extra and schema.get("type") == "object" and "additionalProperties" not in schema:
        schema = {**schema, "additionalProperties": False}
    key = json.dumps(schema, sort_keys=True, default=str)
    v = _VALIDATORS.get(key)
    if v is None:
        if len(_VALIDATORS) > 4096:
            _VALIDATORS.clear()
        v = _VALIDATORS[key] = jsonschema.validators.validator_for(schema)(schema)
    return v


def schema_errors(arguments: str | Mapping[str, Any], tool_or_schema: Mapping[str, Any], *,
                  allow_extra: bool = False) -> list[str]:
    """Messages of everything wrong with ``arguments`` against a tool (``{"name", "parameters"}``) or a bare
    parameters schema; ``[]`` if valid. ``arguments`` may be a raw text (it must then be a JSON object,
    see :func:`json_valid`). Unless ``allow_extra`` or the schema sets ``additionalProperties`` itself,
    undeclared arguments are errors."""
    if isinstance(arguments, str):
        parsed = _parse_args(arguments)
        if parsed is None:
            return ["arguments are not a JSON object"]
        arguments = parsed
    validator = _validator(_parameters(tool_or_schema), allow_extra)
    errs = sorted(validator.iter_errors(dict(arguments)), key=lambda e: list(e.absolute_path))
    return [(f"{'/'.join(map(str, e.absolute_path))}: " if e.absolute_path else "") + e.message for e in errs]


def schema_valid(arguments: str | Mapping[str, Any], tool_or_schema: Mapping[str, Any], *,
                 allow_extra: bool = False) -> bool:
    """Whether ``arguments`` (a dict or a raw text) validate against the tool's parameters schema
    (jsonschema, the schema's own draft; undeclared arguments rejected unless ``allow_extra``)."""
    return not schema_errors(arguments, tool_or_schema, allow_extra=allow_extra)


# ----- BFCL-style checker -------------------------------------------------------------------------------
def _tool_map(tools: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None
              ) -> dict[str, Mapping[str, Any]] | None:
    if tools is None:
        return None
    if isinstance(tools, Mapping):
        return dict(tools)
    out: dict[str, Mapping[str, Any]] = {}
    for t in tools:
        out.setdefault(t["name"], t)
    return out


def check_calls(pred: Sequence[Call], gold: Sequence[Call],
                tools: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None = None, *,
                ordered: bool = True, allow_extra: bool = False) -> dict[str, Any]:
    """Strict checker, BFCL style: ``{"valid": bool, "error": [str, …], "error_type": str}``.

    All problems are listed in ``error``; ``error_type`` is the type of the first one (``""`` when
    valid). Checks, in this order:

    * ``calls:wrong_count`` — different number of calls;
    * ``calls:wrong_tool`` — the multiset of tool names differs; ``calls:wrong_order`` (only when
      ``ordered``) — same multiset, different order;
    * ``tool:unknown`` — a predicted tool is not in ``tools`` (skipped when ``tools`` is None);
    * ``schema:invalid`` — a predicted call's arguments fail its tool's schema (:func:`schema_errors`);
    * per aligned pair (position when the name sequences agree, else :func:`align_calls`):
      ``args:missing``, ``args:unexpected``, ``args:wrong_type`` (the values are of different JSON kinds,
      e.g. ``"1"`` vs ``1``) and ``args:wrong_value``, compared with :func:`values_equal` — no
      leniency for defaults, case or formatting.

    ``valid`` is true iff there is no error, which implies :func:`exact_match` when ``ordered``.
    """
    errors: list[tuple[str, str]] = []
    tmap = _tool_map(tools)
    pnames, gnames = [c.name for c in pred], [c.name for c in gold]
    if len(pred) != len(gold):
        errors.append(("calls:wrong_count", f"expected {len(gold)} call(s), got {len(pred)}"))
    if Counter(pnames) != Counter(gnames):
        errors.append(("calls:wrong_tool", f"expected tools {gnames}, got {pnames}"))
    elif ordered and pnames != gnames:
        errors.append(("calls:wrong_order", f"expected tools in order {gnames}, got {pnames}"))
    if tmap is not None:
        for i, c in enumerate(pred):
            if c.name not in tmap:
                errors.append(("tool:unknown", f"call {i}: unknown tool {c.name!r}"))
                continue
            for msg in schema_errors(c.arguments, tmap[c.name], allow_extra=allow_extra):
                errors.append(("schema:invalid", f"call {i} ({c.name}): {msg}"))
    if pnames == gnames:
        pairs = [(i, i) for i in range(len(pred))]
    else:
        pairs = align_calls(pred, gold)
    for i, j in pairs:
        p, g = pred[i], gold[j]
        where = f"call {i} ({p.name})" if i == j else f"call {i} ({p.name}, gold call {j})"
        for k, v in g.arguments.items():
            if k not in p.arguments:
                errors.append(("args:missing", f"{where}: missing argument {k!r} (expected {v!r})"))
            elif not values_equal(p.arguments[k], v):
                kind = "args:wrong_type" if _kind(p.arguments[k]) != _kind(v) else "args:wrong_value"
                errors.append((kind, f"{where}: argument {k!r} is {p.arguments[k]!r}, expected {v!r}"))
        for k in p.arguments:
            if k not in g.arguments:
                errors.append(("args:unexpected", f"{where}: unexpected argument {k!r}={p.arguments[k]!r}"))
    return {"valid": not errors, "error": [m for _, m in errors],
            "error_type": errors[0][0] if errors else ""}


# ----- examples and aggregation -------------------------------------------------------------------------
@dataclass
class Example:
    """One scored item: gold and predicted calls of one request.

    ``raw_args`` — the raw argument texts the model produced, one per predicted call (optional; without
    it ``json_valid`` is not measured for this example). ``tools`` — the tool definitions available
    (optional; without it ``schema_valid`` is not measured). ``n_calls`` defaults to ``len(gold)``
    and is the bucket of ``aggregate(...)["by_n_calls"]``.
    """

    id: str
    gold: list[Call]
    pred: list[Call]
    raw_args: list[str] | None = None
    n_calls: int | None = None
    tools: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_calls is None:
            self.n_calls = len(self.gold)
        if self.raw_args is not None and len(self.raw_args) != len(self.pred):
            raise ValueError(f"example {self.id}: {len(self.raw_args)} raw argument texts for "
                             f"{len(self.pred)} predicted calls")

    @classmethod
    def from_trace(cls, trace: Trace, pred: Sequence[Call], *, raw_args: Sequence[str] | None = None,
                   **extra: Any) -> Example:
        """Gold calls, tools and id from a :class:`Trace`."""
        return cls(id=trace.id, gold=list(trace.calls), pred=list(pred),
                   raw_args=list(raw_args) if raw_args is not None else None, n_calls=len(trace.calls),
                   tools=list(trace.tools) or None, extra=dict(extra))


def score_example(ex: Example) -> dict[str, Any]:
    """Per-example scores: counts for the micro-averaged P/R/F1, booleans for the rates.

    ``json_valid``: every raw argument text is a JSON object (None without ``raw_args``).
    ``schema_valid``: every predicted call names a known tool and its arguments (the raw text when
    given, else the parsed arguments) validate (None without ``tools``). Both are vacuously true for
    an example with no predicted call.
    """
    jv: bool | None = None
    if ex.raw_args is not None:
        jv = all(json_valid(t) for t in ex.raw_args)
    sv: bool | None = None
    if ex.tools is not None:
        tmap = _tool_map(ex.tools) or {}
        sv = True
        for k, c in enumerate(ex.pred):
            args: Any = ex.raw_args[k] if ex.raw_args is not None else c.arguments
            if c.name not in tmap or not schema_valid(args, tmap[c.name]):
                sv = False
                break
    return {"id": ex.id, "n_calls": ex.n_calls, "tool_counts": tool_counts(ex.pred, ex.gold),
            "arg_counts": arg_counts(ex.pred, ex.gold), "exact_match": exact_match(ex.pred, ex.gold),
            "tool_accuracy": tool_accuracy(ex.pred, ex.gold), "json_valid": jv, "schema_valid": sv}


def _mean(values: list[bool | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _summarise(scores: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(scores)
    out: dict[str, Any] = {}
    for prefix in ("tool", "arg"):
        if n:
            counts = sum((s[f"{prefix}_counts"] for s in scores), Counts())
            p, r, f1 = prf(counts)
        else:
            p = r = f1 = None
        out[f"{prefix}_precision"], out[f"{prefix}_recall"], out[f"{prefix}_f1"] = p, r, f1
    for key in ("exact_match", "tool_accuracy", "json_valid", "schema_valid"):
        out[key] = _mean([s[key] for s in scores])
    out["n"] = n
    return out


def aggregate(examples: Iterable[Example]) -> dict[str, Any]:
    """Scores over a set of examples, overall and per number of gold calls.

    Returns ``{"overall": M, "by_n_calls": {"1": M, "2": M, …}}`` (bucket keys are ``str(n_calls)``,
    in increasing order), where ``M`` has

    * ``tool_precision``, ``tool_recall``, ``tool_f1``, ``arg_precision``, ``arg_recall``, ``arg_f1`` —
      **micro-averaged**: true positives, predicted and gold counts are summed over the examples, then
      P = Σtp/Σn_pred, R = Σtp/Σn_gold, F1 = 2PR/(P+R) (see :func:`prf` for zero denominators);
    * ``exact_match``, ``tool_accuracy``, ``json_valid``, ``schema_valid`` — **mean over examples** of a
      0/1 outcome; ``json_valid``/``schema_valid`` average only the examples where they are measured
      (``raw_args``/``tools`` given) and are None if none is;
    * ``n`` — the number of examples.

    All rates are in 0..1; with no examples they are None.
    """
    scores = [score_example(ex) for ex in examples]
    buckets: dict[int, list[dict[str, Any]]] = {}
    for s in scores:
        buckets.setdefault(int(s["n_calls"]), []).append(s)
    return {"overall": _summarise(scores),
            "by_n_calls": {str(k): _summarise(buckets[k]) for k in sorted(buckets)}}
