"""Benchmark: prompt tokens and per-query latency, TokMem vs in-context, as the number of tools grows.

    python -m evals.cost_vs_tools --counts 5 20 50 100 --queries 10 [--model ID_OR_DIR] [--gen-tokens 16]

On the same queries (default: the first SGD dev records) and the same model, at each tool count N:

* TokMem: a bank of N memory tokens, the prompt holds the conversation only;
* in-context: the same conversation with the N tool schemas in the prompt, exactly as the ``icl`` method of
  ``tokmem eval`` builds it (evals/methods.py).

Latency is prefill plus a fixed number of greedy decode steps (``--gen-tokens``, no early stop), so both
sides generate the same number of tokens; TokMem and in-context alternate query by query, after one untimed
warm-up each, and the ratios come from this one run. Prompts are prefilled in chunks of 2,048 tokens. An
in-context prompt longer than the model's context window gets no latency (``n/a``) unless
``--allow-overflow`` (the model's answers past its window are meaningless; the cost is still real).
Tools come from ``../shared/data/sgd/tools.json`` then ``../shared/data/xlam/tools.json`` (first definition
of a name wins), or from ``--tools-file``. Untrained tokens cost the same as trained ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PREFILL_CHUNK = 2048


def load_tool_pool(files: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Tool definitions from JSON lists of tools (first definition of a name wins), in file order."""
    from .methods import clean_tool

    pool: dict[str, dict[str, Any]] = {}
    for f in files:
        for t in json.loads(Path(f).read_text(encoding="utf-8")):
            pool.setdefault(t["name"], clean_tool(t))
    return list(pool.values())


def default_tool_files() -> list[Path]:
    from .datasets import shared_dir

    data = shared_dir() / "data"
    return [p for p in (data / "sgd" / "tools.json", data / "xlam" / "tools.json") if p.is_file()]


def timed_greedy(model: Any, prompt: Sequence[int], gen_tokens: int) -> tuple[float, float]:
    """(prefill seconds, decode seconds) of ``gen_tokens`` greedy steps (no stop) on a TokMemModel."""
    import torch

    from tokmem_agent.decoding.generate import DecodeSession

    session = DecodeSession(model)
    t0 = time.perf_counter()
    for s in range(0, len(prompt), PREFILL_CHUNK):
        logits = session.feed(list(prompt[s:s + PREFILL_CHUNK]))
    t1 = time.perf_counter()
    for _ in range(gen_tokens):
        logits = session.feed([int(torch.argmax(logits))])
    return t1 - t0, time.perf_counter() - t1


def measure(loaded: Any, tools: Sequence[dict[str, Any]], traces: Sequence[Any], counts: Sequence[int], *,
            gen_tokens: int = 16, allow_overflow: bool = False, log: Any = None) -> list[dict[str, Any]]:
    """One row per tool count: mean prompt tokens and latency per query of both, and their ratios."""
    from tokmem_agent.tokmem import TokMem

    from .methods import ICLMethod

    if max(counts) > len(tools):
        raise ValueError(f"{max(counts)} tools asked for, the pool has {len(tools)}")
    limit = getattr(loaded.model.config, "max_position_embeddings", None)
    plain = TokMem.create([], loaded)  # no memory rows: the in-context side runs the bare backbone
    rows = []
    for n in counts:
        tm = TokMem.create(list(tools[:n]), loaded)
        icl = ICLMethod(loaded, list(tools[:n]), pool="all")
        tm_prompts = [tm.chat.prompt_ids(t.compositional_context()) for t in traces]
        icl_prompts = [icl.prompt_ids(t.compositional_context(), icl.tools) for t in traces]
        over = sum(bool(limit) and len(p) + gen_tokens > limit for p in icl_prompts)
        timed = allow_overflow or not over
        tm_lat: list[float] = []
        icl_lat: list[float] = []
        if timed:
            timed_greedy(tm.model, tm_prompts[0], 1)  # warm-up
            timed_greedy(plain.model, icl_prompts[0], 1)
            for p_tm, p_icl in zip(tm_prompts, icl_prompts):
                tm_lat.append(sum(timed_greedy(tm.model, p_tm, gen_tokens)))
                icl_lat.append(sum(timed_greedy(plain.model, p_icl, gen_tokens)))
        row = {"tools": n, "queries": len(traces),
               "tokmem_prompt_tokens": statistics.mean(map(len, tm_prompts)),
               "icl_prompt_tokens": statistics.mean(map(len, icl_prompts)),
               "tokmem_latency_s": statistics.mean(tm_lat) if tm_lat else None,
               "icl_latency_s": statistics.mean(icl_lat) if icl_lat else None,
               "icl_over_context": over}
        row["token_ratio"] = row["icl_prompt_tokens"] / row["tokmem_prompt_tokens"]
        row["latency_ratio"] = (row["icl_latency_s"] / row["tokmem_latency_s"]) if tm_lat else None
        rows.append(row)
        if log:
            log(format_row(row))
    return rows


HEADER = (f"{'tools':>6} {'TokMem tok':>11} {'in-context tok':>15} {'ratio':>7}  "
          f"{'TokMem s/q':>11} {'in-context s/q':>15} {'ratio':>7}")


def format_row(r: dict[str, Any]) -> str:
    lat = (f"{r['tokmem_latency_s']:>11.3f} {r['icl_latency_s']:>15.3f} {r['latency_ratio']:>6.1f}x"
           if r["tokmem_latency_s"] is not None else f"{'n/a':>11} {'n/a (> context)':>15} {'':>7}")
    return (f"{r['tools']:>6} {r['tokmem_prompt_tokens']:>11.0f} {r['icl_prompt_tokens']:>15.0f} "
            f"{r['token_ratio']:>6.1f}x  {lat}")


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[5, 20, 50, 100])
    ap.add_argument("--queries", type=int, default=10, help="Queries (the first N records of --data).")
    ap.add_argument("--data", default="sgd:dev", help="Queries: a JSONL file, sgd:SPLIT or xlam:SPLIT.")
    ap.add_argument("--tools-file", action="append", default=None,
                    help="JSON list of tool definitions (repeatable); default: the SGD then xLAM tools.json.")
    ap.add_argument("--model", default=None, help="HF id or local dir; default SmolLM2-135M-Instruct.")
    ap.add_argument("--gen-tokens", type=int, default=16, help="Greedy decode steps timed per query.")
    ap.add_argument("--allow-overflow", action="store_true", help="Time prompts longer than the context window.")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    ap.add_argument("--json", default=None, help="Also write the rows to this JSON file.")
    args = ap.parse_args(argv)

    import torch

    from tokmem_agent.model.loader import load_base_model

    from .cli import load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    files = args.tools_file or default_tool_files()
    tools = load_tool_pool(files)
    traces = load_dataset(args.data, limit=args.queries)
    loaded = load_base_model(args.model)
    print(f"{len(traces)} queries from {args.data}; tool pool {len(tools)} from {', '.join(map(str, files))}; "
          f"model {loaded.model_id}, context {getattr(loaded.model.config, 'max_position_embeddings', '?')}; "
          f"latency = prefill + {args.gen_tokens} greedy steps, torch threads {torch.get_num_threads()}")
    print(HEADER, flush=True)
    rows = measure(loaded, tools, traces, args.counts, gen_tokens=args.gen_tokens,
                   allow_overflow=args.allow_overflow, log=lambda s: print(s, flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "args": vars(args)}, indent=1))
    return rows


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
