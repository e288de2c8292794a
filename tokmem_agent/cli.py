"""Command line: ``tokmem train | inspect | calibrate | predict | export | serve | register | forget | chat``."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

import typer

from .config import ALL_PROJECTIONS, DTYPES, LoraSettings, RegisterConfig, TrainConfig
from .errors import TokMemError

#: the one source of the training defaults the options show: `tokmem train` trains the measured recipe
#: (TrainConfig.recipe, LoRA round included; ``TrainConfig()`` itself leaves LoRA off)
_TC = TrainConfig.recipe()
_TC_LORA = _TC.lora or LoraSettings()
_RC = RegisterConfig()  # tokmem register's defaults
_RENORM: dict[str, Any] = {"cap": "cap", "mean": True, "off": False}
_LORA_MODULES = "all" if list(_TC_LORA.target_modules) == list(ALL_PROJECTIONS) else ",".join(_TC_LORA.target_modules)

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="TokMem: one trainable memory token per tool on a frozen language model.")


def _choice(*allowed: str) -> Any:
    """An option callback that accepts only ``allowed`` values (exit 2 with the list otherwise)."""
    def check(value: str) -> str:
        if value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}")
        return value
    return check


def _lora_modules(spec: str) -> list[str]:
    if spec.strip() == "all":
        return list(ALL_PROJECTIONS)
    mods = [m.strip() for m in spec.split(",") if m.strip()]
    if not mods:
        raise typer.BadParameter("give module names (q_proj,v_proj) or 'all'", param_hint="--lora-modules")
    return mods


DEVICE_HELP = "Where the model runs: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps."
DTYPE_HELP = "Backbone dtype (memory rows stay float32)."


def _spec(model: str | None, device: str, dtype: str) -> Any:
    """The ``--model/--device/--dtype`` of a command as a ModelConfig (None model: the default or the bank's)."""
    from .config import ModelConfig

    return ModelConfig(name_or_path=model, device=device, dtype=dtype)  # type: ignore[arg-type]


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")


SKIP_HELP = "Leave out records that fail validation (bad JSON, arguments against the schema…) and report how many."


def _load(source: str, *, limit: int | None = None, skip_invalid: bool = False, what: str = "--data") -> list[Any]:
    """Traces of ``source``; with ``skip_invalid`` the bad records are left out and counted on stderr."""
    from .traces import load_traces

    if not skip_invalid:
        return load_traces(source, limit=limit)
    skipped: list[Any] = []
    traces = load_traces(source, limit=limit, skipped=skipped)
    if skipped:
        typer.secho(f"{what}: skipped {len(skipped)} invalid record(s); first: {skipped[0]}", err=True,
                    fg=typer.colors.YELLOW)
    if not traces:
        raise TokMemError(f"{what}: no valid records in {source} ({len(skipped)} invalid)")
    return traces


@app.command()
def train(
    data: str = typer.Option(..., "--data", help="APIGen JSONL file (ours or original xLAM shape) or a HF dataset id."),
    out: Path = typer.Option(..., "--out", help="Directory to write the memory bank (and checkpoints) to."),
    model: str | None = typer.Option(None, "--model", help="HF id or local dir; default SmolLM2-135M-Instruct."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    dtype: str = typer.Option("float32", "--dtype", callback=_choice(*DTYPES), help=DTYPE_HELP),
    bank: Path | None = typer.Option(None, "--bank", help="Start from this bank (its tokens not in --data stay frozen)."),
    epochs: int = typer.Option(_TC.epochs, min=1, help="Passes over the data."),
    batch_size: int = typer.Option(_TC.batch_size, min=1, help="Traces per step."),
    grad_accum: int = typer.Option(_TC.grad_accum, min=1, help="Micro-batches per optimizer step."),
    lr: float = typer.Option(_TC.lr, help="AdamW learning rate of the memory rows."),
    max_length: int = typer.Option(_TC.max_length, min=16, help="Max tokens per trace (context is cut first, never the target)."),
    mode: str = typer.Option("tied", callback=_choice("tied", "decoupled"), help="Memory matrices."),
    init: str = typer.Option("mean", callback=_choice("mean", "random", "orthogonal"), help="Row init."),
    reading: str = typer.Option("compositional", callback=_choice("compositional", "chain"),
                                help="compositional (all calls at once) | chain (calls, results, answer)."),
    decision_weight: float = typer.Option(_TC.decision_weight, help="Loss weight of call/answer/stop decisions (5: the "
                                          "measured recipe, helps chains; 1: the paper's uniform loss; docs/training.md)."),
    lora: bool = typer.Option(True, "--lora/--no-lora", help="Adaptation round (on by default, the measured recipe): "
                              "train LoRA together with the memory rows. --no-lora trains the memory rows only "
                              "(the paper's TokMem)."),
    lora_r: int = typer.Option(_TC_LORA.r, min=1, help="LoRA rank of the adaptation round (alpha = 2r); 1 was enough on SGD."),
    lora_lr: float = typer.Option(_TC.lora_lr, help="Learning rate of the LoRA weights (was 2e-4 before the recipe)."),
    lora_modules: str = typer.Option(_LORA_MODULES, help="Comma-separated projections that get LoRA, or 'all': every "
                                     "attention and MLP projection (the measured best); q_proj,v_proj: the old default."),
    limit: int | None = typer.Option(None, min=1, help="Use only the first N records."),
    checkpoint_every: int = typer.Option(_TC.checkpoint_every, min=1, help="Optimizer steps between checkpoints in OUT/checkpoint."),
    seed: int = typer.Option(_TC.seed),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint."),
    autocast: str = typer.Option("auto", callback=_choice("auto", "bf16", "none"),
                                 help="bf16 autocast only helps where the hardware has bf16."),
    calibrate_on: str | None = typer.Option(None, "--calibrate-on", help="Held-out traces (with and without calls) "
                                            "to calibrate the call thresholds on after training (tokmem calibrate)."),
    no_call: list[Path] = typer.Option([], "--no-call", help="With --calibrate-on: text file of held-out messages "
                                                            "that need no tool; repeatable."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_HELP),
) -> None:
    """Train memory tokens for the tools called in --data.

    Defaults: the measured recipe (decision weight 5, 10 % no-call share, 10 % warmup + linear decay, batch 4,
    2 epochs, LoRA r 8 on every attention and MLP projection at lr 1e-3, trained with the memory rows).
    --no-lora trains the memory rows only; --decision-weight 1 --lora-modules q_proj,v_proj --lora-lr 2e-4
    gives the previous defaults back.
    """
    from .config import MemoryConfig
    from .decoding.calibrate import calibrate_call_threshold, no_call_traces
    from .tokmem import TokMem
    from .traces import tools_in

    try:
        if no_call and not calibrate_on:
            raise TokMemError("--no-call needs --calibrate-on (held-out traces with calls)")
        if out.exists() and not out.is_dir():  # before minutes of loading (the trainer checks it too)
            raise TokMemError(f"{out} is a file; the bank and its checkpoints need a directory there")
        traces = _load(data, limit=limit, skip_invalid=skip_invalid)
        held_out = _load(calibrate_on, skip_invalid=skip_invalid, what="--calibrate-on") if calibrate_on else []
        for path in no_call:
            held_out += no_call_traces(path)
        cfg = TrainConfig.recipe(epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
                                 max_length=max_length, seed=seed,
                                 lora=LoraSettings(r=lora_r, alpha=2 * lora_r, target_modules=_lora_modules(lora_modules))
                                 if lora else None,
                                 lora_lr=lora_lr, decision_weight=decision_weight, checkpoint_every=checkpoint_every,
                                 autocast=None if autocast == "none" else autocast)
        if bank is not None:
            tm = TokMem.load(bank, _spec(model, device, dtype))
        elif resume and (out / "checkpoint").exists():
            tm = TokMem.load(out / "checkpoint", _spec(model, device, dtype))
        else:
            defs = tools_in(traces)
            called = sorted({c.name for t in traces for c in t.calls})
            tm = TokMem.create([defs[n] for n in called], _spec(model, device, dtype), memory=MemoryConfig(mode=mode, init=init), seed=seed)
        typer.echo(f"{len(traces)} traces, {len(tm.tool_names)} tools, base model {tm.loaded.model_id}")
        result = tm.train(traces, cfg, out_dir=out, resume=resume, reading=reading)
        cal = calibrate_call_threshold(tm, held_out) if held_out else None
        if cal is not None:
            tm.save(out)
    except TokMemError as exc:
        _fail(exc)
        return
    typer.echo(f"trained {len(result.trained_tools)} tool tokens in {result.seconds:.0f} s "
               f"({result.steps} steps, {result.tokens_per_s:.0f} tokens/s); bank saved to {out}")
    if cal is not None:
        typer.echo(cal.summary())


@app.command()
def inspect(bank: Path = typer.Argument(..., help="Memory bank directory."),
            as_json: bool = typer.Option(False, "--json", help="Print the raw config.")) -> None:
    """Show what a memory bank holds (no model is loaded)."""
    from .serialization import read_config, read_tensors

    try:
        cfg = read_config(bank)
        if as_json:
            typer.echo(json.dumps(cfg, indent=2, ensure_ascii=False))
            return
        tensors = read_tensors(bank, cfg)
    except TokMemError as exc:
        _fail(exc)
        return
    norms = tensors["steer"].norm(dim=-1).tolist()
    n_params = sum(t.numel() for t in tensors.values())
    typer.echo(f"bank {bank}  (format v{cfg['format_version']})")
    typer.echo(f"  base model   {cfg['base_model']}  (hidden {cfg['hidden_size']}, vocab {cfg['vocab_size']}, "
               f"tokenizer {cfg['tokenizer_fingerprint']})")
    typer.echo(f"  memory       {len(cfg['tools'])} tokens, {cfg['mode']} mode, {n_params:,} parameters"
               + (f", LoRA r={cfg['lora']['r']}" if cfg.get("lora") else ""))
    training = (cfg.get("meta") or {}).get("training")
    if training:
        last = training["history"][-1] if training.get("history") else {}
        typer.echo(f"  training     {training['steps']} steps, {training['seconds']} s, {training['n_train']} traces"
                   + (f", held-out tool selection {last['eval_tool_acc']:.3f}" if "eval_tool_acc" in last else ""))
    meta = cfg.get("meta") or {}
    if meta.get("call_threshold") is not None:
        go_on = meta.get("continue_threshold")
        typer.echo(f"  thresholds   call {meta['call_threshold']:.4f}"
                   + (f", go on {go_on:.4f}" if go_on is not None else "") + " (tokmem calibrate)")
    else:
        typer.echo("  thresholds   none: argmax call decisions (tokmem calibrate sets them)")
    anchors = cfg.get("anchors") or []
    typer.echo(f"  anchors      {len(anchors)} for {len(set(anchors))} tools" if anchors else
               "  anchors      none (register warns; pass --replay traces of the old tools)")
    typer.echo("  tools:")
    width = max((len(t["name"]) for t in cfg["tools"]), default=4)
    for t, norm in zip(cfg["tools"], norms):
        args = ", ".join(t["parameters"].get("properties", {}))
        typer.echo(f"    {t['name']:<{width}}  |M|={norm:6.3f}  ({args})")


@app.command()
def calibrate(bank: Path = typer.Argument(..., help="Memory bank directory."),
              data: str | None = typer.Option(None, "--data", help="Held-out traces (APIGen JSONL): records with "
                                                                 "calls, and with answers: [] for no call."),
              no_call: list[Path] = typer.Option([], "--no-call", help="Text file of held-out messages that need "
                                                                      "no tool, one per line; repeatable."),
              out: Path | None = typer.Option(None, "--out", help="Write here (default: replace BANK, atomically)."),
              model: str | None = typer.Option(None, "--model"),
              device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
              dtype: str = typer.Option("float32", "--dtype", callback=_choice(*DTYPES), help=DTYPE_HELP)) -> None:
    """Calibrate the call-or-answer threshold on held-out requests and store it in the bank."""
    from .decoding.calibrate import calibrate_call_threshold, no_call_traces
    from .tokmem import TokMem
    from .traces import load_traces

    try:
        traces = load_traces(data) if data else []
        for path in no_call:
            traces += no_call_traces(path)
        tm = TokMem.load(bank, _spec(model, device, dtype))
        cal = calibrate_call_threshold(tm, traces)
        tm.save(out or bank)
    except TokMemError as exc:
        _fail(exc)
        return
    typer.echo(cal.summary())
    typer.echo(f"saved to {out or bank}; the controller uses it by default (ControllerConfig.call_threshold)")


@app.command()
def predict(bank: Path = typer.Argument(..., help="Memory bank directory."),
            query: str = typer.Argument(..., help="The user request."),
            model: str | None = typer.Option(None, "--model"),
            device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
            dtype: str = typer.Option("float32", "--dtype", callback=_choice(*DTYPES), help=DTYPE_HELP),
            max_new_tokens: int = typer.Option(256, min=1)) -> None:
    """Which tools (and argument text) the memory tokens choose for a query (plain greedy decoding)."""
    from .tokmem import TokMem

    try:
        tm = TokMem.load(bank, _spec(model, device, dtype))
        pred = tm.predict(query, max_new_tokens=max_new_tokens)
    except TokMemError as exc:
        _fail(exc)
        return
    if pred.text.strip():
        typer.echo(f"text: {pred.text.strip()}")
    for c in pred.calls:
        typer.echo(f"{c.name} {c.arguments}")
    if not pred.calls:
        typer.echo("(no tool call)")


@app.command()
def export(bank: Path = typer.Argument(..., help="Memory bank directory."),
           out: Path = typer.Option(..., "--out", help="Folder for the exported checkpoint."),
           merge_lora: bool = typer.Option(False, "--merge-lora", help="Fold the LoRA round into the weights "
                                           "(default: write it beside them as a peft adapter in OUT/adapter)."),
           overwrite: bool = typer.Option(False, "--overwrite", help="Write into a folder that is not empty."),
           model: str | None = typer.Option(None, "--model"),
           dtype: str = typer.Option("float32", "--dtype", callback=_choice(*DTYPES), help=DTYPE_HELP)) -> None:
    """Write the bank as a plain Hugging Face checkpoint (memory tokens in the vocabulary) for vLLM, SGLang or
    transformers; see docs/serving.md."""
    from .serving.export import STRUCTURAL_TAG_FILE, TOOLS_FILE, export_bank
    from .tokmem import TokMem

    try:
        tm = TokMem.load(bank, _spec(model, "cpu", dtype))
        res = export_bank(tm, out, merge_lora=merge_lora, overwrite=overwrite)
    except TokMemError as exc:
        _fail(exc)
        return
    first, last = min(res.tokens.values()), max(res.tokens.values())
    typer.echo(f"exported {len(res.tokens)} tools to {res.path} (token ids {first}..{last}, "
               f"{'tied' if res.tied else 'untied'} embeddings, LoRA: {res.lora})")
    typer.echo(f"  {TOOLS_FILE}: names, tokens, schemas;  {STRUCTURAL_TAG_FILE}: the argument grammar")
    if res.lora == "adapter":
        typer.echo("  adapter/: the LoRA round as a peft adapter (or export again with --merge-lora)")


@app.command()
def serve(bank: Path = typer.Argument(..., help="Memory bank directory."),
          tools: list[str] = typer.Option([], "--tools", help="Tools the server offers to requests that send no "
                                          "'tools' (pkg.module, pkg.module:attr or tools.json; repeatable); each "
                                          "must have a memory token in the bank."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
          port: int = typer.Option(8000, "--port", min=0, max=65535),
          batch_size: int = typer.Option(8, "--batch-size", min=1, help="Requests decoded together."),
          max_queue: int = typer.Option(64, "--max-queue", min=1, help="Waiting requests before 429."),
          max_tokens: int = typer.Option(512, "--max-tokens", min=1, help="The most one request may generate."),
          api_key: str | None = typer.Option(None, "--api-key", envvar="TOKMEM_API_KEY",
                                             help="Require 'Authorization: Bearer KEY' on /v1/."),
          name: str | None = typer.Option(None, "--name", help="Model name in /v1/models (default: the bank's "
                                                               "folder name)."),
          allow_register: bool = typer.Option(False, "--allow-register", help="Enable POST /v1/tools: register "
                                              "tools into the running bank (trained in the background)."),
          save_bank: Path | None = typer.Option(None, "--save-bank", help="With --allow-register: save each new "
                                                "bank here (atomically)."),
          register_unknown: bool = typer.Option(False, "--register-unknown", help="With --allow-register: a "
                                                "request naming tools the bank lacks starts their zero-data "
                                                "registration (503 + Retry-After until they are served)."),
          today: str | None = typer.Option(None, "--today", help="The date relative dates resolve against, "
                                           "YYYY-MM-DD (default: the date when each request runs)."),
          model: str | None = typer.Option(None, "--model"),
          device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
          dtype: str = typer.Option("float32", "--dtype", callback=_choice(*DTYPES), help=DTYPE_HELP)) -> None:
    """Serve the bank as an OpenAI-compatible chat completions endpoint (docs/serving.md)."""
    try:
        import uvicorn

        from .serving.openai_api import create_app
    except ImportError as exc:
        _fail(TokMemError(f"tokmem serve needs the serve extra: pip install 'tokmem-agent[serve]' ({exc})"))
        return
    from .config import ControllerConfig
    from .serving.engine import Engine
    from .serving.registration import Registrar
    from .tokmem import TokMem

    try:
        tm = TokMem.load(bank, _spec(model, device, dtype))
        from .registry import Tool

        offered = [Tool.coerce(t).name for spec in tools for t in load_tool_objects(spec)]
        missing = [n for n in offered if n not in tm.tool_names]
        if missing:
            raise TokMemError(f"--tools: no memory token in {bank} for {', '.join(missing)} (tokmem register them)")
        engine = Engine(tm, ControllerConfig(max_new_tokens=max_tokens, today=today), batch_size=batch_size,
                        max_queue=max_queue)
    except TokMemError as exc:
        _fail(exc)
        return
    model_name = name or bank.resolve().name
    typer.echo(f"serving {model_name} ({len(tm.tool_names)} tools"
               + (f"; {len(offered)} offered to requests without 'tools'" if offered else "")
               + f") on http://{host}:{port}/v1 "
               f"(batch {batch_size}, queue {max_queue}{', API key required' if api_key else ''})")
    try:
        registrar = Registrar(engine, save_to=save_bank) if allow_register else None
        uvicorn.run(create_app(engine, model_name=model_name, api_key=api_key, max_tokens=max_tokens,
                               registrar=registrar, register_unknown=register_unknown,
                               default_tools=offered or None),
                    host=host, port=port, log_level="warning")
    finally:
        engine.close()


def load_tool_objects(spec: str) -> list[Any]:
    """Tools from ``pkg.module`` (its ``make_tools()`` or ``TOOLS``), ``pkg.module:attr`` (a callable tool
    or a list of tools) or ``file.json`` (one tool definition or a list: name, description, parameters)."""
    import importlib

    if spec.endswith(".json"):
        try:
            obj = json.loads(Path(spec).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise typer.BadParameter(f"cannot read tool definitions from {spec}: {exc}") from None
        return list(obj) if isinstance(obj, list) else [obj]
    mod_name, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import tool module '{mod_name}': {exc}") from None
    if attr:
        if not hasattr(mod, attr):
            raise typer.BadParameter(f"module '{mod_name}' has no attribute '{attr}'")
        obj = getattr(mod, attr)
        return list(obj) if isinstance(obj, (list, tuple)) else [obj]
    if hasattr(mod, "make_tools"):
        return list(mod.make_tools())
    if hasattr(mod, "TOOLS"):
        return list(mod.TOOLS)
    raise typer.BadParameter(f"module '{mod_name}' has neither make_tools() nor TOOLS; use module:attr")


@app.command()
def register(
    bank: Path = typer.Argument(..., help="Trained memory bank directory."),
    tool: list[str] = typer.Option(..., "--tool", help="pkg.mod:attr, pkg.mod or tools.json; repeatable."),
    data: str | None = typer.Option(None, "--data", help="Traces for the new tools (APIGen JSONL). "
                                       "Tools without traces get synthetic ones."),
    replay: str | None = typer.Option(None, "--replay", help="Traces of known tools: where they call them becomes "
                                         "extra anchors that keep the new tokens off old requests."),
    replay_per_tool: int = typer.Option(_RC.replay_per_tool, min=0, help="Replay traces per known tool."),
    anchor_weight: float = typer.Option(_RC.train.anchor_weight, help="Weight of the anchor loss: higher keeps old tools safer, "
                                        "new ones learn less (0: ignore the bank's anchors)."),
    synth: int = typer.Option(_RC.synth_per_tool, "--synth", min=1, help="Synthetic traces per tool without traces."),
    dialogues: float = typer.Option(_RC.synth_dialogue_rate, "--dialogues", min=0.0, max=1.0,
                                    help="Share of synthetic traces that are short conversations (the assistant "
                                         "asks for a missing argument, or confirms an action) instead of one "
                                         "request."),
    paraphrase: bool = typer.Option(False, "--paraphrase", help="Rewrite synthetic queries with the base model."),
    run_tools: str = typer.Option("read_only", "--run-tools", callback=_choice("read_only", "always", "never"),
                                  help="Call tools on sampled arguments so synthetic traces carry real results and "
                                       "answers: read_only (tools marked free of side effects), always, never."),
    epochs: int = typer.Option(_RC.train.epochs, min=1, help="Passes over the new tools' traces."),
    bias: bool = typer.Option(_RC.calibrate_bias, "--bias/--no-bias",
                              help="Calibrate a logit bias for each tool registered from its schema alone, on "
                                   "held-out synthetic requests against the bank's anchors (docs/continual.md)."),
    retrain: bool = typer.Option(False, "--retrain", help="Also retrain tools already in the bank."),
    out: Path | None = typer.Option(None, "--out", help="Write the new bank here (default: replace BANK, atomically)."),
    model: str | None = typer.Option(None, "--model"),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    dtype: str = typer.Option("float32", "--dtype", callback=_choice(*DTYPES), help=DTYPE_HELP),
    renormalize: str = typer.Option("cap", "--renormalize", callback=_choice("cap", "mean", "off"),
                                    help="New rows' norm after each step: cap (scaled down to the old rows' mean "
                                         "norm when longer; the measured best), mean (always scaled to it: paper "
                                         "eq. 5-6), off."),
    seed: int = typer.Option(0),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_HELP),
) -> None:
    """Add memory tokens for new tools; every existing token stays bit-identical."""
    from .config import RegisterConfig
    from .tokmem import TokMem

    try:
        objs = [t for spec in tool for t in load_tool_objects(spec)]
        traces = _load(data, skip_invalid=skip_invalid) if data else None
        old = _load(replay, skip_invalid=skip_invalid, what="--replay") if replay else ()
        cfg = RegisterConfig(synth_per_tool=synth, synth_dialogue_rate=dialogues, replay_per_tool=replay_per_tool,
                             paraphrase=paraphrase, calibrate_bias=bias,
                             run_tools=run_tools,  # type: ignore[arg-type]
                             train=dataclasses.replace(_RC.train, epochs=epochs, seed=seed,
                                                       renormalize=_RENORM[renormalize], anchor_weight=anchor_weight))
        tm = TokMem.load(bank, _spec(model, device, dtype))
        res = tm.register(objs, traces, replay=old, config=cfg, retrain=retrain, out_dir=out or bank)
    except TokMemError as exc:
        _fail(exc)
        return
    if not res.trained:
        typer.echo(f"nothing to train: {', '.join(res.unchanged)} already in {bank} with the same schema "
                   "(--retrain to train again)")
        return
    typer.echo(f"registered {', '.join(res.added) or '-'}; replaced {', '.join(res.replaced) or '-'} "
               f"({res.n_traces} traces, {res.n_synthetic} synthetic, {res.n_ran} of them with real results; "
               f"{res.n_anchors} anchors, {res.n_replay} replay "
               f"traces) in {res.seconds:.0f} s; "
               f"bank saved to {out or bank} ({len(tm.tool_names)} tools)")
    for name, queries in res.examples.items():
        typer.echo(f"  {name}: synthetic requests such as " + "; ".join(repr(q) for q in queries))
    if res.row_bias:
        typer.echo("  calibrated logit bias: " + ", ".join(f"{n} {b:+.2f}" for n, b in res.row_bias.items()))
    if res.answer_bias:
        typer.echo("  text lead after the result: " + ", ".join(f"{n} {b:+.2f}" for n, b in res.answer_bias.items()))
    for w in res.warnings:
        typer.secho(f"  warning: {w}", fg=typer.colors.YELLOW)


@app.command()
def forget(bank: Path = typer.Argument(..., help="Memory bank directory."),
           names: list[str] = typer.Argument(..., help="Tool names to remove."),
           out: Path | None = typer.Option(None, "--out", help="Write here (default: replace BANK, atomically)."),
           model: str | None = typer.Option(None, "--model"),
           device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
           dtype: str = typer.Option("float32", "--dtype", callback=_choice(*DTYPES), help=DTYPE_HELP)) -> None:
    """Remove tools' memory tokens; the others are untouched."""
    from .tokmem import TokMem

    try:
        tm = TokMem.load(bank, _spec(model, device, dtype))
        tm.forget(*names)
        tm.save(out or bank)
    except TokMemError as exc:
        _fail(exc)
        return
    typer.echo(f"removed {', '.join(names)}; {len(tm.tool_names)} tools left in {out or bank}")


@app.command()
def chat(bank: Path = typer.Argument(..., help="Memory bank directory."),
         tools: list[str] = typer.Option(..., "--tools", help="Tool module (pkg.mod) or pkg.mod:attr; repeatable."),
         model: str | None = typer.Option(None, "--model"),
         device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
         dtype: str = typer.Option("float32", "--dtype", callback=_choice(*DTYPES), help=DTYPE_HELP),
         unconstrained: bool = typer.Option(False, "--unconstrained", help="Free argument decoding (paper protocol)."),
         max_steps: int = typer.Option(6, min=1, help="Tool rounds per request."),
         today: str | None = typer.Option(None, "--today", help="The date relative dates (\"next Friday\") "
                                          "resolve against, YYYY-MM-DD (default: this machine's date)."),
         query: str | None = typer.Option(None, "--query", "-q", help="Answer one request and exit.")) -> None:
    """Talk to an agent: each tool call and its result is printed as it happens."""
    from .agent import TokMemAgent
    from .config import ControllerConfig

    try:
        objs = [t for spec in tools for t in load_tool_objects(spec)]
        agent = TokMemAgent.from_pretrained(bank, objs, model=_spec(model, device, dtype),
                                            config=ControllerConfig(constrained=not unconstrained, max_steps=max_steps,
                                                                    today=today))
    except TokMemError as exc:
        _fail(exc)
        return
    typer.echo(f"{len(agent.tools)} tools bound: {', '.join(t.name for t in agent.tools)}. Empty line or Ctrl-D quits.")

    def show(step: Any) -> None:
        args = json.dumps(step.arguments, ensure_ascii=False) if step.arguments is not None else step.argument_text
        typer.secho(f"  → {step.tool}({args})", fg=typer.colors.CYAN)
        if step.ok:
            typer.echo(f"    ← {step.result_text}")
        else:
            typer.secho(f"    ✗ {step.status}: {step.error}", fg=typer.colors.YELLOW)

    while True:
        text = query if query is not None else _read_line()
        if not text:
            break
        try:
            result = agent.run(text, on_step=show)
        except TokMemError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            continue
        typer.secho(result.answer or f"(no answer: {result.outcome})", bold=True)
        typer.echo(f"  [{result.outcome}; {result.prompt_tokens} prompt tokens, {result.generated_tokens} generated, "
                   f"{result.timings.get('total_s', 0):.1f} s]")
        if query is not None:
            break


def _read_line() -> str:
    try:
        return input("you> ").strip()
    except EOFError:
        return ""


# ----- plugin commands --------------------------------------------------------------------------------
PLUGIN_GROUP = "tokmem_agent.commands"


def load_plugins(target: typer.Typer = app) -> list[str]:
    """Add the commands other packages register in the entry-point group ``tokmem_agent.commands``.

    ``name = "module:function"`` becomes ``tokmem name`` (a ``typer.Typer`` object becomes a command group).
    This is how ``tokmem eval`` (``evals.cli:eval_command``) joins without the library importing ``evals``.
    Built-in commands win over plugins of the same name; a plugin that fails to import is skipped with a
    warning. Returns the names added.
    """
    from importlib.metadata import entry_points

    taken = {c.name or (c.callback.__name__.replace("_", "-") if c.callback else "") for c in target.registered_commands}
    taken |= {g.name for g in target.registered_groups if g.name}
    added: list[str] = []
    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.name in taken:
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the built-in commands
            logging.getLogger("tokmem_agent").warning("plugin command %r (%s) not loaded: %s", ep.name, ep.value, exc)
            continue
        if isinstance(obj, typer.Typer):
            target.add_typer(obj, name=ep.name)
        else:
            target.command(name=ep.name)(obj)
        taken.add(ep.name)
        added.append(ep.name)
    return added


load_plugins()


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
