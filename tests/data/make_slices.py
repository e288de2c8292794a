"""Cut the test slices of tests/data/README.md from ../shared/data (or $TOKMEM_SHARED_DIR/data)."""

from __future__ import annotations

import json
import os
from itertools import islice
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("TOKMEM_SHARED_DIR", HERE.parents[2] / "shared")) / "data"
TOOLS = {"Restaurants_1_FindRestaurants", "Events_1_FindEvents", "RideSharing_2_GetRide"}


def main() -> None:
    with open(SHARED / "sgd" / "train.jsonl", encoding="utf-8") as f:
        keep = []
        for line in islice(f, 6000):
            r = json.loads(line)
            if len(r["answers"]) == 1 and r["answers"][0]["name"] in TOOLS and not any(r.get("between") or []):
                keep.append(line)
    (HERE / "sgd").mkdir(exist_ok=True)
    (HERE / "xlam").mkdir(exist_ok=True)
    (HERE / "sgd" / "train.jsonl").write_text("".join(keep), encoding="utf-8")
    with open(SHARED / "sgd" / "dev.jsonl", encoding="utf-8") as f:
        (HERE / "sgd" / "dev.jsonl").write_text("".join(islice(f, 400)), encoding="utf-8")
    with open(SHARED / "xlam" / "test.jsonl", encoding="utf-8") as f:
        (HERE / "xlam" / "test.jsonl").write_text("".join(islice(f, 20)), encoding="utf-8")


if __name__ == "__main__":
    main()
