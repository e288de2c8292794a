"""Write the schemas of the SGD tools that only ``dev.jsonl`` calls (issue 17), for ``tokmem register``.

    python bench/sgd_dev_only_tools.py --out runs/sgd20/dev_only_tools.json
    tokmem register runs/sgd20/bank --tool runs/sgd20/dev_only_tools.json --out runs/sgd35z/bank

Only the tools' schemas (name, description, parameters) are written: no request, argument or dialogue of
dev is, so registration sees exactly what a user with the functions' signatures would have. Also prints
the names (comma-separated, for ``python -m evals --only-tools``) and each tool's number of dev records.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.datasets import sgd
from tokmem_agent.traces import tools_in


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/sgd20/dev_only_tools.json")
    args = ap.parse_args()
    train_all, dev_all = sgd("train"), sgd("dev")
    seen = {c.name for t in train_all for c in t.calls}
    names = sorted({c.name for t in dev_all for c in t.calls} - seen)
    defs = tools_in(dev_all)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([defs[n] for n in names], indent=1) + "\n")
    only = [t for t in dev_all if t.calls and all(c.name in names for c in t.calls)]
    print(f"{len(names)} dev-only tools -> {out}; {len(only)} dev records call only them")
    for n in names:
        print(f"  {n}: {sum(1 for t in only if any(c.name == n for c in t.calls))} records")
    print(",".join(names))


if __name__ == "__main__":
    main()
