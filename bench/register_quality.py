"""Tools registered from their schemas alone on the demo bank: do they work, and do the old ones still?
(issue 17's demo-bank figures)

    python bench/register_quality.py [--bank tools/banks/demo] [--old bench/data/pack_requests_b.jsonl]
           [--new bench/data/new_tool_requests.jsonl] [--synth 40] [--json out.json]
           [--save-bank DIR | --load-bank DIR] [--controller KEY=VALUE ...]

``--save-bank`` keeps the bank with the new tools; ``--load-bank`` scores such a bank again without
registering (with ``--new-only``, another request set or other ``--controller`` settings).

1. The bank as shipped on ``--old`` (hand-written pack requests, 20 of them need no tool): the "before".
2. Each tool of ``tools/extra.py`` registered with ``TokMem.register([tool])`` — no traces, so synthetic ones
   from its schema and docstring; one at a time, each timed.
3. ``--new`` (hand-written requests for the three new tools, never used to build anything) and ``--old``
   again, through the agent with all 13 tools, scored as ``bench/agent_quality.py`` scores (calls judged by
   their results).

Prints both tables and the targets: new-tool task success ≥ 0.75, the old set's success within 2 points,
no-tool messages ≥ 0.95 without a call, ≤ 60 s per tool.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import agent_quality as AQ
from bench.agent_paths import agent_path
from tools import extra


def evaluate(tm, path: Path, label: str, config=None) -> dict:
    rows = []
    runner = agent_path(tm, config)
    for rec in AQ.load_records(path):
        row = AQ.run_record(tm, rec, config, runner)
        rows.append(row)
        names = ",".join(c["name"] if c["status"] == "ok" else f"{c['name']}!{c['status']}" for c in row["pred"])
        print(f"{label} {row['id']} {'ok' if row['success'] else '✗':<2} [{names}] "
              f"{' '.join(row['answer'].split())[:60]!r}", flush=True)
    return {"rows": rows, "summary": AQ.summarize(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bank", default=str(ROOT / "tools/banks/demo"))
    ap.add_argument("--old", default=str(AQ.DATA_B))
    ap.add_argument("--new", default=str(ROOT / "bench/data/new_tool_requests.jsonl"))
    ap.add_argument("--synth", type=int, default=40, help="synthetic traces per new tool")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-only", action="store_true", help="skip --old before and after (a quick look)")
    ap.add_argument("--run-tools", default="read_only", choices=["read_only", "always", "never"])
    ap.add_argument("--dialogues", type=float, help="share of synthetic conversations (default: RegisterConfig's)")
    ap.add_argument("--seed", type=int, default=0, help="registration seed (synthetic traces and training)")
    ap.add_argument("--decision-weight", type=float)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--renormalize", choices=["cap", "mean", "off"], help="default: RegisterConfig's")
    ap.add_argument("--no-bias", action="store_true", help="RegisterConfig.calibrate_bias=False")
    ap.add_argument("--ground-numbers", choices=["on", "off"], default="on")
    ap.add_argument("--ground-places", choices=["zero_data", "on", "off"], default="zero_data")
    ap.add_argument("--controller", action="append", default=[], metavar="KEY=VALUE",
                    help="a ControllerConfig field (repeatable), e.g. lead_answers=false")
    ap.add_argument("--load-bank", help="skip registration: evaluate this bank (one --save-bank wrote)")
    ap.add_argument("--save-bank", help="save the bank with the new tools here (for a closer look)")
    ap.add_argument("--json")
    a = ap.parse_args()

    import torch

    from tokmem_agent import RegisterConfig
    from tokmem_agent.config import fast_bf16_available
    from tokmem_agent.model.loader import load_base_model
    from tokmem_agent.tokmem import TokMem

    torch.set_num_threads(a.threads)
    cpu = "AVX512-BF16" if fast_bf16_available() else "no AVX512-BF16 (AVX2)"
    from tokmem_agent import ControllerConfig
    from tokmem_agent.config import parse_overrides
    from tools.basic import TODAY

    ccfg = ControllerConfig(ground_numbers=a.ground_numbers == "on", today=TODAY.isoformat(),
                            ground_places={"zero_data": "zero_data", "on": True, "off": False}[a.ground_places],
                            **parse_overrides(a.controller))
    tm = TokMem.load(a.bank, load_base_model(None))
    before = None if a.new_only else evaluate(tm, Path(a.old), "before", ccfg)
    if a.load_bank:
        tm = TokMem.load(a.load_bank, load_base_model(None))  # a fresh base: loading wraps it
    rcfg = RegisterConfig(synth_per_tool=a.synth, run_tools=a.run_tools)
    if a.dialogues is not None:
        rcfg.synth_dialogue_rate = a.dialogues
    rcfg.train.seed = a.seed
    rcfg.calibrate_bias = not a.no_bias
    if a.decision_weight is not None:
        rcfg.train.decision_weight = a.decision_weight
    if a.epochs is not None:
        rcfg.train.epochs = a.epochs
    if a.lr is not None:
        rcfg.train.lr = a.lr
    if a.renormalize:
        rcfg.train.renormalize = {"cap": "cap", "mean": True, "off": False}[a.renormalize]
    seconds = {}
    for fn in extra.TOOLS if not a.load_bank else ():
        t0 = time.perf_counter()
        res = tm.register([fn], None, config=rcfg)
        seconds[fn.__name__] = time.perf_counter() - t0
        bias = f", logit bias {res.row_bias[fn.__name__]:+.2f}" if fn.__name__ in res.row_bias else ""
        if fn.__name__ in res.answer_bias:
            bias += f", answer bias {res.answer_bias[fn.__name__]:+.2f}"
        print(f"registered {fn.__name__}: {res.n_synthetic} synthetic traces, {res.n_anchors} anchors{bias}, "
              f"{seconds[fn.__name__]:.1f} s ({cpu}, {a.threads} threads)", flush=True)
    AQ.EXTRA_TOOLS[:] = extra.TOOLS
    if a.save_bank:
        tm.save(a.save_bank)
    new = evaluate(tm, Path(a.new), "new", ccfg)
    print(f"\nnew tools ({Path(a.new).name}, n={len(new['rows'])}):\n" + AQ.format_table(new["summary"]))
    if before is None:
        if a.json:
            Path(a.json).write_text(json.dumps({"cpu": cpu, "register_seconds": seconds, "new": new}, indent=1,
                                               ensure_ascii=False) + "\n", encoding="utf-8")
        return
    after = evaluate(tm, Path(a.old), "after", ccfg)
    print(f"\n{Path(a.old).name} before (n={len(before['rows'])}):\n" + AQ.format_table(before["summary"]))
    print(f"\n{Path(a.old).name} after registering {len(extra.TOOLS)} tools:\n" + AQ.format_table(after["summary"]))
    s_new = new["summary"]["all"]["success"]
    drop = before["summary"]["all"]["success"] - after["summary"]["all"]["success"]
    no_call = after["summary"].get("no_tool", {}).get("no_call")
    slowest = max(seconds.values(), default=0.0)
    print(f"\ntargets: new-tool success {s_new:.3f} (≥ 0.75: {'met' if s_new >= 0.75 else 'missed'}); old set "
          f"{drop * 100:+.1f} points lower (≤ 2: {'met' if drop <= 0.02 + 1e-9 else 'missed'}); no-tool without a "
          f"call {no_call:.3f} (≥ 0.95: {'met' if no_call is not None and no_call >= 0.95 else 'missed'}); "
          f"slowest registration {slowest:.1f} s (≤ 60: {'met' if slowest <= 60 else 'missed'}); {cpu}")
    if a.json:
        Path(a.json).write_text(json.dumps({"cpu": cpu, "register_seconds": seconds, "new": new, "before": before,
                                            "after": after}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
