"""Issue-5 benchmark: one agent task via LangChain's ``create_agent`` over ``ChatTokMem`` vs the internal
runnable (``agent_runnable(agent)``), same bank, same tools, same query, measured alternately in one run.

    python bench/langchain_latency.py --bank banks/demo --repeats 3

Prints each path's wall time per task (median), the calls each made, and the ratio create_agent / internal.
``create_agent`` re-encodes the whole conversation on every model turn (LangChain hands the model a message
list); the internal loop keeps one KV cache across calls and results.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokmem_agent.agent import TokMemAgent
from tokmem_agent.integrations.langchain import ChatTokMem, agent_runnable
from tokmem_agent.tokmem import TokMem
from tools.basic import make_tools


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bank", default="banks/demo")
    ap.add_argument("--query", default="Convert 250 GBP to USD and then add a 15% tip to the converted amount.")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from langchain.agents import create_agent
    from langchain_core.tools import tool as lc_tool

    tm = TokMem.load(args.bank)
    with tempfile.TemporaryDirectory() as store:
        fns = make_tools(store)
        agent = TokMemAgent(tm, fns)
        runnable = agent_runnable(agent)
        llm = ChatTokMem(agent=agent)
        lc_agent = create_agent(llm, tools=[lc_tool(f) for f in fns])
        times: dict[str, list[float]] = {"create_agent": [], "internal": []}
        calls: dict[str, list[str]] = {}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = lc_agent.invoke({"messages": [("user", args.query)]})
            times["create_agent"].append(time.perf_counter() - t0)
            calls["create_agent"] = [f"{c['name']}({c['args']})" for m in out["messages"]
                                     for c in getattr(m, "tool_calls", None) or []]
            answer_lc = out["messages"][-1].content
            t0 = time.perf_counter()
            res = runnable.invoke(args.query)
            times["internal"].append(time.perf_counter() - t0)
            calls["internal"] = [f"{s['tool']}({s['arguments']})" for s in res["steps"]]
            answer_int = res["answer"]
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in ("create_agent", "internal"):
        print(f"{k:>13}: median {med[k]:.2f} s over {args.repeats} ({', '.join(f'{t:.2f}' for t in times[k])}); "
              f"calls {calls[k]}")
    print(f"   answers: create_agent {answer_lc!r}\n            internal     {answer_int!r}")
    print(f"ratio create_agent / internal: {med['create_agent'] / med['internal']:.2f}x")


if __name__ == "__main__":
    main()
