"""Issue-6 benchmark: register tools on a trained SGD bank and measure forgetting.

    python -m evals.continual --base runs/sgd-20/bank --out reports/continual

Starting from a bank trained on the 20 most frequent SGD tools (``bench/train_sgd.py``), each variant
registers new tools on a fresh copy of that bank and scores old and new tools before and after:

* ``traces``          the next 10 most frequent tools, with their training traces (≤ --per-tool each),
                      trained against the base bank's anchors (the default ``register``);
* ``traces-noanchors`` the same without the anchor loss (the paper's method: renormalisation only);
* ``replay``          no bank anchors; 16 training traces per old tool given as replay (they become anchors);
* ``traces-norenorm`` the same as ``traces`` without renormalisation (ablation of paper eq. 5-6);
* ``decoupled``       the same on a decoupled copy of the bank (address and steering rows train apart);
* ``zero``            the next 10 tools with no traces (synthetic traces from their schemas);
* ``init-only``       the next 10 tools with rows initialised and not trained (the floor);
* ``unseen``          the 15 tools only ``dev.jsonl`` calls, zero-data.

Scores: teacher-forced tool selection (argmax over the full vocabulary at each gold tool position, on up to
--tf-eval dev records per group: cheap and precise, the forgetting measure) and, on --n-eval records per
group, generated calls with schema-constrained arguments: tool-selection accuracy (exact tool sequence) and
argument F1. Also the wall time to register one tool with 50 traces (default RegisterConfig).
Every variant asserts that the old rows and the backbone stay bit-identical. A base bank without anchors
(trained before they existed) gets --anchors-per-tool of them from its own tools' training traces, as
training now does.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import torch

from tokmem_agent import RegisterConfig, TrainConfig
from tokmem_agent.model.loader import load_base_model
from tokmem_agent.model.memory import MemoryBank
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import Trace, tools_in
from tokmem_agent.training.anchors import Anchors
from tokmem_agent.training.dataset import encode_traces
from tokmem_agent.training.trainer import evaluate

from .datasets import cap_per_tool, filter_by_tools, sgd, top_tools
from .methods import TokMemMethod
from .metrics import Example, aggregate

VARIANTS = ["traces", "traces-noanchors", "replay", "traces-norenorm", "decoupled", "zero", "init-only", "unseen"]


def teacher_forced(tm: TokMem, traces: list[Trace]) -> float | None:
    if not traces:
        return None
    examples, _ = encode_traces(tm.chat, traces, max_length=768)
    pad = tm.pad_id
    return evaluate(tm.model, examples, pad, batch_size=4)["eval_tool_acc"]


def generated(tm: TokMem, traces: list[Trace]) -> dict[str, Any]:
    if not traces:
        return {}
    method = TokMemMethod(tm, constrained=True, max_new_tokens=96)
    examples = []
    for t in traces:
        out = method.predict(t)
        examples.append(Example.from_trace(t, out.calls, raw_args=out.raw_args))
    o = aggregate(examples)["overall"]
    return {"tool_accuracy": o["tool_accuracy"], "tool_f1": o["tool_f1"], "arg_f1": o["arg_f1"], "n": o["n"]}


def score(tm: TokMem, groups: dict[str, tuple[list[Trace], list[Trace]]]) -> dict[str, Any]:
    out = {}
    for name, (tf_set, gen_set) in groups.items():
        t0 = time.perf_counter()
        out[name] = {"tf_tool_acc": teacher_forced(tm, tf_set), "n_tf": len(tf_set), **generated(tm, gen_set)}
        print(f"    {name}: {out[name]}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def snapshot(tm: TokMem) -> dict[str, torch.Tensor]:
    return {n: torch.stack([m.detach()[i].clone() for m in tm.bank.matrices()]) for i, n in enumerate(tm.bank.names)}


def untouched(tm: TokMem, before: dict[str, torch.Tensor], backbone: dict[str, torch.Tensor]) -> bool:
    rows_ok = all(torch.equal(torch.stack([m.detach()[tm.bank.index(n)] for m in tm.bank.matrices()]), r)
                  for n, r in before.items())
    return rows_ok and all(torch.equal(v, backbone[k]) for k, v in tm.model.base.state_dict().items())


def to_decoupled(tm: TokMem) -> None:
    """Make the bank decoupled in place: address and steering both start as the tied rows."""
    rows = tm.bank.steer.detach().clone()
    bank = MemoryBank(tm.bank.hidden_size, "decoupled")
    bank.add(list(tm.bank.names), rows, rows.clone())
    tm.model.bank = bank
    tm.memory_config.mode = "decoupled"


def ensure_anchors(tm: TokMem, train: list[Trace], per_tool: int = 16) -> None:
    """Give a bank trained before anchors existed the anchors training now keeps (from its tools' traces)."""
    if tm.anchors is not None and len(tm.anchors):
        return
    t0 = time.perf_counter()
    tm.anchors = tm.anchors_from(cap_per_tool(filter_by_tools(train, tm.tool_names), per_tool, seed=2),
                                 per_tool=per_tool, max_length=768)
    print(f"bank has no anchors: collected {len(tm.anchors)} from its tools' training traces "
          f"({time.perf_counter() - t0:.0f} s)")


def sample(traces: list[Trace], n: int, seed: int = 0) -> list[Trace]:
    traces = list(traces)
    random.Random(seed).shuffle(traces)
    return traces[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="bank trained on the top SGD tools (bench/train_sgd.py)")
    ap.add_argument("--out", default="reports/continual")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--next", type=int, default=10, help="how many next-most-frequent tools to register")
    ap.add_argument("--per-tool", type=int, default=50, help="training traces per registered tool")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of registration training (traces variants)")
    ap.add_argument("--synth", type=int, default=40, help="synthetic traces per tool (zero-data variants)")
    ap.add_argument("--synth-epochs", type=int, default=3)
    ap.add_argument("--tf-eval", type=int, default=200, help="dev records per group, teacher-forced")
    ap.add_argument("--n-eval", type=int, default=30, help="dev records per group, generated")
    ap.add_argument("--anchors-per-tool", type=int, default=16, help="anchors for a base bank that has none")
    ap.add_argument("--anchor-weight", type=float, default=10.0, help="anchor weight of variants without @<weight>")
    ap.add_argument("--time-one", action="store_true", help="also time registering one tool with 50 traces")
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    loaded = load_base_model(args.model)
    base = TokMem.load(args.base, loaded)
    old = list(base.tool_names)
    train_all, dev_all = sgd("train"), sgd("dev")
    ranking = top_tools(train_all, len(old) + args.next)
    if set(ranking[: len(old)]) != set(old):
        print("note: the base bank's tools are not the top SGD tools; 'next' = next most frequent others")
    nxt = [n for n in ranking if n not in old][: args.next]
    train_names = {c.name for t in train_all for c in t.calls}
    unseen = sorted({c.name for t in dev_all for c in t.calls} - train_names)
    defs = {**tools_in(train_all), **tools_in(dev_all)}

    def group(names: list[str], seed: int) -> tuple[list[Trace], list[Trace]]:
        recs = filter_by_tools(dev_all, names)
        return sample(recs, args.tf_eval, seed), sample(recs, args.n_eval, seed + 1)

    g_old, g_next, g_unseen = group(old, 0), group(nxt, 1), group(unseen, 2)
    print(f"{len(old)} old tools; next {len(nxt)}: {nxt}; unseen {len(unseen)}: {unseen}")
    print(f"dev groups (teacher-forced / generated): old {len(g_old[0])}/{len(g_old[1])}, "
          f"next {len(g_next[0])}/{len(g_next[1])}, unseen {len(g_unseen[0])}/{len(g_unseen[1])}")
    backbone = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    report: dict[str, Any] = {"base": args.base, "old_tools": old, "next_tools": nxt, "unseen_tools": unseen,
                              "args": vars(args)}
    results_path = out / "continual.json"
    same = ("base", "next", "per_tool", "epochs", "tf_eval", "n_eval", "anchors_per_tool")
    if results_path.exists():  # same setting: keep its variants and its "before" (results accumulate)
        prev = json.loads(results_path.read_text())
        if all(prev["args"].get(k) == vars(args)[k] for k in same) and prev["base"] == args.base:
            print(f"adding to {results_path} (variants there: {[k for k in prev if k in _variant_keys(prev)]})")
            report = {**prev, "args": vars(args)}
    old_traces = cap_per_tool(filter_by_tools(train_all, old), 16, seed=1)
    anchors_path = out / "base_anchors.pt"
    if anchors_path.exists() and "before" in report:
        saved = torch.load(anchors_path)
        base.anchors = Anchors(saved["h"], saved["tools"])
    ensure_anchors(base, train_all, args.anchors_per_tool)
    torch.save({"h": base.anchors.h, "tools": base.anchors.tools}, anchors_path)
    report["base_anchors"] = len(base.anchors)
    if "before" not in report:
        print("before registration:")
        report["before"] = score(base, {"old": g_old})

    next_traces = cap_per_tool(filter_by_tools(train_all, nxt), args.per_tool, seed=0)
    for spec in [v for v in args.variants.split(",") if v]:
        variant, _, weight = spec.partition("@")  # traces@4: anchor weight 4
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; choose from {VARIANTS} (optionally @<anchor weight>)")
        anchor_weight = float(weight) if weight else args.anchor_weight
        tm = TokMem.load(args.base, loaded)
        tm.anchors = None if variant == "replay" else base.anchors
        if variant == "decoupled":
            to_decoupled(tm)
        before = snapshot(tm)
        names = unseen if variant == "unseen" else nxt
        tools = [defs[n] for n in names]
        with_traces = ("traces", "traces-noanchors", "replay", "traces-norenorm", "decoupled")
        traces = next_traces if variant in with_traces else None
        replay = old_traces if variant == "replay" else ()
        epochs = args.epochs if traces else args.synth_epochs
        cfg = RegisterConfig(synth_per_tool=args.synth, replay_per_tool=16, train=TrainConfig(
            epochs=epochs, eval_fraction=0.0, renormalize=variant != "traces-norenorm", max_length=768, decision_weight=1.0,
            anchor_weight=0.0 if variant == "traces-noanchors" else anchor_weight))
        print(f"[{spec}] registering {len(names)} tools "
              f"({f'{len(traces)} traces' if traces else 'zero-data' if variant != 'init-only' else 'init only'})")
        t0 = time.perf_counter()
        if variant == "init-only":
            tm.add_tools(tools)
            n_traces = 0
        else:
            res = tm.register(tools, traces, replay=replay, config=cfg)
            n_traces = res.n_traces
        seconds = time.perf_counter() - t0
        ok = untouched(tm, before, backbone)
        print(f"  {seconds:.0f} s, {n_traces} traces; old rows and backbone bit-identical: {ok}")
        new_group = g_unseen if variant == "unseen" else g_next
        report[spec] = {"seconds": seconds, "n_traces": n_traces, "old_untouched": ok, "anchor_weight":
                        cfg.train.anchor_weight if variant != "init-only" else None,
                           "after": score(tm, {"old": g_old, "new": new_group})}
        results_path.write_text(json.dumps(report, indent=2))

    if args.time_one:
        tm = TokMem.load(args.base, loaded)
        one = nxt[0]
        traces = cap_per_tool(filter_by_tools(train_all, [one]), 50, seed=0)
        t0 = time.perf_counter()
        tm.anchors = base.anchors
        res = tm.register([defs[one]], traces)  # default RegisterConfig (3 epochs)
        report["time_one"] = {"tool": one, "n_traces": res.n_traces, "seconds": time.perf_counter() - t0}
        print(f"registering one tool ({one}) with {res.n_traces} traces, default settings: "
              f"{report['time_one']['seconds']:.0f} s")
    results_path.write_text(json.dumps(report, indent=2))
    print_table(report)


def _variant_keys(report: dict[str, Any]) -> list[str]:
    return [k for k in report if k.partition("@")[0] in VARIANTS]


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def print_table(report: dict[str, Any]) -> None:
    b = report["before"]["old"]
    print("\n| variant | old TF tool sel | Δ pts | old gen tool acc | old arg F1 | new TF tool sel | new gen tool acc "
          "| new arg F1 | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| before | {_pct(b['tf_tool_acc'])} | | {_pct(b.get('tool_accuracy'))} | {_pct(b.get('arg_f1'))} "
          "| | | | |")
    for v in _variant_keys(report):
        o, n = report[v]["after"]["old"], report[v]["after"]["new"]
        delta = (o["tf_tool_acc"] - b["tf_tool_acc"]) * 100
        print(f"| {v} | {_pct(o['tf_tool_acc'])} | {delta:+.1f} | {_pct(o.get('tool_accuracy'))} "
              f"| {_pct(o.get('arg_f1'))} | {_pct(n['tf_tool_acc'])} | {_pct(n.get('tool_accuracy'))} "
              f"| {_pct(n.get('arg_f1'))} | {report[v]['seconds']:.0f} |")


if __name__ == "__main__":
    main()
