"""Turn hand-written requests (the ``bench/data`` format) into traces for ``tokmem calibrate``.

    python -m tools.calibration_set bench/data/pack_requests.jsonl --out tools/data/calibration_requests.jsonl

The call thresholds (call or answer after a user message; go on or answer after a result) are picked on
held-out requests. The generator's own held-out split is in-distribution: the model is confident on it, and a
threshold fitted there alone goes on calling after a result where hand-written requests are done. So the
demo calibrates on the generator's test split *and* on hand-written requests converted here: each record's
gold calls are executed (after its ``setup``) in a fresh store, and the trace keeps the query, the calls, their
real results and the setup. Records with no gold call become no-call traces (``answers: []``).

Set A (``bench/data/pack_requests.jsonl``) is the *development* set used this way; sets B and C stay
held out for evaluation (bench/data/README.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from tokmem_agent.traces import parse_record, write_jsonl

from .make_traces import Replayer, tool_schemas

SOURCE = "tokmem-hand-written"


def to_trace(record: dict[str, Any], schemas: list[dict[str, Any]], replayer: Replayer) -> dict[str, Any]:
    """One hand-written request (``id``, ``query``, ``gold``, optional ``setup``) as a trace with results."""
    gold = record["gold"]
    rec: dict[str, Any] = {"id": record["id"], "query": record["query"], "tools": schemas, "answers": gold,
                           "source": SOURCE, "n_calls": len(gold),
                           "messages": [{"role": "user", "content": record["query"]}], "results": [],
                           "between": [[] for _ in gold[1:]]}
    if record.get("setup"):
        rec["setup"] = record["setup"]
    if gold:
        rec["results"] = replayer.replay(rec)  # setup, then the gold calls, in an emptied store
    parse_record(rec)
    return rec


def convert(src: str | Path, out: str | Path) -> list[dict[str, Any]]:
    """Convert every record of ``src`` (JSONL) and write the traces to ``out``."""
    schemas = tool_schemas()
    lines = Path(src).read_text(encoding="utf-8").splitlines()
    with tempfile.TemporaryDirectory(prefix="tokmem-calibration-") as store:
        replayer = Replayer(store)
        traces = [to_trace(json.loads(line), schemas, replayer) for line in lines if line.strip()]
    write_jsonl(traces, out)
    return traces


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="hand-written requests (bench/data format)")
    ap.add_argument("--out", required=True, help="traces JSONL to write")
    args = ap.parse_args(argv)
    traces = convert(args.src, args.out)
    print(f"{args.out}: {len(traces)} traces ({sum(1 for t in traces if t['answers'])} with calls)")


if __name__ == "__main__":
    main()
