"""One training run on the tiny model, for the multi-process test (tests/unit/test_ddp.py).

    accelerate launch --cpu --num_processes 2 tests/ddp/worker.py OUT [--grad-accum 1] [--records 40] [--lora]
    python tests/ddp/worker.py OUT --grad-accum 2 ...          # the single-process reference

Every process writes ``OUT/rank{i}.json`` (its step count); the main process also writes the bank's rows (and the
LoRA weights) to ``OUT/params.safetensors``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent))

from conftest import build_tiny_model, build_tiny_tokenizer
from toydata import TOOLS, toy_records

from tokmem_agent import LoraSettings, TrainConfig, load_traces
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.tokmem import TokMem


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--records", type=int, default=40)
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--epochs", type=int, default=2, help="0: no training (the starting rows)")
    a = ap.parse_args()
    from accelerate import PartialState
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    state = PartialState(cpu=True)
    tok = build_tiny_tokenizer()
    loaded = LoadedModel(build_tiny_model(len(tok)), tok, "tiny-llama", tokenizer_fingerprint(tok))
    tm = TokMem.create(TOOLS, loaded)
    traces = load_traces(toy_records()[: a.records])
    cfg = TrainConfig(epochs=2, batch_size=4, grad_accum=a.grad_accum, progress=False, eval_fraction=0.0,
                      autocast=None, no_call_share=0.0, renormalize=False, anchors_per_tool=0,
                      decision_weight=1.0, lora=LoraSettings(r=4, target_modules=["q_proj", "v_proj"]) if a.lora else None)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = 0
    if a.epochs:
        cfg.epochs = a.epochs
        steps = tm.train(traces, cfg, out_dir=out / "bank").steps
    (out / f"rank{state.process_index}.json").write_text(json.dumps({"steps": steps,
                                                                     "world": state.num_processes}))
    if state.is_main_process:
        params = {"steer": tm.bank.steer.detach().contiguous()}
        if a.lora and a.epochs:
            params.update({f"lora.{i}": p.detach().contiguous() for i, p in enumerate(tm.lora_parameters())})
        save_file(params, str(out / "params.safetensors"))


if __name__ == "__main__":
    main()
