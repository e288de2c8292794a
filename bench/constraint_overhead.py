"""Cost of JSON-schema-constrained argument decoding on CPU, next to the model's own decode step.

    python bench/constraint_overhead.py                 # everything (~3 min)
    python bench/constraint_overhead.py --no-model      # grammar figures only
    python bench/constraint_overhead.py --libs --real-schemas 0      # shipped constraint + model only

On SmolLM2-135M-Instruct's tokenizer (49,152 tokens) with a logit width of V + 8 memory tokens:

1. libraries: for each grammar library installed (xgrammar is a dependency; llguidance and outlines-core
   are compared when present), each in its own process: the one-off tokenizer preparation, the cold
   compile of each of seven realistic tool schemas, the first mask after compiling, and per token
   (teacher-forcing the schema's compact example arguments) the mask fill, the mask apply and the
   advance. Every library's bitmask is applied with the same kernel (xgrammar's CPU kernel), so "apply"
   does not depend on the library.
2. shipped: tokmem_agent's SchemaConstraint (declared order, then the default declared-or-sorted order):
   matcher() cold and cached, mask_logits() and advance().
3. real schemas: the shipped constraint compiling the SGD + xLAM tool schemas of ../shared/data.
4. model: a real constrained greedy decode with the default model; per step, the forward pass (one token,
   KV cache) and mask_logits()+argmax+advance(), side by side in this process, and their ratio.

Timings on the project's 2-core VMs swing with other load (the load average is printed first): compare
figures from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

N_MEMORY = 8

SCHEMAS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "get_weather (string, optional enum)": (
        {"type": "object", "properties": {
            "city": {"type": "string", "description": "city name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
         "required": ["city"]},
        {"city": "San Francisco", "unit": "fahrenheit"}),
    "add (2 integers)": (
        {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
         "required": ["a", "b"]},
        {"a": 1234, "b": -56}),
    "reserve_restaurant (SGD-like)": (
        {"type": "object", "properties": {
            "restaurant_name": {"type": "string"}, "city": {"type": "string"}, "time": {"type": "string"},
            "date": {"type": "string", "default": "2019-03-01"},
            "party_size": {"type": "integer", "enum": [1, 2, 3, 4, 5, 6], "default": 2}},
         "required": ["restaurant_name", "city", "time"]},
        {"restaurant_name": "Bajis Cafe", "city": "Mountain View", "time": "17:00", "party_size": 4}),
    "search_flights (number, bool, bounds)": (
        {"type": "object", "properties": {
            "origin": {"type": "string"}, "destination": {"type": "string"},
            "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
            "cabin": {"type": "string", "enum": ["economy", "premium", "business", "first"]},
            "nonstop": {"type": "boolean"}, "max_price": {"type": "number", "minimum": 0}},
         "required": ["origin", "destination"]},
        {"origin": "Paris", "destination": "New York", "passengers": 2, "cabin": "economy", "nonstop": True,
         "max_price": 899.5}),
    "send_email (arrays, optional)": (
        {"type": "object", "properties": {
            "to": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "subject": {"type": "string"}, "body": {"type": "string"},
            "cc": {"type": "array", "items": {"type": "string"}},
            "priority": {"type": "string", "enum": ["low", "normal", "high"]}},
         "required": ["to", "subject", "body"]},
        {"to": ["ana@example.com", "bo@example.org"], "subject": "Lunch",
         "body": "Shall we meet at noon on Friday?", "priority": "high"}),
    "post_note (bounded string lengths)": (
        {"type": "object", "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 40},
            "body": {"type": "string", "maxLength": 200},
            "pinned": {"type": "boolean"}},
         "required": ["title", "body"]},
        {"title": "Groceries", "body": "milk, eggs, bread", "pinned": True}),
    "create_event (nested objects, array of objects)": (
        {"type": "object", "properties": {
            "title": {"type": "string"},
            "start": {"type": "object", "properties": {"date": {"type": "string"}, "time": {"type": "string"}},
                      "required": ["date"]},
            "attendees": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "email": {"type": "string"}}, "required": ["name"]}},
            "reminders": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "all_day": {"type": "boolean"}},
         "required": ["title", "start"]},
        {"title": "Team sync", "start": {"date": "2025-06-02", "time": "09:30"},
         "attendees": [{"name": "Ana", "email": "ana@example.com"}, {"name": "Bo"}], "reminders": [10, 60],
         "all_day": False}),
}


def compact(args: dict[str, Any]) -> str:
    return json.dumps(args, separators=(",", ":"), ensure_ascii=False)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f}"


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def p90(xs: list[float]) -> float:
    return sorted(xs)[int(0.9 * (len(xs) - 1))] if xs else float("nan")


def load_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from tokmem_agent.model.loader import default_model_path, find_default_gguf

    cached = default_model_path()
    if (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(cached)
    gguf = find_default_gguf()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


# ----- 1. library adapters: prepare(tok) once; compile(schema) → state; fill(state, bitmask); accept ---
class XGrammar:
    name = "xgrammar"

    def __init__(self, tok: Any):
        import xgrammar as xgr

        self.xgr = xgr
        info = xgr.TokenizerInfo.from_huggingface(tok)
        self.compiler = xgr.GrammarCompiler(info, max_threads=os.cpu_count() or 1, cache_enabled=False)

    def compile(self, schema: dict[str, Any]) -> Any:
        g = self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))
        return self.xgr.GrammarMatcher(g, terminate_without_stop_token=True)

    def fill(self, m: Any, bitmask: torch.Tensor) -> None:
        m.fill_next_token_bitmask(bitmask)

    def accept(self, m: Any, tok: int) -> bool:
        return m.accept_token(tok)


class LLGuidance:
    name = "llguidance"

    def __init__(self, tok: Any):
        import llguidance
        import llguidance.hf
        import llguidance.torch

        self.llg, self.llgt = llguidance, llguidance.torch
        self.tok = llguidance.hf.from_tokenizer(tok, n_vocab=len(tok))

    def compile(self, schema: dict[str, Any]) -> Any:
        grammar = self.llg.LLMatcher.grammar_from_json_schema(
            schema, defaults={"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"})
        m = self.llg.LLMatcher(self.tok, grammar)
        if m.is_error():
            raise RuntimeError(m.get_error())
        return m

    def fill(self, m: Any, bitmask: torch.Tensor) -> None:
        self.llgt.fill_next_token_bitmask(m, bitmask)

    def accept(self, m: Any, tok: int) -> bool:
        return m.consume_token(tok)


def _byte_decoder() -> dict[str, int]:
    """GPT-2 byte-level BPE: the printable character standing for each byte → the byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class OutlinesCore:
    name = "outlines_core"

    def __init__(self, tok: Any):
        import outlines_core
        from outlines_core.json_schema import build_regex_from_schema

        self.oc, self.build_regex = outlines_core, build_regex_from_schema
        dec = _byte_decoder()
        special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
        vocab: dict[bytes, list[int]] = {}
        for t, i in tok.get_vocab().items():
            if i not in special:
                vocab.setdefault(bytes(dec[c] for c in t), []).append(i)
        self.vocab = outlines_core.Vocabulary(tok.eos_token_id, vocab)

    def compile(self, schema: dict[str, Any]) -> Any:
        regex = self.build_regex(json.dumps(schema), whitespace_pattern="")
        return self.oc.Guide(self.oc.Index(regex, self.vocab))

    def fill(self, g: Any, bitmask: torch.Tensor) -> None:
        g.write_mask_into(bitmask.data_ptr(), bitmask.numel(), bitmask.element_size())

    def accept(self, g: Any, tok: int) -> bool:
        try:
            g.advance(tok, return_tokens=False)
            return True
        except Exception:  # noqa: BLE001
            return False


LIBS: dict[str, Callable[[Any], Any]] = {"xgrammar": XGrammar, "llguidance": LLGuidance,
                                         "outlines_core": OutlinesCore}


def bench_library(name: str, tok: Any, reps: int) -> None:
    import xgrammar as xgr

    from tokmem_agent.decoding.constraint import _copy

    try:
        t0 = time.perf_counter()
        lib = LIBS[name](tok)
        prep = time.perf_counter() - t0
    except ImportError as exc:
        print(f"\n[{name}] not installed ({exc}); skipped")
        return
    V = len(tok)
    width = V + N_MEMORY
    logits = torch.randn(width)
    print(f"\n[{name}] tokenizer preparation {prep * 1e3:.0f} ms (once per tokenizer)")
    print(f"  {'schema':48s} {'compile ms':>10s} {'1st mask us':>11s} {'fill us':>8s} {'apply us':>8s} "
          f"{'advance us':>10s} {'tokens':>6s}")
    for label, (schema, args) in SCHEMAS.items():
        ids = tok.encode(compact(args), add_special_tokens=False)
        t0 = time.perf_counter()
        try:
            m = lib.compile(schema)
        except Exception as exc:  # noqa: BLE001
            print(f"  {label:48s} compile failed: {str(exc).splitlines()[0][:80]}")
            continue
        compile_s = time.perf_counter() - t0
        bitmask = xgr.allocate_token_bitmask(1, V)
        t0 = time.perf_counter()
        lib.fill(m, bitmask)
        first = time.perf_counter() - t0
        fills, applies, advances = [], [], []
        for rep in range(reps):
            if rep:
                m = lib.compile(schema)
            for tid in ids:
                t0 = time.perf_counter()
                lib.fill(m, bitmask)
                t1 = time.perf_counter()
                out = _copy(logits)  # as the shipped code: numpy memcpy, not torch's thread pool
                xgr.apply_token_bitmask_inplace(out[:V], bitmask, vocab_size=V)
                out[V:] = float("-inf")
                t2 = time.perf_counter()
                ok = lib.accept(m, tid)
                t3 = time.perf_counter()
                if not ok or not torch.isfinite(out[tid]):
                    raise SystemExit(f"{name} rejected token {tid} ({tok.decode([tid])!r}) of {compact(args)}")
                fills.append(t1 - t0)
                applies.append(t2 - t1)
                advances.append(t3 - t2)
        print(f"  {label:48s} {compile_s * 1e3:10.1f} {us(first):>11s} {us(med(fills))} {us(med(applies))} "
              f"{us(med(advances)):>10s} {len(ids):6d}")
    print("  (fill/apply/advance: medians over every token of the compact example arguments, "
          f"{reps} passes)")


# ----- 2. the shipped constraint -------------------------------------------------------------------
def bench_shipped(tok: Any, reps: int, property_order: str = "declared_or_sorted") -> tuple[float, float]:
    from tokmem_agent.decoding.constraint import SchemaConstraint

    V = len(tok)
    t0 = time.perf_counter()
    sc = SchemaConstraint(tok, V + N_MEMORY, property_order=property_order)
    init = time.perf_counter() - t0
    print(f"\n[shipped] SchemaConstraint(tokenizer, {V}+{N_MEMORY}) {init * 1e3:.0f} ms "
          f"(property_order={sc.property_order!r}; compiled grammars cached per tokenizer)")
    print(f"  {'schema':48s} {'cold ms':>8s} {'cached ms':>9s} {'mask us':>8s} {'p90':>8s} {'advance us':>10s} "
          f"{'tokens':>6s}")
    logits = torch.randn(V + N_MEMORY)
    logits[V:] += 100.0  # the model "prefers" a memory token
    all_masks, all_adv = [], []
    for label, (schema, args) in SCHEMAS.items():
        ids = tok.encode(compact(args), add_special_tokens=False)
        t0 = time.perf_counter()
        m = sc.matcher(schema)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        m = sc.matcher(schema)
        cached = time.perf_counter() - t0
        masks, advs = [], []
        for rep in range(reps):
            m.reset()
            for tid in ids:
                t0 = time.perf_counter()
                out = m.mask_logits(logits)
                t1 = time.perf_counter()
                m.advance(tid)
                t2 = time.perf_counter()
                assert torch.isinf(out[V:]).all()
                masks.append(t1 - t0)
                advs.append(t2 - t1)
            assert m.is_done()
        all_masks += masks
        all_adv += advs
        print(f"  {label:48s} {cold * 1e3:8.1f} {cached * 1e3:9.2f} {us(med(masks))} {us(p90(masks))} "
              f"{us(med(advs)):>10s} {len(ids):6d}")
    print(f"  all tokens: mask_logits median {med(all_masks) * 1e6:.1f} us, advance median "
          f"{med(all_adv) * 1e6:.1f} us; cache {sc.cache_info}")
    return med(all_masks), med(all_adv)


# ----- 3. real tool schemas ------------------------------------------------------------------------
def bench_real(tok: Any, limit: int) -> None:
    from tokmem_agent.decoding import constraint as C

    root = Path(os.environ.get("TOKMEM_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")) / "data"
    files = [root / "sgd" / "tools.json", root / "xlam" / "tools.json"]
    schemas = []
    for f in files:
        if f.is_file():
            schemas += [t["parameters"] for t in json.loads(f.read_text())]
    if not schemas:
        print(f"\n[real schemas] none found under {root}; skipped")
        return
    schemas = schemas[:limit]
    st = C._TokenizerState(tok, cache_size=len(schemas) + 1)  # fresh cache: every compile is cold
    times, tiers = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", C.ConstraintWarning)
        t_all = time.perf_counter()
        for s in schemas:
            t0 = time.perf_counter()
            _, compiled = st.compile(s, "declared_or_sorted")
            times.append(time.perf_counter() - t0)
            tiers[compiled.tier] = tiers.get(compiled.tier, 0) + 1
        total = time.perf_counter() - t_all
    ms = sorted(t * 1e3 for t in times)
    print(f"\n[real schemas] {len(schemas)} SGD+xLAM tool schemas compiled cold by the shipped constraint in "
          f"{total:.1f} s: median {med(ms):.1f} ms, p90 {p90(ms):.1f} ms, max {ms[-1]:.1f} ms; tiers {tiers}")


# ----- 4. the model, side by side ------------------------------------------------------------------
def bench_model(max_tokens: int, threads: int = 0) -> None:
    from transformers import DynamicCache

    from tokmem_agent.decoding.constraint import SchemaConstraint
    from tokmem_agent.model.loader import load_base_model

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    lm = load_base_model(None)
    print(f"\n[model] {lm.model_id} loaded in {time.perf_counter() - t0:.1f} s; torch threads "
          f"{torch.get_num_threads()}")
    model, tok = lm.model, lm.tokenizer
    V = model.get_input_embeddings().num_embeddings
    sc = SchemaConstraint(tok, V + N_MEMORY)
    prompts = [
        ("get_weather (string, optional enum)", ("What's the weather in Paris in fahrenheit? Reply with the "
                                                 "JSON arguments for get_weather(city, unit).")),
        ("search_flights (number, bool, bounds)", ("Find me a nonstop economy flight from Oslo to Rome for 2 "
                                                   "people under 300 euros. Reply with the JSON arguments for "
                                                   "search_flights.")),
        ("send_email (arrays, optional)", ("Email bob@example.com and ann@example.com that the meeting moved "
                                           "to 3pm. Reply with the JSON arguments for send_email.")),
    ]
    fwd, mask, argmax = [], [], []
    for label, text in prompts:
        schema = SCHEMAS[label][0]
        m = sc.matcher(schema)
        ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                      tokenize=True, return_dict=False)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        cache = DynamicCache(config=model.config)
        with torch.no_grad():
            out = model(torch.tensor([list(ids)]), past_key_values=cache, use_cache=True)
            logits = out.logits[0, -1]
            steps = 0
            while not m.is_done() and steps < max_tokens:
                full = torch.cat([logits.float(), torch.full((N_MEMORY,), 50.0)])  # memory tokens "preferred"
                t0 = time.perf_counter()
                scores = m.mask_logits(full)
                t1 = time.perf_counter()
                nxt = int(torch.argmax(scores))  # the controller's argmax, constrained or not
                t2 = time.perf_counter()
                m.advance(nxt)
                t3 = time.perf_counter()
                out = model(torch.tensor([[nxt]]), past_key_values=out.past_key_values, use_cache=True)
                logits = out.logits[0, -1]
                t4 = time.perf_counter()
                mask.append((t1 - t0) + (t3 - t2))
                argmax.append(t2 - t1)
                fwd.append(t4 - t3)
                steps += 1
        text_out = tok.decode(m.ids)
        print(f"  {label:40s} {steps:3d} tokens, done={m.is_done()}: {text_out[:110]}")
    f, k = med(fwd), med(mask)
    print(f"  decode step (1 token, KV cache): median {f * 1e3:.1f} ms, p90 {p90(fwd) * 1e3:.1f} ms "
          f"over {len(fwd)} steps")
    print(f"  mask_logits + advance:           median {k * 1e6:.0f} us, p90 {p90(mask) * 1e6:.0f} us "
          f"(argmax, paid with or without the constraint: median {med(argmax) * 1e6:.0f} us)")
    print(f"  ratio (constraint / decode step): {k / f * 100:.2f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--libs", nargs="*", default=list(LIBS), choices=list(LIBS))
    ap.add_argument("--reps", type=int, default=5, help="teacher-forced passes per schema")
    ap.add_argument("--real-schemas", type=int, default=300, help="SGD+xLAM schemas to compile (0: skip)")
    ap.add_argument("--no-model", action="store_true", help="skip the model section")
    ap.add_argument("--max-tokens", type=int, default=60, help="constrained tokens per model prompt")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the model section (0: default)")
    ap.add_argument("--one-lib", help=argparse.SUPPRESS)  # internal: one library section, in a subprocess
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*[Ll]ogits.*")
    if args.one_lib:
        bench_library(args.one_lib, load_tokenizer(), args.reps)
        return

    from importlib.metadata import version

    import transformers
    import xgrammar  # noqa: F401

    def ver(pkg: str) -> str:
        try:
            return version(pkg)
        except Exception:  # noqa: BLE001
            return "-"

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, xgrammar "
          f"{ver('xgrammar')}, llguidance {ver('llguidance')}, outlines-core {ver('outlines_core')}")
    t0 = time.perf_counter()
    tok = load_tokenizer()
    print(f"tokenizer: {len(tok)} tokens, loaded in {time.perf_counter() - t0:.1f} s; logit width "
          f"{len(tok)} + {N_MEMORY} memory tokens")
    # each library in its own process: their thread pools must not disturb the others' timings
    for name in args.libs:
        sys.stdout.flush()
        subprocess.run([sys.executable, __file__, "--one-lib", name, "--reps", str(args.reps)], check=False)
    bench_shipped(tok, args.reps, "declared")
    bench_shipped(tok, args.reps)
    if args.real_schemas:
        bench_real(tok, args.real_schemas)
    if not args.no_model:
        print(f"\nload average before the model section {os.getloadavg()[0]:.2f}")
        bench_model(args.max_tokens, args.threads)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
