"""Run methods over a dataset (resumable) and write the report.

    metrics = run_eval([TokMemMethod(tm), ICLMethod(loaded, tools)], traces, "reports/sgd-dev")

Files in the output directory:

* ``predictions/<method>.jsonl`` — the prediction cache, one line per example as soon as it is predicted
  (``predictions/<method>.config.json`` holds the settings it was made with). A rerun skips the ids it
  already holds; a rerun with different settings is refused unless ``fresh=True``.
* ``metrics.json`` — ``{"<method>": {"overall": M, "by_n_calls": {"1": M, …}}}`` where ``M`` is
  :func:`evals.metrics.aggregate`'s summary (rates in 0..1, ``n``) plus ``n_missing_tool`` (examples with
  a gold tool the method was not trained on) and, on BFCL data, ``bfcl_accuracy`` (BFCL's own checker).
* ``results.json`` — per-example predictions and scores, each method's description, training budget, cost
  and missing-token tools.
* ``report.md`` — the tables (Markdown, percentages) and the plots below.
* ``accuracy_by_calls.png``, ``cost.png``, and ``accuracy_by_tools.png`` when the records do not all have
  the same number of candidate tools.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokmem_agent.errors import ConfigError, TokMemError
from tokmem_agent.traces import Trace

from .methods import Method, MethodOutput
from .metrics import Example, aggregate, arg_prf, tool_prf

log = logging.getLogger("evals")
PRED_DIR = "predictions"
RATE_KEYS = ("tool_f1", "arg_f1", "exact_match", "tool_accuracy", "json_valid", "schema_valid")
RATE_LABELS = {"tool_f1": "tool F1", "arg_f1": "arg F1", "exact_match": "exact match",
               "tool_accuracy": "tool acc.", "json_valid": "JSON valid", "schema_valid": "schema valid",
               "bfcl_accuracy": "BFCL acc."}


# ----- the prediction cache -----------------------------------------------------------------------------
class PredictionCache:
    """Append-only JSONL of one method's predictions, keyed by example id, with the method's settings."""

    def __init__(self, out_dir: str | os.PathLike[str], name: str, config: Mapping[str, Any], *, fresh: bool = False):
        d = Path(out_dir) / PRED_DIR
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / f"{name}.jsonl"
        self.config_path = d / f"{name}.config.json"
        config = json.loads(json.dumps(dict(config), default=str))
        if fresh:
            self.path.unlink(missing_ok=True)
        elif self.path.exists() and self.config_path.exists():
            old = json.loads(self.config_path.read_text())
            if old != config:
                changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
                raise ConfigError(f"{self.path} holds predictions made with other settings ({', '.join(changed)}); "
                                  "use another output directory or --fresh to discard them")
        self.config_path.write_text(json.dumps(config, indent=1, ensure_ascii=False))

    def load(self) -> dict[str, MethodOutput]:
        """The cached predictions. A line cut by an interrupted run is dropped (and predicted again)."""
        done: dict[str, MethodOutput] = {}
        if not self.path.exists():
            return done
        text = self.path.read_text(encoding="utf-8")
        good: list[str] = []
        for line in text.splitlines():
            try:
                rec = json.loads(line)
                done[rec["id"]] = MethodOutput.from_dict(rec["output"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            good.append(line)
        if len(good) != len(text.splitlines()) or (text and not text.endswith("\n")):
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(g + "\n" for g in good), encoding="utf-8")
            os.replace(tmp, self.path)
        return done

    def append(self, example_id: str, output: MethodOutput) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": example_id, "output": output.to_dict()}, ensure_ascii=False) + "\n")
            fh.flush()


def run_method(method: Method, traces: Sequence[Trace], out_dir: str | os.PathLike[str], *, progress: bool = True,
               fresh: bool = False, batch_size: int = 1) -> dict[str, MethodOutput]:
    """Predict every trace not yet in the method's cache (with a progress bar); return all predictions.

    batch_size: records a method that batches decodes together (:meth:`Method.predict_many`, continuous
    batching: every record still to predict is handed over at once and each output is saved as it comes).
    If the batch fails, the records without an output are predicted again one at a time, so one bad record
    costs only itself."""
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cache = PredictionCache(out_dir, method.name, method.config(), fresh=fresh)
    done = cache.load()
    todo = [t for t in traces if t.id not in done]
    bar = tqdm(total=len(traces), initial=len(traces) - len(todo), desc=method.name, unit="ex",
               disable=not progress or not todo, dynamic_ncols=True)

    def save(trace: Trace, out: MethodOutput) -> None:
        cache.append(trace.id, out)
        done[trace.id] = out
        bar.update(1)

    if batch_size > 1 and len(todo) > 1:
        try:
            method.predict_many(todo, batch_size=batch_size, on_output=lambda i, out: save(todo[i], out))
        except TokMemError:
            pass
    for t in todo:
        if t.id not in done:
            save(t, _predict_one(method, t))
    bar.close()
    return {t.id: done[t.id] for t in traces}


def _predict_one(method: Method, trace: Trace) -> MethodOutput:
    try:
        return method.predict(trace)
    except TokMemError as exc:  # a generation failure is a wrong answer, not a crash of the whole run
        return MethodOutput([], [], 0, 0.0, extra={"error": f"{type(exc).__name__}: {exc}"})


# ----- scoring ---------------------------------------------------------------------------------------------
def _example(trace: Trace, out: MethodOutput) -> Example:
    raw = out.raw_args if len(out.raw_args) == len(out.calls) else None
    return Example.from_trace(trace, out.calls, raw_args=raw)


def _bfcl_valid(trace: Trace, out: MethodOutput) -> bool | None:
    if "bfcl_functions" not in trace.extra:
        return None
    from .datasets import bfcl_check_trace

    try:
        return bool(bfcl_check_trace(trace, out.calls)["valid"])
    except Exception as exc:  # noqa: BLE001 - BFCL's checker raises on some malformed outputs: they are wrong answers
        log.debug("BFCL checker failed on %s: %s", trace.id, exc)
        return False


def example_scores(trace: Trace, out: MethodOutput, known_tools: set[str] | None = None) -> dict[str, Any]:
    """Per-example scores for results.json."""
    from .metrics import score_example

    s = score_example(_example(trace, out))
    d: dict[str, Any] = {"tool_f1": tool_prf(out.calls, trace.calls)[2], "arg_f1": arg_prf(out.calls, trace.calls)[2],
                         "exact_match": s["exact_match"], "tool_accuracy": s["tool_accuracy"],
                         "json_valid": s["json_valid"], "schema_valid": s["schema_valid"]}
    bv = _bfcl_valid(trace, out)
    if bv is not None:
        d["bfcl_valid"] = bv
    if known_tools is not None:
        missing = sorted({c.name for c in trace.calls} - known_tools)
        if missing:
            d["missing_token"] = missing
    return d


def _method_metrics(traces: Sequence[Trace], outs: Mapping[str, MethodOutput],
                    scores: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    m = aggregate(_example(t, outs[t.id]) for t in traces)
    groups: dict[str, list[Trace]] = {"overall": list(traces)}
    for t in traces:
        groups.setdefault(str(len(t.calls)), []).append(t)
    for key, ts in groups.items():
        target = m["overall"] if key == "overall" else m["by_n_calls"][key]
        target["n_missing_tool"] = sum(bool(scores[t.id].get("missing_token")) for t in ts)
        bv = [scores[t.id]["bfcl_valid"] for t in ts if "bfcl_valid" in scores[t.id]]
        if bv:
            target["bfcl_accuracy"] = sum(bv) / len(bv)
    return m


def _cost(outs: Sequence[MethodOutput]) -> dict[str, Any]:
    if not outs:
        return {}
    lat = [o.latency_s for o in outs]
    return {"prompt_tokens_mean": statistics.mean(o.prompt_tokens for o in outs),
            "latency_s_mean": statistics.mean(lat), "latency_s_median": statistics.median(lat),
            "generated_tokens_mean": statistics.mean(o.generated_tokens for o in outs),
            "context_overflow": sum(bool(o.extra.get("context_overflow")) for o in outs),
            "errors": sum(bool(o.extra.get("error")) for o in outs)}


def _retrieval_recall(traces: Sequence[Trace], outs: Mapping[str, MethodOutput]) -> float | None:
    hit = total = 0
    seen = False
    for t in traces:
        got = outs[t.id].extra.get("retrieved")
        if got is None:
            continue
        seen = True
        gold = {c.name for c in t.calls}
        hit += len(gold & set(got))
        total += len(gold)
    return hit / total if seen and total else None


# ----- the whole run -------------------------------------------------------------------------------------
def run_eval(methods: Sequence[Method], traces: Sequence[Trace], out_dir: str | os.PathLike[str], *,
             dataset: str = "", progress: bool = True, fresh: bool = False,
             settings: Mapping[str, Any] | None = None, batch_size: int = 1) -> dict[str, Any]:
    """Predict with every method (resumable), then write metrics.json, results.json, report.md and plots.

    batch_size: records decoded together by the methods that batch (:func:`run_method`).
    Returns the metrics (the content of metrics.json)."""
    ids = [t.id for t in traces]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(f"example ids must be unique (the prediction cache is keyed by them): '{dup}' repeats")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ConfigError(f"method names must be unique, got {names}")
    predictions = {m.name: run_method(m, traces, out_dir, progress=progress, fresh=fresh, batch_size=batch_size)
                   for m in methods}
    info = {m.name: {"description": m.describe(), "known_tools": sorted(m.known_tools) if m.known_tools is not None
                     else None} for m in methods}
    return write_report(out_dir, traces, predictions, info, dataset=dataset, settings=settings)


def write_report(out_dir: str | os.PathLike[str], traces: Sequence[Trace],
                 predictions: Mapping[str, Mapping[str, MethodOutput]], info: Mapping[str, Mapping[str, Any]], *,
                 dataset: str = "", settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score ``predictions`` (method → id → output) and write every report file; returns the metrics."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {}
    methods: dict[str, Any] = {}
    per_example: dict[str, dict[str, dict[str, Any]]] = {}
    for name, outs in predictions.items():
        known = info.get(name, {}).get("known_tools")
        known_set = set(known) if known is not None else None
        scores = {t.id: example_scores(t, outs[t.id], known_set) for t in traces}
        per_example[name] = scores
        metrics[name] = _method_metrics(traces, outs, scores)
        missing = sorted({n for s in scores.values() for n in s.get("missing_token", [])})
        with_missing = [t for t in traces if scores[t.id].get("missing_token")]
        known_only = [t for t in traces if not scores[t.id].get("missing_token")]
        subsets = {}
        if with_missing:
            subsets = {"all_tools_known": aggregate(_example(t, outs[t.id]) for t in known_only)["overall"],
                       "missing_token": aggregate(_example(t, outs[t.id]) for t in with_missing)["overall"]}
        methods[name] = {**info.get(name, {}), "cost": _cost([outs[t.id] for t in traces]),
                         "missing_tools": missing, "n_missing_tool_examples": len(with_missing),
                         "subsets": subsets, "retrieval_recall": _retrieval_recall(traces, outs)}
    examples = []
    for t in traces:
        examples.append({"id": t.id, "n_calls": len(t.calls), "n_tools": len(t.tools),
                         "gold": [c.to_dict() for c in t.calls],
                         "predictions": {name: {**predictions[name][t.id].to_dict(), "scores": per_example[name][t.id]}
                                         for name in predictions}})
    results = {"dataset": dataset, "n_examples": len(traces), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
               "settings": dict(settings or {}), "methods": methods, "metrics": metrics, "examples": examples}
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "results.json", results)
    plots = write_plots(out, traces, metrics, methods, per_example)
    (out / "report.md").write_text(render_markdown(results, plots), encoding="utf-8")
    return metrics


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


# ----- Markdown --------------------------------------------------------------------------------------------
def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _num(v: Any, fmt: str = ",.0f") -> str:
    return "–" if v is None else format(v, fmt)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def render_markdown(results: Mapping[str, Any], plots: Sequence[str] = ()) -> str:
    """report.md: method × metric tables (percent), cost and training budget, tools without tokens."""
    metrics, methods = results["metrics"], results["methods"]
    names = list(metrics)
    bfcl = any("bfcl_accuracy" in metrics[n]["overall"] for n in names)
    keys = [*RATE_KEYS, *(["bfcl_accuracy"] if bfcl else [])]
    lines = [f"# Function-calling evaluation: {results.get('dataset') or 'dataset'}", "",
             (f"{results['n_examples']} examples; {results['created']}. Rates in percent (metrics.json holds them "
              "in 0..1). Metric definitions: docs/evaluation.md."), ""]
    settings = results.get("settings") or {}
    if settings:
        lines += ["Settings: " + ", ".join(f"{k} = {v}" for k, v in settings.items()), ""]
    lines += ["## Overall", ""]
    lines += _table(["method", *[RATE_LABELS[k] for k in keys], "n"],
                    [[n, *[_pct(metrics[n]["overall"].get(k)) for k in keys], str(metrics[n]["overall"]["n"])]
                     for n in names])
    buckets = sorted({b for n in names for b in metrics[n]["by_n_calls"]}, key=int)
    lines += ["", "## By number of gold calls", ""]
    for k in ("tool_f1", "arg_f1", "exact_match"):
        lines += [f"**{RATE_LABELS[k]}**", ""]
        counts = {b: next((metrics[n]["by_n_calls"][b]["n"] for n in names if b in metrics[n]["by_n_calls"]), 0)
                  for b in buckets}
        lines += _table(["method", *[f"{b} call{'s' if b != '1' else ''} (n={counts[b]})" for b in buckets]],
                        [[n, *[_pct(metrics[n]["by_n_calls"].get(b, {}).get(k)) for b in buckets]] for n in names])
        lines.append("")
    lines += ["## Training budget and cost per query", ""]
    rows = []
    for n in names:
        d, c = methods[n].get("description", {}), methods[n].get("cost", {})
        ts = d.get("train_seconds")
        rows.append([n, _num(d.get("trainable_params")), "–" if ts is None else f"{ts:,.0f} s",
                     _num(c.get("prompt_tokens_mean")), _num(c.get("latency_s_mean"), ".2f"),
                     _num(c.get("generated_tokens_mean"), ".1f")])
    lines += _table(["method", "trainable params", "training time", "prompt tokens / query", "latency / query (s)",
                     "generated tokens / query"], rows)
    notes = []
    for n in names:
        c = methods[n].get("cost", {})
        if c.get("context_overflow"):
            notes.append(f"- {n}: {c['context_overflow']} prompts exceeded the model's context window.")
        if c.get("errors"):
            notes.append(f"- {n}: {c['errors']} examples failed to generate (scored as no call).")
        if methods[n].get("retrieval_recall") is not None:
            notes.append(f"- {n}: retrieval recall of the gold tools {_pct(methods[n]['retrieval_recall'])} %.")
    if notes:
        lines += ["", *notes]
    lines += ["", "## Tools without trained tokens", ""]
    any_missing = False
    for n in names:
        mt = methods[n]
        if mt.get("known_tools") is None:
            continue
        if not mt["missing_tools"]:
            lines.append(f"- **{n}**: every gold tool has been trained.")
            continue
        any_missing = True
        sub = mt["subsets"]
        lines.append(f"- **{n}**: {len(mt['missing_tools'])} gold tool(s) without training (no memory token / "
                     f"not in the training data), in "
                     f"{mt['n_missing_tool_examples']} of {results['n_examples']} examples: "
                     + ", ".join(f"`{x}`" for x in mt["missing_tools"]))
        lines.append(f"  - examples whose tools are all trained (n={sub['all_tools_known']['n']}): tool F1 "
                     f"{_pct(sub['all_tools_known']['tool_f1'])}, arg F1 {_pct(sub['all_tools_known']['arg_f1'])}, "
                     f"exact match {_pct(sub['all_tools_known']['exact_match'])}; the others "
                     f"(n={sub['missing_token']['n']}): tool F1 {_pct(sub['missing_token']['tool_f1'])}, "
                     f"exact match {_pct(sub['missing_token']['exact_match'])}")
    if not any(methods[n].get("known_tools") is not None for n in names):
        lines.append("No trained method in this run.")
    elif not any_missing:
        lines.append("")
    lines += ["", "## Methods", ""]
    for n in names:
        d = dict(methods[n].get("description", {}))
        d.pop("name", None)
        lines.append(f"- **{n}**: " + ", ".join(f"{k}={v}" for k, v in d.items() if v is not None))
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


# ----- plots ---------------------------------------------------------------------------------------------
def write_plots(out: Path, traces: Sequence[Trace], metrics: Mapping[str, Any], methods: Mapping[str, Any],
                per_example: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """PNG plots (matplotlib, Agg); returns the file names written (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        log.warning("matplotlib is not installed: no plots (pip install 'tokmem-agent[eval]')")
        return []
    names = list(metrics)
    written = []
    buckets = sorted({b for n in names for b in metrics[n]["by_n_calls"]}, key=int)
    width = 0.8 / max(len(names), 1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, key in zip(axes, ("tool_f1", "arg_f1", "exact_match")):
        for i, n in enumerate(names):
            ys = [metrics[n]["by_n_calls"].get(b, {}).get(key) or 0.0 for b in buckets]
            ax.bar([j + i * width for j in range(len(buckets))], ys, width, label=n)
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(buckets))], buckets)
        ax.set_xlabel("gold calls per example")
        ax.set_title(RATE_LABELS[key])
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_by_calls.png", dpi=110)
    plt.close(fig)
    written.append("accuracy_by_calls.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title in ((axes[0], "prompt_tokens_mean", "prompt tokens / query"),
                           (axes[1], "latency_s_mean", "latency / query (s)")):
        ax.bar(names, [methods[n].get("cost", {}).get(key) or 0 for n in names], color="tab:gray")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(out / "cost.png", dpi=110)
    plt.close(fig)
    written.append("cost.png")

    sizes = sorted({len(t.tools) for t in traces})
    if len(sizes) > 1:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
        for ax, key in zip(axes, ("tool_f1", "exact_match")):
            for n in names:
                ys = []
                for s in sizes:
                    vals = [per_example[n][t.id][key] for t in traces if len(t.tools) == s]
                    ys.append(sum(float(v) for v in vals) / len(vals))
                ax.plot(sizes, ys, marker="o", label=n)
            ax.set_xlabel("candidate tools in the record")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"{RATE_LABELS[key]} (mean per example)")
            ax.set_ylim(0, 1.02)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "accuracy_by_tools.png", dpi=110)
        plt.close(fig)
        written.append("accuracy_by_tools.png")
    return written
