"""`make demo`: memory tokens for the example tools on the default model, then agent tasks end to end.

    python -m tools.demo [--bank banks/demo] [--retrain] [--epochs 2] [--limit 0] [--no-lora]

The first run dequantises the default model (~40 s, cached afterwards). The bank trained by this recipe is
shipped in ``tools/banks/demo`` and used while data and recipe are unchanged; ``--retrain`` (or any change
of ``tools/data`` or the settings) trains one token per tool again, with a progress bar (about 40 minutes on
2 idle CPU cores with native bf16, roughly twice that without), calibrates the call thresholds on held-out
requests and saves the bank to ``--bank``. Then each task is answered by the decoding controller: every
tool call and its result is printed as it happens, then the final answer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tokmem_agent import ControllerConfig, TrainConfig, load_traces
from tokmem_agent.agent import TokMemAgent
from tokmem_agent.decoding.calibrate import calibrate_call_threshold, no_call_traces
from tokmem_agent.decoding.runlog import Step
from tokmem_agent.errors import TokMemError
from tokmem_agent.model.loader import load_base_model
from tokmem_agent.serialization import read_config
from tokmem_agent.tokmem import TokMem

from .basic import TODAY, make_tools

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "train.jsonl"
#: held-out data the call thresholds are calibrated on (never trained on): the generator's test split,
#: hand-written requests (set A of bench/data, the development set, as traces: tools/calibration_set.py) and
#: hand-written messages that need no tool
HELD_OUT = (HERE / "data" / "test.jsonl", HERE / "data" / "calibration_requests.jsonl")
NO_CALL = HERE / "data" / "calibration_no_call.txt"
#: the bank trained by exactly this recipe, committed so `make demo` need not train (~40 min on 2 cores with
#: native bf16, about twice that without); reproduce it with `python -m tools.demo --retrain --bank tools/banks/demo`
SHIPPED = HERE / "banks" / "demo"
TASKS = [
    "Convert 120 USD to EUR.",
    "I paid 84.50 for dinner. Add an 18% tip.",
    "What date is 45 days after 2025-06-02? Then add a todo 'renew passport' due on that date.",
    "Convert 250 GBP to USD and then add a 15% tip to the converted amount.",
    "Good morning! How are you today?",
]


#: loss weight of the call/answer/stop decisions (TrainConfig.decision_weight), LoRA learning rate, batch size
#: of the recipe (TrainConfig.recipe)
DECISION_WEIGHT = TrainConfig.recipe().decision_weight
LORA_LR = TrainConfig.recipe().lora_lr
BATCH_SIZE = TrainConfig.recipe().batch_size


def demo_config(epochs: int = 2, lora: bool = True) -> TrainConfig:
    """The measured recipe (:meth:`TrainConfig.recipe`, docs/benchmarks.md; run with chain reading on every
    trace of tools/data): decision weight 5, the generic no-call share, 10 % warmup + linear decay, LoRA r8 on
    every attention and MLP projection at lr 1e-3, trained with the tokens. ``lora=False``: the tokens only."""
    cfg = TrainConfig.recipe(epochs=epochs, max_length=1024, eval_fraction=0.05)
    return cfg if lora else replace(cfg, lora=None)


def fingerprint(limit: int | None = None, epochs: int = 2, lora: bool = True) -> str:
    """Changes whenever the data, the held-out calibration data or the training settings do (a stale bank is
    retrained)."""
    h = hashlib.sha256()
    for path in (DATA, *HELD_OUT, NO_CALL):
        h.update(path.read_bytes())
    cfg = asdict(demo_config(epochs, lora))
    cfg.pop("progress")
    if cfg.get("choice_weight") == 1.0:  # a field added later, at its neutral value: same training as before
        cfg.pop("choice_weight")
    h.update(json.dumps({"limit": limit, "reading": "chain", "config": cfg}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def select_traces(traces: list[Any], limit: int | None) -> list[Any]:
    """Every multi-step trace first, then the others up to ``limit``: chains are what a small budget
    under-teaches (after a result, go on calling or answer)."""
    traces = list(traces)
    random.Random(0).shuffle(traces)
    multi = [t for t in traces if len(t.calls) > 1]
    rest = [t for t in traces if len(t.calls) <= 1]
    chosen = (multi + rest)[:limit] if limit else multi + rest
    random.Random(1).shuffle(chosen)
    return chosen


def show(step: Step) -> None:
    args = json.dumps(step.arguments, ensure_ascii=False) if step.arguments is not None else step.argument_text
    print(f"   → {step.tool}({args})", flush=True)
    print(f"     ← {step.result_text}" if step.ok else f"     ✗ {step.status}: {step.error}", flush=True)


def _matching(path: Path, loaded: Any, fp: str) -> TokMem | None:
    """The bank at ``path`` if this recipe trained it (its config is read first; only a match is loaded)."""
    if not (path / "tokmem_config.json").is_file():
        return None
    try:
        if (read_config(path).get("meta") or {}).get("demo_data") != fp:
            return None
        return TokMem.load(path, loaded)
    except TokMemError as exc:
        print(f"   (cannot reuse {path}: {exc})")
        return None


def demo_bank(loaded: Any, bank: Path, *, limit: int | None = None, epochs: int = 2, lora: bool = True,
              retrain: bool = False, shipped: Path | None = SHIPPED) -> TokMem:
    """The demo's bank: ``bank`` or the shipped one when trained by this recipe on this data, else trained
    (chain reading), calibrated on the held-out data (the call thresholds) and saved to ``bank``."""
    fp = fingerprint(limit, epochs, lora)
    if not retrain:
        for path in (bank, shipped):
            tm = _matching(path, loaded, fp) if path is not None else None
            if tm is not None:
                how = ("the bank shipped in the repo" if path == shipped else "the trained bank")
                print(f"2. Reusing {how} {path} (recipe {fp}; `python -m tools.demo --retrain` trains it again)")
                return tm
    traces = select_traces(load_traces(DATA), limit)
    tools = make_tools()
    print(f"2. Training {len(tools)} memory tokens on {len(traces)} traces "
          f"({sum(len(t.calls) > 1 for t in traces)} multi-step, {sum(not t.calls for t in traces)} need no tool)"
          " — the model stays frozen; "
          + ("the tokens learn, with a small LoRA adaptation round" if lora else "only the tokens learn"),
          flush=True)
    tm = TokMem.create(tools, loaded)
    result = tm.train(traces, demo_config(epochs, lora), reading="chain", out_dir=bank)
    n_params = tm.bank.steer.numel() + sum(p.numel() for p in tm.lora_parameters())
    print(f"   trained in {result.seconds:.0f} s ({result.tokens_per_s:.0f} tokens/s); "
          f"{n_params:,} trainable parameters", flush=True)
    cal = calibrate_call_threshold(tm, [t for path in HELD_OUT for t in load_traces(path)] + no_call_traces(NO_CALL))
    print("   calibrated on held-out requests:\n   " + cal.summary().replace("\n", "\n   "), flush=True)
    tm.meta["demo_data"] = fp
    tm.save(bank)
    shutil.rmtree(bank / "checkpoint", ignore_errors=True)  # the run is complete: nothing to resume
    print(f"   bank saved to {bank}", flush=True)
    return tm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bank", default="banks/demo")
    ap.add_argument("--retrain", action="store_true", help="train even if a matching bank exists")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="training traces to use (0 = all)")
    ap.add_argument("--no-lora", dest="lora", action="store_false",
                    help="skip the adaptation round (LoRA on attention, trained with the tokens): memory tokens only")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    bank = Path(args.bank)
    limit = args.limit or None

    print("1. Loading the default model (SmolLM2-135M-Instruct; the first run dequantises it, ~40 s) …", flush=True)
    t0 = time.perf_counter()
    loaded = load_base_model(None)
    print(f"   loaded in {time.perf_counter() - t0:.1f} s", flush=True)

    tm = demo_bank(loaded, bank, limit=limit, epochs=args.epochs, lora=args.lora, retrain=args.retrain)

    print("3. Running agent tasks (no tool documentation in the prompt)\n", flush=True)
    with tempfile.TemporaryDirectory() as store:
        # the pack's tools read "today" as their fixed TODAY: relative dates must resolve against it too
        agent = TokMemAgent(tm, make_tools(store), ControllerConfig(today=TODAY.isoformat()))
        for task in TASKS:
            print(f"user> {task}", flush=True)
            r = agent.run(task, on_step=show)
            print(f"assistant> {r.answer or '(no answer: ' + r.outcome + ')'}")
            print(f"   [{r.outcome}; {len(r.steps)} calls; {r.prompt_tokens} prompt tokens; "
                  f"{r.timings['total_s']:.1f} s]\n", flush=True)


if __name__ == "__main__":
    main()
