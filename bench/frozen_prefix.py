"""Training step cost with and without the frozen prompt prefix, side by side in one run.

    python bench/frozen_prefix.py [--tools 20] [--batches 12] [--batch-size 4] [--threads 2]

When only memory rows train, the positions before a batch's first memory token cannot depend on them, so
``TokMemModel.target_loss(frozen_prefix=True)`` runs them without autograd and only the rest with it.
This times full optimizer steps (forward, backward, AdamW) on the same SGD batches (the 20 most frequent
tools' training records, compositional or chain reading), alternating the two settings
batch by batch so machine load hits both alike, and prints per-step medians, tokens/s and their ratio, plus
the largest relative gradient difference (it must be float noise).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.datasets import cap_per_tool, filter_by_tools, sgd, top_tools
from tokmem_agent.model.loader import load_base_model
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import tools_in
from tokmem_agent.training.dataset import collate, encode_traces, make_batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tools", type=int, default=20)
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reading", default="compositional", choices=["compositional", "chain"],
                    help="compositional: what train/register use by default; chain: with results and answers")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    train = sgd("train")
    names = top_tools(train, args.tools)
    traces = cap_per_tool(filter_by_tools(train, names), 20)
    loaded = load_base_model(None)
    defs = tools_in(traces)
    tm = TokMem.create([defs[n] for n in names], loaded)
    examples, _ = encode_traces(tm.chat, traces, max_length=args.max_length, reading=args.reading)
    batches = make_batches(examples, args.batch_size, seed=0)[: args.batches]
    pad = tm.tokenizer.pad_token_id or 0
    mats = tm.bank.matrices()
    for m in mats:
        m.requires_grad_(True)
    opt = torch.optim.AdamW(mats, lr=5e-3, weight_decay=0.0)

    times: dict[bool, list[float]] = {False: [], True: []}
    tokens = prefix = 0
    worst = 0.0
    for b in batches:
        batch = collate([examples[i] for i in b], pad)
        tokens += int(batch["attention_mask"].sum())
        prefix += tm.model.frozen_prefix_len(batch["input_ids"]) * len(b)
        grads = {}
        rows = [m.detach().clone() for m in mats]
        for frozen in (False, True):
            with torch.no_grad():  # both settings start from the same rows
                for m, r in zip(mats, rows):
                    m.copy_(r)
            opt.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            out = tm.model.target_loss(**batch, frozen_prefix=frozen)
            (out["loss_sum"] / out["n"]).backward()
            grads[frozen] = [m.grad.clone() for m in mats]
            opt.step()
            times[frozen].append(time.perf_counter() - t0)
        worst = max(worst, max(float((g1 - g0).abs().max() / g0.abs().max().clamp_min(1e-12))
                               for g0, g1 in zip(grads[False], grads[True])))
    full, split = statistics.median(times[False]), statistics.median(times[True])
    n = len(batches)
    print(f"{n} batches of {args.batch_size} SGD traces ({args.reading} reading), "
          f"{tokens / n / args.batch_size:.0f} tokens per trace, {prefix / tokens:.0%} of tokens in the frozen "
          f"prefix; {args.threads} threads")
    print(f"full backward    median {full:.2f} s/step, {tokens / sum(times[False]):.0f} tokens/s")
    print(f"frozen prefix    median {split:.2f} s/step, {tokens / sum(times[True]):.0f} tokens/s")
    print(f"speed-up {full / split:.2f}x (median step), {sum(times[False]) / sum(times[True]):.2f}x (total); "
          f"largest relative gradient difference {worst:.1e}")


if __name__ == "__main__":
    main()
