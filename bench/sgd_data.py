"""Write the SGD training and calibration files of the 20-tool recipe (issue 13).

    python bench/sgd_data.py --tools 20 --per-tool 100 --calib 200 --out runs/sgd20

OUT/train.jsonl: the ``--tools`` most frequent tools of ``sgd/train.jsonl``, at most ``--per-tool`` traces each
(the seeded cap of ``bench/train_sgd.py``). OUT/calib.jsonl: ``--calib`` other train records whose tools are all
among them (held out from training, for the call/continue thresholds). Dev is never read here.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.datasets import cap_per_tool, filter_by_tools, sgd, top_tools
from tokmem_agent.traces import write_jsonl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tools", type=int, default=20)
    ap.add_argument("--per-tool", type=int, default=100)
    ap.add_argument("--calib", type=int, default=200)
    ap.add_argument("--out", default="runs/sgd20")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_all = sgd("train")
    names = top_tools(train_all, args.tools)
    pool = filter_by_tools(train_all, names)
    train = cap_per_tool(pool, args.per_tool, seed=0)
    used = {t.id for t in train}
    rest = [t for t in pool if t.id not in used]
    random.Random(0).shuffle(rest)
    calib = rest[: args.calib]
    write_jsonl(train, out / "train.jsonl")
    write_jsonl(calib, out / "calib.jsonl")
    print(f"{len(names)} tools; train {len(train)} ({sum(len(t.calls) > 1 for t in train)} multi-call); "
          f"calib {len(calib)} ({sum(len(t.calls) > 1 for t in calib)} multi-call) -> {out}")


if __name__ == "__main__":
    main()
