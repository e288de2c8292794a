"""End-to-end agent runs on the example pack's held-out tasks: do the executed calls match the gold chain?

    python bench/demo_chains.py --bank banks/demo [--limit 100] [--threads 2] [--json out.json]

For each record of ``tools/data/test.jsonl`` (never trained on), a fresh store gets the record's ``setup``
calls, then ``TokMemAgent.run(query)`` calls the real tools through the decoding controller (schema-
constrained arguments, results fed back). Scores, by number of gold calls:

* chain exact: the executed tool sequence equals the gold one, every call succeeded, and the arguments
  equal the gold arguments (``evals.metrics.exact_match``, as the eval harness scores it);
* tool sequence: the executed tool names equal the gold ones, in order (``evals.metrics.tool_accuracy``);
* argument F1 (``evals.metrics.arg_prf``) and whether the run ended with an answer;
* seconds per task.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.metrics import arg_prf, exact_match, tool_accuracy
from tokmem_agent.agent import TokMemAgent
from tokmem_agent.model.loader import load_base_model
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import Call, load_traces
from tools.basic import make_tools
from tools.make_traces import run_calls

TEST = Path(__file__).resolve().parents[1] / "tools" / "data" / "test.jsonl"
#: the printed rates: (row key, column label, width)
COLUMNS = (("exact", "chain exact", 13), ("tool_seq", "tool seq", 10), ("arg_f1", "arg F1", 8),
           ("answered", "answered", 10))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bank", default="banks/demo")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tm = TokMem.load(args.bank, load_base_model(None))
    raw = [json.loads(line) for line in TEST.read_text(encoding="utf-8").splitlines() if line.strip()]
    traces = load_traces(raw[: args.limit])
    rows = []
    for rec, tr in zip(raw, traces):
        with tempfile.TemporaryDirectory() as store:
            fns = make_tools(store, durable=False)
            run_calls({f.__name__: f for f in fns}, rec.get("setup") or [], [])  # the task's starting state
            t0 = time.perf_counter()
            r = TokMemAgent(tm, fns).run(tr.query)
            secs = time.perf_counter() - t0
        pred = [Call(s.tool, s.arguments or {}) for s in r.steps]
        gold = tr.calls
        seq = tool_accuracy(pred, gold)
        exact = exact_match(pred, gold) and all(s.ok for s in r.steps)
        rows.append({"id": tr.id, "n_calls": len(gold), "tool_seq": seq, "exact": exact,
                     "arg_f1": arg_prf(pred, gold)[2], "answered": r.outcome == "answer", "seconds": secs,
                     "pred": [c.to_dict() for c in pred]})
        print(f"{tr.id} n={len(gold)} seq={seq} exact={exact} outcome={r.outcome} {secs:.1f}s", flush=True)
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[str(row["n_calls"])].append(row)
        groups["all"].append(row)
    print(f"\nbank {args.bank}, {len(rows)} held-out tasks of tools/data/test.jsonl")
    print(f"{'calls':<6}{'n':>5}" + "".join(f"{label:>{w}}" for _, label, w in COLUMNS) + f"{'s/task':>8}")
    for k in sorted(groups, key=lambda x: (x == "all", x)):
        g = groups[k]
        rates = "".join(f"{sum(r[key] for r in g) / len(g):>{w}.3f}" for key, _, w in COLUMNS)
        print(f"{k:<6}{len(g):>5}{rates}{statistics.median(r['seconds'] for r in g):>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
