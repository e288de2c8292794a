"""Batched decoding in the eval harness: the ``tokmem`` method on SGD dev records, batch 1 against batch B,
side by side in one run (issue 15's figure: ≥ 3× throughput at batch 8 on 2 CPU cores, same predictions).

    python bench/batch_decode.py [--bank banks/sgd-batch] [--limit 100] [--batch-size 8[,16]] [--tools 20]

Without a bank at ``--bank`` it first trains one (memory rows only, 1 epoch, ``--per-tool`` traces for each
of the ``--tools`` most frequent SGD train tools; a few minutes) — the throughput comparison needs a bank
that calls tools, not a good one. The dev records are those whose tools are all in the bank, a seeded
sample of ``--limit``. Both runs use :class:`evals.methods.TokMemMethod` (schema-constrained, the bank's
call threshold unless ``--call-threshold``): batch 1 is ``predict`` per record, batch B one ``predict_many``
over all records (continuous batching: at most B rows decode together; a finished record's row goes to the
next). Prints wall time,
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
from tokmem_agent.decoding.generate import DecodeSession
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
    ap.add_argument("--batch-size", type=lambda v: [int(x) for x in v.split(",")], default=[8],
                    help="one or more batch sizes, comma-separated (8,16)")
    ap.add_argument("--tools", type=int, default=20)
    ap.add_argument("--per-tool", type=int, default=15)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--call-threshold", default="bank", help="bank (default), off, or a probability")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    loaded = load_base_model(None)
    tm = get_bank(Path(a.bank), loaded, a.tools, a.per_tool)
    dev = filter_by_tools(sgd("dev"), tm.tool_names)
    random.Random(0).shuffle(dev)
    dev = dev[: a.limit]
    threshold = a.call_threshold if a.call_threshold in ("bank", "off") else float(a.call_threshold)
    method = TokMemMethod(tm, max_new_tokens=a.max_new_tokens, call_threshold=threshold)
    print(f"{len(dev)} SGD dev records, {len(tm.tool_names)} tools; {cpu_flags()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={threads}", flush=True)

    t0 = time.perf_counter()
    one = [method.predict(t) for t in dev]
    t1 = time.perf_counter() - t0
    gen1 = sum(o.generated_tokens for o in one)
    # the prompts' prefill alone: the part of batch 1's time that batching leaves as it is (each prompt is
    # prefilled on its own either way; on a CPU a prompt's matmuls already run at full speed)
    t0 = time.perf_counter()
    for t in dev:
        DecodeSession(tm.model).feed(tm.chat.prompt_ids(t.compositional_context()))
    prefill = time.perf_counter() - t0
    figures: dict = {"n": len(dev), "cpu": cpu_flags(), "threads": threads, "call_threshold": a.call_threshold,
                     "with_calls": sum(bool(o.calls) for o in one), "generated_tokens_mean": gen1 / len(dev),
                     "seconds_batch1": t1, "records_per_s_batch1": len(dev) / t1, "prefill_seconds": prefill,
                     "batches": {}}
    print(f"batch 1: {t1:7.1f} s  {len(dev) / t1:6.2f} rec/s  {gen1 / t1:7.1f} gen tok/s  "
          f"(prefill alone {prefill:.1f} s = {prefill / t1:.0%})", flush=True)
    for size in a.batch_size:
        t0 = time.perf_counter()
        many = method.predict_many(dev, batch_size=size)
        tb = time.perf_counter() - t0
        same = sum(x.raw_args == y.raw_args and [c.to_dict() for c in x.calls] == [c.to_dict() for c in y.calls]
                   for x, y in zip(one, many))
        genb = sum(o.generated_tokens for o in many)
        # if batching made decoding free, the time left would be the prefill: the ratio's ceiling
        figures["batches"][size] = {"seconds": tb, "records_per_s": len(dev) / tb,
                                    "generated_tokens_per_s": genb / tb, "throughput_ratio": t1 / tb,
                                    "identical_predictions": same,
                                    "decode_speedup": (t1 - prefill) / max(tb - prefill, 1e-9)}
        print(f"batch {size}: {tb:7.1f} s  {len(dev) / tb:6.2f} rec/s  {genb / tb:7.1f} gen tok/s  ratio "
              f"{t1 / tb:.2f}x (decoding alone {(t1 - prefill) / max(tb - prefill, 1e-9):.2f}x); identical "
              f"predictions {same}/{len(dev)}", flush=True)
    print(f"records with calls {figures['with_calls']}; generated tokens per record {gen1 / len(dev):.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
