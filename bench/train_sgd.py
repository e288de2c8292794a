"""Issue-3 benchmark: train memory tokens for the 20 most frequent SGD tools and score them on dev.

    python bench/train_sgd.py --tools 20 --per-tool 100 --epochs 1 --eval-limit 300 --out runs/sgd-20

Prints training throughput (tokens/s, seconds per 100 traces), wall time, and on the `dev.jsonl` records
whose tools are all among the trained ones: tool-selection accuracy (exact ordered tool sequence),
tool F1, argument F1 and exact match, with plain greedy decoding over the full vocabulary (paper protocol).
Writes everything to OUT/bench.json; the bank to OUT/bank.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.datasets import cap_per_tool, filter_by_tools, sgd, top_tools
from evals.metrics import Example, aggregate
from tokmem_agent import Call, LoraSettings, MemoryConfig, TrainConfig
from tokmem_agent.model.loader import load_base_model
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import tools_in


def predict_calls(tm: TokMem, trace) -> tuple[list[Call], list[str], float]:
    t0 = time.perf_counter()
    pred = tm.predict(trace.compositional_context(), max_new_tokens=160)
    calls, raw = [], []
    for c in pred.calls:
        raw.append(c.arguments)
        try:
            args = json.loads(c.arguments)
        except json.JSONDecodeError:
            args = None
        calls.append(Call(c.name, args if isinstance(args, dict) else {}))
    return calls, raw, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tools", type=int, default=20)
    ap.add_argument("--per-tool", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--mode", default="tied")
    ap.add_argument("--eval-limit", type=int, default=300)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="runs/sgd-20")
    ap.add_argument("--resume", action="store_true", help="continue the training checkpoint in OUT/bank")
    ap.add_argument("--from-bank", default=None, metavar="BANK",
                    help="start from this trained bank (e.g. a second pass, or an adaptation round with --lora)")
    ap.add_argument("--lora", action="store_true", help="adaptation round: train LoRA (q,v) with the memory rows")
    ap.add_argument("--decision-weight", type=float, default=1.0,
                    help="loss weight of the decision tokens (1, the paper's uniform loss, as these runs were measured)")
    ap.add_argument("--lora-r", type=int, default=8, help="LoRA rank of the adaptation round")
    ap.add_argument("--lora-lr", type=float, default=2e-4, help="LoRA learning rate of the adaptation round")
    ap.add_argument("--eval-only", default=None, metavar="BANK",
                    help="skip training; score this bank (e.g. OUT/bank/checkpoint) on dev")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train_all = sgd("train")
    names = top_tools(train_all, args.tools)
    train = cap_per_tool(filter_by_tools(train_all, names), args.per_tool, seed=0)
    dev = filter_by_tools(sgd("dev"), names)
    random.Random(0).shuffle(dev)
    dev = dev[: args.eval_limit]
    n_multi = sum(len(t.calls) > 1 for t in train)
    print(f"{len(names)} tools; {len(train)} training traces ({n_multi} multi-call); {len(dev)} dev records")

    t0 = time.perf_counter()
    loaded = load_base_model(args.model)
    load_s = time.perf_counter() - t0
    if args.eval_only:
        tm = TokMem.load(args.eval_only, loaded)
        training = tm.meta.get("training") or {}
        print(f"scoring {args.eval_only}: {training.get('steps', '?')} steps trained")
        evaluate_dev(tm, dev, out, {"bank": args.eval_only, "trained_steps": training.get("steps")})
        return
    defs = tools_in(train_all)
    if args.from_bank:
        tm = TokMem.load(args.from_bank, loaded)
    else:
        tm = TokMem.create([defs[n] for n in names], loaded, memory=MemoryConfig(mode=args.mode))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length,
                      eval_fraction=0.03, max_eval=60, checkpoint_every=25,
                      lora=LoraSettings(r=args.lora_r, alpha=2 * args.lora_r, target_modules=["q_proj", "v_proj"])
                      if args.lora else None,
                      lora_lr=args.lora_lr, decision_weight=args.decision_weight)
    if args.resume:
        tm = TokMem.load(out / "bank" / "checkpoint", loaded)
    res = tm.train(train, cfg, out_dir=out / "bank", resume=args.resume)
    print(f"training: {res.seconds:.0f} s, {res.steps} steps, {res.tokens_per_s:.0f} tokens/s, "
          f"{res.seconds / max(res.n_train * args.epochs, 1) * 100:.1f} s per 100 traces; history {res.history}")

    report = {"tools": names, "from_bank": args.from_bank, "lora": args.lora, "lora_r": args.lora_r,
              "lora_lr": args.lora_lr, "n_train": res.n_train, "n_multi": n_multi, "epochs": args.epochs,
              "train_seconds": res.seconds, "tokens_per_s": res.tokens_per_s, "model_load_s": load_s,
              "seconds_per_100_traces": res.seconds / max(res.n_train * args.epochs, 1) * 100,
              "history": res.history}
    evaluate_dev(tm, dev, out, report)


def evaluate_dev(tm: TokMem, dev: list, out: Path, report: dict) -> None:
    examples, lat = [], []
    for i, t in enumerate(dev):
        calls, raw, s = predict_calls(tm, t)
        lat.append(s)
        examples.append(Example.from_trace(t, calls, raw_args=raw))
        if (i + 1) % 50 == 0:
            m = aggregate(examples)["overall"]
            print(f"  dev {i + 1}/{len(dev)}: tool acc {m['tool_accuracy']:.3f} arg F1 {m['arg_f1']:.3f}", flush=True)
    metrics = aggregate(examples)
    o = metrics["overall"]
    print(f"dev ({o['n']} records): tool selection accuracy {o['tool_accuracy']:.3f}, tool F1 {o['tool_f1']:.3f}, "
          f"arg F1 {o['arg_f1']:.3f}, exact match {o['exact_match']:.3f}, JSON valid {o['json_valid']:.3f}; "
          f"{sum(lat) / len(lat):.2f} s/query")
    for k, v in sorted(metrics["by_n_calls"].items()):
        print(f"  {k} call(s): n={v['n']} tool acc {v['tool_accuracy']:.3f} arg F1 {v['arg_f1']:.3f} EM {v['exact_match']:.3f}")
    report.update({"dev": metrics, "latency_s_per_query": sum(lat) / len(lat)})
    (out / "bench.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
