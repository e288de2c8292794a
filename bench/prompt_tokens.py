"""Prompt tokens per query: TokMem (no tool documentation) vs the same model with every tool schema in the
prompt, at several tool counts, on the same SGD dev queries. Prints both and the ratio, side by side.

    python bench/prompt_tokens.py --counts 10 50 --queries 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.datasets import sgd, xlam  # noqa: E402
from tokmem_agent.chat import ChatFormat  # noqa: E402
from tokmem_agent.config import DEFAULT_SYSTEM_PROMPT  # noqa: E402
from tokmem_agent.model.loader import load_base_model  # noqa: E402
from tokmem_agent.traces import tools_in  # noqa: E402


def icl_system(tools: list[dict]) -> str:
    """The in-context baseline's system prompt: instructions plus every schema as JSON."""
    lines = [DEFAULT_SYSTEM_PROMPT, "You can call these tools. To call one, answer with a JSON list of "
             '{"name": ..., "arguments": {...}} objects.', "<tools>"]
    lines += [json.dumps(t, ensure_ascii=False) for t in tools]
    lines.append("</tools>")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", type=int, nargs="+", default=[5, 10, 20, 50, 100])
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    loaded = load_base_model(None)
    dev = sgd("dev", limit=args.queries)
    pool = list(tools_in(sgd("train")).values()) + list(tools_in(xlam("train")).values())
    chat = ChatFormat(loaded.tokenizer, lambda name: 0, DEFAULT_SYSTEM_PROMPT)
    tokmem = [len(chat.prompt_ids(t.compositional_context())) for t in dev]
    print(f"{'tools':>6} {'TokMem':>8} {'in-context':>11} {'ratio':>7}   (mean prompt tokens over {len(dev)} queries)")
    for n in args.counts:
        tools = pool[:n]
        sys_prompt = icl_system(tools)
        icl = [len(chat.prompt_ids([{"role": "system", "content": sys_prompt}, *t.compositional_context()]))
               for t in dev]
        tm, ic = statistics.mean(tokmem), statistics.mean(icl)
        print(f"{n:>6} {tm:>8.0f} {ic:>11.0f} {ic / tm:>6.1f}x")


if __name__ == "__main__":
    main()
