"""Training and decoding throughput on each available device, side by side (issue 15's GPU figures).

    python bench/device_throughput.py [--devices cpu,cuda] [--batch-sizes 1,8,32] [--shape smollm2]

A randomly initialised model of SmolLM2-135M-Instruct's configuration (the GGUF is not on a bare GPU
machine; random weights time the same arithmetic), with a small in-code tokenizer (tests/conftest.py) and
the toy tools of tests/toydata.py: bf16 backbone on CUDA, float32 on the CPU, memory rows float32 on both.

* training: memory rows (and a rank-8 LoRA round) on ``--train-traces`` toy traces, one epoch, batch 8 —
  training tokens/s;
* decoding: ``TokMem.predict`` on a list of ``--prompts`` requests, ``--new-tokens`` each (memory tokens
  allowed), at each batch size — generated tokens/s, and the ratio to batch 1 on that device.

Prints one table; ``--json`` writes it. Run on the GPU machine from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch
from conftest import build_tiny_model, build_tiny_tokenizer  # tests/conftest.py
from toydata import TOOLS, toy_records  # tests/toydata.py

from tokmem_agent import LoraSettings, TrainConfig
from tokmem_agent.config import fast_bf16_available
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import load_traces

SHAPES = {
    "smollm2": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                "num_key_value_heads": 3, "rope_theta": 100000.0, "max_position_embeddings": 8192,
                "rms_norm_eps": 1e-5, "vocab_size": 49152},
    "tiny": {},
}


def device_label(dev: str) -> str:
    if dev == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU, {os.cpu_count()} cores, " + ("AVX512-BF16" if fast_bf16_available() else "no AVX512-BF16 (AVX2)")


def run(dev: str, shape: str, batch_sizes: list[int], n_traces: int, n_prompts: int, new_tokens: int) -> dict:
    tok = build_tiny_tokenizer()
    overrides = dict(SHAPES[shape])
    vocab = overrides.pop("vocab_size", len(tok))
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    model = build_tiny_model(vocab, **overrides).to(dev, dtype)
    loaded = LoadedModel(model, tok, f"random-{shape}", tokenizer_fingerprint(tok))
    tm = TokMem.create(TOOLS, loaded)
    records = toy_records()
    traces = load_traces([records[i % len(records)] for i in range(n_traces)])
    res = tm.train(traces, TrainConfig(epochs=1, batch_size=8, progress=False, eval_fraction=0.0, no_call_share=0.0,
                                       lora=LoraSettings(r=8)))
    out = {"device": device_label(dev), "dtype": str(dtype).removeprefix("torch."), "train_tokens_per_s":
           res.tokens_per_s, "train_seconds": res.seconds, "decode": {}}
    prompts = [r["query"] for r in records][:n_prompts]
    prompts = [prompts[i % len(prompts)] + f" #{i}" for i in range(n_prompts)]
    for b in batch_sizes:
        tm.predict(prompts[:b], max_new_tokens=4, batch_size=b)  # warm-up (kernels, allocator)
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        preds = tm.predict(prompts, max_new_tokens=new_tokens, batch_size=b)
        if dev == "cuda":
            torch.cuda.synchronize()
        sec = time.perf_counter() - t0
        gen = sum(len(p.ids) for p in preds)
        out["decode"][b] = {"seconds": sec, "generated_tokens": gen, "tokens_per_s": gen / sec}
    base = out["decode"][batch_sizes[0]]["tokens_per_s"]
    for b in batch_sizes:
        out["decode"][b]["ratio_to_first"] = out["decode"][b]["tokens_per_s"] / base
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shape", default="smollm2", choices=sorted(SHAPES))
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--train-traces", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--json")
    a = ap.parse_args()
    sizes = [int(x) for x in a.batch_sizes.split(",")]
    rows = {}
    for dev in a.devices.split(","):
        if dev == "cuda" and not torch.cuda.is_available():
            print("no CUDA device: skipped", flush=True)
            continue
        rows[dev] = run(dev, a.shape, sizes, a.train_traces, a.prompts, a.new_tokens)
        r = rows[dev]
        print(f"{dev}: {r['device']} ({r['dtype']}): training {r['train_tokens_per_s']:.0f} tokens/s; decoding "
              + ", ".join(f"batch {b} {d['tokens_per_s']:.0f} tok/s ({d['ratio_to_first']:.2f}x)"
                          for b, d in r["decode"].items()), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"shape": a.shape, "rows": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
