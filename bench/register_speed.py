"""Issue-6 benchmark: wall time to register one tool with 50 traces, prompt-prefix cache on vs off.

    python bench/register_speed.py --base runs/sgd-20/bank --repeats 1

Registers the same tool on fresh copies of the bank with the default ``RegisterConfig`` (3 epochs, anchors),
alternating ``prefix_cache_mb`` default / 0, and prints each wall time (``RegisterResult.seconds``: from the
call to the trained bank, anchors collected) and the ratio, measured side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.continual import ensure_anchors
from evals.datasets import cap_per_tool, filter_by_tools, sgd
from tokmem_agent import RegisterConfig
from tokmem_agent.model.loader import load_base_model
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import tools_in


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="a trained SGD bank (bench/train_sgd.py)")
    ap.add_argument("--tool", default="Services_1_BookAppointment")
    ap.add_argument("--traces", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the timings as JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_base_model()
    train = sgd("train")
    tool = tools_in(train)[args.tool]
    traces = cap_per_tool(filter_by_tools(train, [args.tool]), args.traces, seed=0)
    base = TokMem.load(args.base, loaded)
    ensure_anchors(base, train)
    default = RegisterConfig()
    settings = {"prefix cache": default, "no prefix cache": replace(default, train=replace(default.train,
                                                                                           prefix_cache_mb=0))}
    times: dict[str, list[float]] = {k: [] for k in settings}
    print(f"registering {args.tool} with {len(traces)} traces, {default.train.epochs} epochs, "
          f"{torch.get_num_threads()} threads")
    for r in range(args.repeats):
        for name, cfg in settings.items():
            tm = TokMem.load(args.base, loaded)
            tm.anchors = base.anchors
            t0 = time.perf_counter()
            res = tm.register([tool], traces, config=cfg)
            wall = time.perf_counter() - t0
            times[name].append(res.seconds)
            cache = tm.meta["training"].get("prefix_cache")
            print(f"  run {r + 1}, {name}: {res.seconds:.1f} s ({wall:.1f} s wall, {res.train.steps} steps, "
                  f"{res.n_anchors} anchors, prefix cache {cache})", flush=True)
    mean = {k: sum(v) / len(v) for k, v in times.items()}
    print(f"\nmean: prefix cache {mean['prefix cache']:.1f} s, without {mean['no prefix cache']:.1f} s; "
          f"speed-up {mean['no prefix cache'] / mean['prefix cache']:.2f}x")
    if args.out:
        Path(args.out).write_text(json.dumps({"tool": args.tool, "n_traces": len(traces), "times": times,
                                              "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    main()
