"""Batched decoding in the eval harness: the ``tokmem`` method on SGD dev records, batch 1 against batch B,
side by side in one run (issue 15's figure: ≥ 3× throughput at batch 8 on 2 CPU cores, same predictions).

    python bench/batch_decode.py [--bank banks/sgd-batch] [--limit 100] [--batch-size 8] [--tools 20]

Without a bank at ``--bank`` it first trains one (memory rows only, 1 epoch, ``--per-tool`` traces for each
of the ``--tools`` most frequent SGD train tools; a few minutes) — the throughput comparison needs a bank
that calls tools, not a good one. The dev records are those whose tools are all in the bank, a seeded
sample of ``--limit``. Both runs use :class:`evals.methods.TokMemMethod` (schema-constrained, the bank's
call threshold): batch 1 is ``predict`` per record, batch B ``predict_many`` per chunk. Prints wall time,
records/s, generated tokens/s, the ratio, and how many predictions (calls and raw argument text) are
identical. Reads ``../shared/data/sgd`` (a benchmark, not part of the library).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.datasets import cap_per_tool, filter_by_tools, sgd, top_tools
from evals.methods import TokMemMethod
from tokmem_agent import TrainConfig
from tokmem_agent.config import fast_bf16_available
from tokmem_agent.model.loader import load_base_model
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import tools_in


def cpu_flags() -> str:
    return "AVX512-BF16" if fast_bf16_available() else "no AVX512-BF16 (AVX2)"


def get_bank(path: Path, loaded, n_tools: int, per_tool: int) -> TokMem:
    if (path / "tokmem_config.json").is_file():
        return TokMem.load(path, loaded)
    train = sgd("train")
    names = top_tools(train, n_tools)
    traces = cap_per_tool(filter_by_tools(train, names), per_tool)
    defs = tools_in(traces)
    tm = TokMem.create([defs[n] for n in names], loaded)
    print(f"training a bank for {len(names)} SGD tools on {len(traces)} traces (memory rows, 1 epoch) → {path}",
          flush=True)
    tm.train(traces, TrainConfig(epochs=1, decision_weight=1.0), out_dir=path)  # saves the bank there
    return tm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bank", default="banks/sgd-batch")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--tools", type=int, default=20)
    ap.add_argument("--per-tool", type=int, default=15)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    loaded = load_base_model(None)
    tm = get_bank(Path(a.bank), loaded, a.tools, a.per_tool)
    dev = filter_by_tools(sgd("dev"), tm.tool_names)
    random.Random(0).shuffle(dev)
    dev = dev[: a.limit]
    method = TokMemMethod(tm, max_new_tokens=a.max_new_tokens)
    print(f"{len(dev)} SGD dev records, {len(tm.tool_names)} tools; {cpu_flags()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={threads}", flush=True)

    t0 = time.perf_counter()
    one = [method.predict(t) for t in dev]
    t1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    many = []
    for i in range(0, len(dev), a.batch_size):
        many += method.predict_many(dev[i:i + a.batch_size])
    tb = time.perf_counter() - t0

    same = sum(x.raw_args == y.raw_args and [c.to_dict() for c in x.calls] == [c.to_dict() for c in y.calls]
               for x, y in zip(one, many))
    gen1, genb = sum(o.generated_tokens for o in one), sum(o.generated_tokens for o in many)
    figures = {"n": len(dev), "batch_size": a.batch_size, "seconds_batch1": t1, "seconds_batch": tb,
               "records_per_s_batch1": len(dev) / t1, "records_per_s_batch": len(dev) / tb,
               "generated_tokens_per_s_batch1": gen1 / t1, "generated_tokens_per_s_batch": genb / tb,
               "throughput_ratio": t1 / tb, "identical_predictions": same, "cpu": cpu_flags(),
               "with_calls": sum(bool(o.calls) for o in one)}
    print(f"batch 1: {t1:7.1f} s  {len(dev) / t1:6.2f} rec/s  {gen1 / t1:7.1f} gen tok/s")
    print(f"batch {a.batch_size}: {tb:7.1f} s  {len(dev) / tb:6.2f} rec/s  {genb / tb:7.1f} gen tok/s")
    print(f"throughput ratio {t1 / tb:.2f}x; identical predictions {same}/{len(dev)}; "
          f"records with calls {figures['with_calls']}")
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
