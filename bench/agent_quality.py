"""Agent quality on hand-written requests: does the agent do what a user asked, and say so?

    python bench/agent_quality.py --bank banks/demo [--data bench/data/pack_requests.jsonl] [--limit N]
           [--threads 2] [--json out.json] [--category single] [--path agent|langchain]

Each record of ``bench/data/pack_requests.jsonl`` (hand-written, never trained or tuned on; see
``bench/data/README.md``) is a request in a user's own words: ``single`` (one call), ``chain`` (2-3 calls,
later arguments taken from earlier results) or ``no_tool`` (small talk, general knowledge, or something none
of the ten tools does). A fresh store gets the record's ``setup`` calls, then ``TokMemAgent.run(query)``
calls the real tools (``--path langchain``: LangChain's ``create_agent`` over ``ChatTokMem`` instead, same
bank, tools and thresholds, its messages turned into the same calls and answer; ``bench/agent_paths.py``).
The gold calls are executed (after ``setup``) in another fresh store and the runs are judged by their
results, not by argument strings:

* calls right: the executed (status ok) predicted calls match the gold calls one to one, in order: same
  tool and a matching result (numbers within 1e-6 relative, 0.005 absolute for money; strings compared
  case-, whitespace- and trailing-punctuation-insensitively; echoes that do not change the outcome
  ignored: ``calculate``'s ``expression``, the ``id`` of a new to-do or note, ``search_notes``'s ``query``;
  ``add_note`` also compares the note's text);
* tools right: the executed tool names equal the gold ones;
* answer states result: the final answer contains the headline figure(s) of the last gold result (the
  record's ``answer_keys``, else a default per tool), numbers within rounding, dates as ISO or written out;
* faithful: the answer is not a loop (no sentence or 6-word n-gram 3+ times) and at most 600 characters;
* no_tool records: no call at all (not even a failed one) and a non-empty answer;
* task success: no_tool: no call, non-empty and faithful; otherwise calls right, answer states result and
  faithful.

The scoring functions are pure (no model) and unit-tested in ``tests/unit/test_agent_quality.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.agent_paths import PATHS, Runner, agent_path, make_runner
from tools.basic import TODAY, make_tools
from tools.make_traces import run_calls

DATA = ROOT / "bench" / "data" / "pack_requests.jsonl"
#: a second hand-written set in another style (``--data bench/data/pack_requests_b.jsonl``; bench/data/README.md)
DATA_B = ROOT / "bench" / "data" / "pack_requests_b.jsonl"
#: a third hand-written set, assistant-app register (``--data bench/data/pack_requests_c.jsonl``; bench/data/README.md)
DATA_C = ROOT / "bench" / "data" / "pack_requests_c.jsonl"
#: the fourth (session 14: written by a helper who saw neither the other sets nor the generator)
DATA_D = ROOT / "bench" / "data" / "pack_requests_d.jsonl"
CATEGORIES = ("single", "chain", "no_tool")
#: result keys that only echo the request and do not change what the user gets
IGNORED_KEYS: dict[str, set[str]] = {"calculate": {"expression"}, "add_todo": {"id"}, "add_note": {"id"},
                                     "search_notes": {"query"}}
#: money-like result keys: compared within 0.005 absolute
MONEY_KEYS: dict[str, set[str]] = {"convert_currency": {"amount", "result"},
                                   "add_tip": {"bill", "tip", "total", "per_person"}}
#: what the answer must state when a record has no ``answer_keys``; "todos" = the count or all titles,
#: "notes" = each found note's title or text
DEFAULT_ANSWER_KEYS: dict[str, list[str]] = {
    "calculate": ["result"], "convert_units": ["result"], "convert_currency": ["result"], "date_add": ["result"],
    "add_tip": ["total"], "days_between": ["days"], "list_todos": ["todos"], "search_notes": ["notes"],
    "add_todo": ["title"], "add_note": ["title"],
}
MAX_ANSWER_CHARS = 600
#: tools beyond the pack's ten that the runs and the gold calls may use (``--extra-tools``; e.g. tools.extra's
#: registered-later tools in bench/register_quality.py)
EXTRA_TOOLS: list[Any] = []
#: (group, metric, minimum)
TARGETS = (("all", "success", 0.85), ("no_tool", "no_call", 0.95), ("single", "success", 0.90),
           ("chain", "success", 0.70), ("all", "answer_states", 0.90))
#: the printed columns: (metric, label, width)
COLUMNS = (("success", "success", 9), ("calls_right", "calls right", 13), ("tools_right", "tools right", 13),
           ("answer_states", "answer states", 15), ("faithful", "faithful", 10), ("no_call", "no-call", 9),
           ("false_call", "false-call", 12))
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


# ----- data and gold ----------------------------------------------------------------------------------------
def load_records(path: str | Path = DATA) -> list[dict[str, Any]]:
    """The records of a jsonl file, one JSON object per non-empty line."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def execute(setup: list[dict[str, Any]], calls: list[dict[str, Any]]) -> list[Any]:
    """Run ``setup`` then ``calls`` in a fresh empty store; return the calls' results (JSON values)."""
    with tempfile.TemporaryDirectory() as store:
        tools = {f.__name__: f for f in [*make_tools(store, durable=False), *EXTRA_TOOLS]}
        _, results = run_calls(tools, setup, [(c["name"], c["arguments"]) for c in calls])
    return results


def gold_results(record: dict[str, Any]) -> list[Any]:
    """What the record's gold calls return after its setup."""
    return execute(record.get("setup") or [], record["gold"])


# ----- comparing results ------------------------------------------------------------------------------------
def norm_text(s: str) -> str:
    """Lower case, straight quotes, single spaces, no trailing punctuation."""
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return " ".join(s.lower().split()).rstrip(".!?,;:").strip()


def numbers_equal(a: float, b: float, money: bool = False) -> bool:
    """Equal within 1e-6 relative (or 0.005 absolute for money)."""
    return abs(a - b) <= max(1e-6 * max(abs(a), abs(b)), 0.005 if money else 1e-12)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def values_match(pred: Any, gold: Any, money: bool = False) -> bool:
    """Recursive comparison of JSON values: numbers within tolerance, strings loosely."""
    if _is_number(pred) and _is_number(gold):
        return numbers_equal(pred, gold, money)
    if isinstance(pred, str) and isinstance(gold, str):
        return norm_text(pred) == norm_text(gold)
    if isinstance(pred, list) and isinstance(gold, list):
        return len(pred) == len(gold) and all(values_match(p, g, money) for p, g in zip(pred, gold))
    if isinstance(pred, dict) and isinstance(gold, dict):
        return pred.keys() == gold.keys() and all(values_match(pred[k], gold[k], money) for k in gold)
    return pred == gold


def comparable(name: str, arguments: dict[str, Any], result: Any) -> Any:
    """The part of a call's result that matters to the user (echoes dropped; a note's text added)."""
    if not isinstance(result, dict):
        return result
    out = {k: v for k, v in result.items() if k not in IGNORED_KEYS.get(name, set())}
    if name == "add_note":
        out["text"] = arguments.get("text")
    return out


def call_right(pred: dict[str, Any], gold: dict[str, Any], gold_result: Any) -> bool:
    """Same tool and a matching result (``pred`` has name, arguments, result)."""
    if pred["name"] != gold["name"]:
        return False
    a = comparable(pred["name"], pred.get("arguments") or {}, pred.get("result"))
    b = comparable(gold["name"], gold["arguments"], gold_result)
    if isinstance(a, dict) and isinstance(b, dict):
        money = MONEY_KEYS.get(gold["name"], set())
        return a.keys() == b.keys() and all(values_match(a[k], b[k], k in money) for k in b)
    return values_match(a, b)


def executed(pred: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The predicted calls that ran (status ok)."""
    return [c for c in pred if c.get("status", "ok") == "ok"]


def calls_right(pred: list[dict[str, Any]], gold: list[dict[str, Any]], results: list[Any]) -> bool:
    """The executed predicted calls match the gold calls one to one, in order."""
    ok = executed(pred)
    return len(ok) == len(gold) and all(call_right(p, g, r) for p, g, r in zip(ok, gold, results))


def tools_right(pred: list[dict[str, Any]], gold: list[dict[str, Any]]) -> bool:
    """The executed tool names equal the gold ones, in order."""
    return [c["name"] for c in executed(pred)] == [g["name"] for g in gold]


# ----- does the answer state the result? --------------------------------------------------------------------
def _numbers_in(text: str) -> list[str]:
    """The numbers written in a text (ISO dates removed), as strings without thousands commas."""
    return [m.replace(",", "") for m in NUMBER.findall(ISO_DATE.sub(" ", text))]


def _rounds_to(gold: Decimal, written: str) -> bool:
    w = Decimal(written)
    if int(w) != int(gold):  # never a different integer part
        return False
    two = Decimal("0.01")
    if gold.quantize(two, ROUND_HALF_UP) == w.quantize(two, ROUND_HALF_UP):
        return True
    places = len(written.partition(".")[2])
    return w != 0 and gold.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP) == w


def number_stated(value: float, text: str) -> bool:
    """The text writes ``value`` (commas stripped), exactly or rounded; a negative value may lose its sign."""
    gold = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    golds = (gold, -gold) if gold < 0 else (gold,)
    return any(_rounds_to(g, w) for w in _numbers_in(text) for g in golds)


def _flat(text: str) -> str:
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text.lower())
    return " ".join(text.replace(",", " ").split())


def date_stated(iso: str, text: str) -> bool:
    """The text gives the date as ISO or written out: "June 16, 2025", "16 June 2025", "Jun 16th 2025"."""
    if iso in text:
        return True
    y, m, d = (int(p) for p in iso.split("-"))
    flat = _flat(text)
    for month in {MONTHS[m - 1], MONTHS[m - 1][:3], MONTHS[m - 1][:4]}:
        for form in (f"{month} {d} {y}", f"{d} {month} {y}", f"{d} of {month} {y}"):
            if re.search(rf"\b{form}\b", flat):
                return True
    return False


def text_stated(value: str, text: str) -> bool:
    """The text contains ``value``, compared loosely."""
    return norm_text(value) in norm_text(text)


def value_stated(value: Any, text: str) -> bool:
    """A number, date or string of a result occurs in the answer."""
    if _is_number(value):
        return number_stated(value, text)
    if isinstance(value, str):
        return date_stated(value, text) if ISO_DATE.fullmatch(value) else text_stated(value, text)
    return value is None


def key_stated(key: str, result: dict[str, Any], text: str) -> bool:
    """One headline key: a result field, or "todos" (count or all titles), "notes" (title or text of each)."""
    if key == "todos":
        return number_stated(result["count"], text) or all(text_stated(t["title"], text) for t in result["todos"])
    if key == "notes":
        return all(text_stated(n["title"], text) or text_stated(n["text"], text) for n in result["notes"])
    return value_stated(result[key], text)


def answer_states(record: dict[str, Any], results: list[Any], answer: str) -> bool:
    """The answer contains the headline figure(s) of the last gold result."""
    if not results or not answer.strip():
        return False
    keys = record.get("answer_keys") or DEFAULT_ANSWER_KEYS[record["gold"][-1]["name"]]
    return all(key_stated(k, results[-1], answer) for k in keys)


# ----- faithfulness -----------------------------------------------------------------------------------------
def is_loop(text: str, times: int = 3, n: int = 6) -> bool:
    """A sentence or an ``n``-word n-gram occurs ``times`` times or more."""
    sentences = [norm_text(s) for s in re.split(r"(?<=[.!?])\s+|\n+", text)]
    if any(c >= times for s, c in Counter(s for s in sentences if s).items()):
        return True
    words = re.findall(r"[\w'-]+", text.lower())
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return any(c >= times for c in grams.values())


def faithful(text: str) -> bool:
    """Not a loop and not over :data:`MAX_ANSWER_CHARS` characters."""
    return len(text) <= MAX_ANSWER_CHARS and not is_loop(text)


# ----- one record -------------------------------------------------------------------------------------------
def score_record(record: dict[str, Any], results: list[Any], pred: list[dict[str, Any]],
                 answer: str) -> dict[str, Any]:
    """All scores of one run. ``pred``: the predicted calls (name, arguments, status, result), in order.

    Scores that do not apply to the record's category are None (answer states and the no-call rates).
    """
    fair = faithful(answer)
    if record["category"] == "no_tool":
        no_call = not pred
        return {"no_call": no_call, "false_call": not no_call, "nonempty": bool(answer.strip()), "faithful": fair,
                "calls_right": no_call, "tools_right": no_call, "answer_states": None,
                "success": no_call and bool(answer.strip()) and fair}
    right = calls_right(pred, record["gold"], results)
    states = answer_states(record, results, answer)
    return {"no_call": None, "false_call": None, "nonempty": bool(answer.strip()), "faithful": fair,
            "calls_right": right, "tools_right": tools_right(pred, record["gold"]), "answer_states": states,
            "success": right and states and fair}


# ----- the table --------------------------------------------------------------------------------------------
def _rate(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return sum(vals) / len(vals) if vals else None


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per category and "all": n, each rate (None where it does not apply) and the median seconds."""
    groups = {c: [r for r in rows if r["category"] == c] for c in CATEGORIES}
    groups["all"] = rows
    out = {}
    for name, g in groups.items():
        if g:
            secs = [r["seconds"] for r in g if r.get("seconds") is not None]
            out[name] = {"n": len(g), **{k: _rate(g, k) for k, _, _ in COLUMNS},
                         "seconds": statistics.median(secs) if secs else None}
    return out


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    """One row per category and "all"; "-" where a score does not apply."""
    head = f"{'category':<9}{'n':>5}" + "".join(f"{label:>{w}}" for _, label, w in COLUMNS) + f"{'s/task':>8}"
    lines = [head]
    for name, s in summary.items():
        cells = "".join(f"{'-':>{w}}" if s[k] is None else f"{s[k]:>{w}.3f}" for k, _, w in COLUMNS)
        secs = "-" if s["seconds"] is None else f"{s['seconds']:.1f}"
        lines.append(f"{name:<9}{s['n']:>5}{cells}{secs:>8}")
    return "\n".join(lines)


def target_misses(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Each target missed, as "group metric 0.812 < 0.850"."""
    misses = []
    for group, key, minimum in TARGETS:
        value = summary.get(group, {}).get(key)
        if value is not None and value < minimum:
            misses.append(f"{group} {key} {value:.3f} < {minimum:.2f}")
    return misses


# ----- running the agent ------------------------------------------------------------------------------------
def call_decision(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision/recall of "call" (any call made) over all records: needing a tool = single or chain."""
    made = [r for r in rows if r["pred"]]
    need = [r for r in rows if r["category"] != "no_tool"]
    tp = sum(1 for r in made if r["category"] != "no_tool")
    return {"n": len(rows), "calls_made": len(made), "precision": tp / len(made) if made else None,
            "recall": tp / len(need) if need else None}


def run_record(tm: Any, record: dict[str, Any], config: Any = None, runner: Runner | None = None) -> dict[str, Any]:
    """Run one record in a fresh store and score it; the row saved by ``--json``.

    runner: how the request runs (:func:`bench.agent_paths.make_runner`; default the agent path over ``tm``).
    """
    runner = runner or agent_path(tm, config)
    results = gold_results(record)
    with tempfile.TemporaryDirectory() as store:
        fns = [*make_tools(store, durable=False), *EXTRA_TOOLS]
        run_calls({f.__name__: f for f in fns}, record.get("setup") or [], [])
        t0 = time.perf_counter()
        try:
            run = runner(fns, record["query"])
            pred, answer, outcome, call_prob = run.pred, run.answer, run.outcome, run.call_prob
        except Exception as exc:  # noqa: BLE001 - a crash is a failed task, not a failed benchmark
            pred, answer, outcome, call_prob = [], "", f"error: {type(exc).__name__}: {exc}", None
        secs = time.perf_counter() - t0
    gold = [{**g, "result": r} for g, r in zip(record["gold"], results)]
    return {"id": record["id"], "category": record["category"], "query": record["query"], "gold": gold,
            "pred": pred, "answer": answer, "outcome": outcome, "seconds": secs, "call_prob": call_prob,
            **score_record(record, results, pred, answer)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bank", default="banks/demo")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--category", choices=CATEGORIES, default=None)
    ap.add_argument("--path", choices=PATHS, default="agent",
                    help="agent: TokMemAgent.run; langchain: LangChain's create_agent over ChatTokMem (same scoring)")
    ap.add_argument("--call-threshold", default="bank",
                    help="ControllerConfig.call_threshold: bank (the calibrated value, if any), off (argmax) or a "
                         "probability")
    ap.add_argument("--continue-threshold", default="bank", help="ControllerConfig.continue_threshold: the same "
                                                                 "after a tool result")
    ap.add_argument("--ground-numbers", choices=["on", "off"], default="on",
                    help="ControllerConfig.ground_numbers: answers after tool results write only numbers they hold")
    ap.add_argument("--ground-places", choices=["zero_data", "on", "off"], default="zero_data",
                    help="ControllerConfig.ground_places: place arguments copied from the conversation")
    ap.add_argument("--controller", action="append", default=[], metavar="KEY=VALUE",
                    help="a ControllerConfig field (repeatable), e.g. ground_times=false")
    ap.add_argument("--extra-tools", action="store_true",
                    help="also offer tools/extra.py's tools (a bank they were registered on)")
    args = ap.parse_args()
    if args.extra_tools:
        from tools import extra

        EXTRA_TOOLS[:] = extra.TOOLS

    import torch

    from tokmem_agent.model.loader import load_base_model
    from tokmem_agent.tokmem import TokMem

    torch.set_num_threads(args.threads)
    records = [r for r in load_records(args.data) if args.category in (None, r["category"])][: args.limit]
    from tokmem_agent import ControllerConfig
    from tokmem_agent.config import parse_overrides, parse_threshold

    config = ControllerConfig(call_threshold=parse_threshold(args.call_threshold, "--call-threshold"),  # type: ignore[arg-type]
                              continue_threshold=parse_threshold(args.continue_threshold, "--continue-threshold"),  # type: ignore[arg-type]
                              ground_numbers=args.ground_numbers == "on", ground_places={"zero_data": "zero_data", "on": True, "off": False}[args.ground_places],
                              **{"today": TODAY.isoformat(), **parse_overrides(args.controller)})
    tm = TokMem.load(args.bank, load_base_model(None))
    from tokmem_agent.decoding.controller import Controller

    ctl = Controller(tm, config)
    effective = {after: ctl.call_threshold(after) for after in ("user", "tool")}
    runner = make_runner(args.path, tm, config)
    rows = []
    for rec in records:
        row = run_record(tm, rec, config, runner)
        rows.append(row)
        names = ",".join(c["name"] if c["status"] == "ok" else f"{c['name']}!{c['status']}" for c in row["pred"])
        short = " ".join(row["answer"].split())[:70]
        print(f"{row['id']} {row['category']:<7} {'ok' if row['success'] else '✗':<2} [{names}] {short!r} "
              f"{row['seconds']:.1f}s", flush=True)
    summary = summarize(rows)
    dec = call_decision(rows)
    if args.json:  # first, so a later error cannot lose the run
        Path(args.json).write_text(json.dumps({"path": args.path, "summary": summary, "call_decision": dec,
                                               "thresholds": effective, "rows": rows}, indent=1, ensure_ascii=False))
    shown = {k: "argmax" if v is None else f"{v:.4f}" for k, v in effective.items()}
    print(f"\nbank {args.bank}, path {args.path}, {len(rows)} hand-written requests of {args.data}; call threshold "
          f"{shown['user']} ({args.call_threshold}), go-on threshold {shown['tool']} ({args.continue_threshold})")
    print(format_table(summary))
    if dec["precision"] is not None and dec["recall"] is not None:
        print(f"call decision: precision {dec['precision']:.3f}, recall {dec['recall']:.3f} "
              f"({dec['calls_made']} of {dec['n']} requests got a call)")
    misses = target_misses(summary)
    print("targets: " + ("all met" if not misses else "missed: " + "; ".join(misses)))

if __name__ == "__main__":
    main()
