"""Issue-4 benchmark: schema-constrained vs free argument decoding with the same bank, same queries.

    python bench/constrained_vs_free.py --bank banks/demo --data tools/data/test.jsonl --limit 60

For each query, the first assistant turn is generated twice (constrained / unconstrained); every call's
argument text is checked: valid JSON object? valid against the tool's schema (undeclared keys count)?
Also the decode time per argument token in each mode (ratio, same run) and the tool-selection agreement
with the gold first call.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokmem_agent import ControllerConfig, load_traces  # noqa: E402
from tokmem_agent.decoding.controller import Controller  # noqa: E402
from tokmem_agent.decoding.generate import DecodeSession  # noqa: E402
from tokmem_agent.tokmem import TokMem  # noqa: E402
from tokmem_agent.validation import check_arguments, parse_arguments  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", default="banks/demo")
    ap.add_argument("--data", default="tools/data/test.jsonl")
    ap.add_argument("--limit", type=int, default=60)
    args = ap.parse_args()
    tm = TokMem.load(args.bank)
    traces = load_traces(args.data, limit=args.limit)
    names = tm.tool_names
    stats = {}
    for constrained in (True, False):
        ctl = Controller(tm, ControllerConfig(constrained=constrained, max_arg_tokens=96))
        calls = json_ok = schema_ok = first_ok = 0
        arg_tokens, arg_seconds = 0, 0.0
        t0 = time.perf_counter()
        for t in traces:
            s = DecodeSession(tm.model)
            s.feed(tm.chat.prompt_ids(t.messages))
            turn = ctl.generate_turn(s, names, budget=200)
            first_ok += bool(turn.calls) and turn.calls[0].tool == t.calls[0].name
            for c in turn.calls:
                calls += 1
                json_ok += parse_arguments(c.text).ok
                schema_ok += check_arguments(c.text, tm.tools.get(c.tool).parameters).ok
                arg_tokens += len(c.arg_ids)
                arg_seconds += c.decode_s
        stats[constrained] = dict(calls=calls, json=json_ok / max(calls, 1), schema=schema_ok / max(calls, 1),
                                  first_tool=first_ok / len(traces), ms_per_arg_token=1000 * arg_seconds / max(arg_tokens, 1),
                                  seconds=time.perf_counter() - t0)
    print(f"{len(traces)} queries from {args.data}, bank {args.bank}")
    print(f"{'mode':<14}{'calls':>6}{'JSON valid':>12}{'schema valid':>14}{'first tool':>12}{'ms/arg token':>14}")
    for constrained, st in stats.items():
        print(f"{'constrained' if constrained else 'free':<14}{st['calls']:>6}{st['json']:>12.3f}{st['schema']:>14.3f}"
              f"{st['first_tool']:>12.3f}{st['ms_per_arg_token']:>14.1f}")
    ratio = stats[True]["ms_per_arg_token"] / max(stats[False]["ms_per_arg_token"], 1e-9)
    print(f"per-argument-token decode time, constrained / free: {ratio:.2f}x")


if __name__ == "__main__":
    main()
