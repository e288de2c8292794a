"""``tokmem eval``: run function-calling methods over a dataset and write the report.

Registered as a plugin command of the ``tokmem`` CLI (entry point group ``tokmem_agent.commands``, see
pyproject.toml); also ``python -m evals``. Heavy imports happen inside the command, so ``tokmem --help``
stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

DATA_HELP = ("APIGen JSONL file (ours or original xLAM shape), or sgd:SPLIT, xlam:SPLIT (../shared/data), "
             "or bfcl:CATEGORY (the bfcl-eval package).")


def load_dataset(spec: str, limit: int | None = None) -> list[Any]:
    """Traces of a data spec: a JSONL path, ``sgd:dev``, ``xlam:test`` or ``bfcl:simple``."""
    from . import datasets

    kind, sep, arg = spec.partition(":")
    if sep and not Path(spec).exists():
        if kind == "sgd":
            return datasets.sgd(arg or "dev", limit=limit)
        if kind == "xlam":
            return datasets.xlam(arg or "test", limit=limit)
        if kind == "bfcl":
            return datasets.bfcl(arg or "simple", limit=limit)
    return datasets.load_apigen(spec, limit=limit)


def _sample(traces: list[Any], n: int | None, sample: bool, seed: int) -> list[Any]:
    if n is None or n >= len(traces):
        return traces
    if not sample:
        return traces[:n]
    import hashlib

    keep = set(sorted(range(len(traces)), key=lambda i: hashlib.sha1(f"{seed}|{traces[i].id}".encode()).hexdigest())[:n])
    return [t for i, t in enumerate(traces) if i in keep]


def eval_command(
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)],
    out: Annotated[Path, typer.Option("--out", help="Output directory (report, metrics, predictions cache).")],
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated: tokmem, tokmem-free, icl, rag, "
                                         "rag-emb, lora, kw-router.")] = "tokmem,tokmem-free,icl,rag,lora",
    bank: Annotated[Path | None, typer.Option("--bank", help="Memory bank for tokmem/tokmem-free (trained from "
                                              "--train-data first when the directory does not exist).")] = None,
    train_data: Annotated[str | None, typer.Option("--train-data", help="Training traces (same forms as --data) "
                                                   "for what is missing: the TokMem bank, the LoRA adapter; "
                                                   "always for kw-router (its router fits them).")] = None,
    train_limit: Annotated[int | None, typer.Option("--train-limit", help="Use only the first N training "
                                                    "records.")] = None,
    lora_adapter: Annotated[Path | None, typer.Option("--lora-adapter", help="LoRA adapter directory "
                                                      "(default OUT/lora-adapter).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate N examples (the first N, or see "
                                              "--sample).")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="With --limit: a seeded random sample instead of the "
                                         "first N.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --sample and of training.")] = 0,
    only_trained: Annotated[bool, typer.Option("--only-trained-tools", help="Keep only examples whose gold tools "
                                               "all have a token in --bank.")] = False,
    only_tools: Annotated[str | None, typer.Option("--only-tools", help="Keep only examples whose gold tools are "
                                                  "all among these: comma-separated names, or a tools JSON "
                                                  "file (a list of schemas, as tokmem register takes).")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Greedy decoding budget, every "
                                                "method.")] = 160,
    model: Annotated[str | None, typer.Option("--model", help="Base model (HF id or local dir); default: the "
                                              "bank's base model, else SmolLM2-135M-Instruct.")] = None,
    k: Annotated[int, typer.Option("--k", help="Tool schemas retrieved per query (rag, rag-emb).")] = 3,
    icl_tools: Annotated[str, typer.Option("--icl-tools", help="Schemas in the in-context prompt: all (the whole "
                                           "tool inventory), record (each record's candidate tools), auto (all if "
                                           "it fits the context window, else record).")] = "auto",
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs (TokMem bank and LoRA adapter).")] = 1,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank of the LoRA baseline.")] = 8,
    lora_lr: Annotated[float, typer.Option("--lora-lr", help="Learning rate of the LoRA baseline.")] = 5e-4,
    router_text: Annotated[str, typer.Option("--router-text", help="What the kw-router classifies: context "
                                             "(every message before the call) or last-user.")] = "context",
    max_length: Annotated[int, typer.Option("--max-length", help="Max tokens per training sequence.")] = 1024,
    device: Annotated[str, typer.Option("--device", help="Where the model runs: auto (cuda, then mps, then cpu), "
                                        "cpu, cuda, cuda:N, mps.")] = "auto",
    call_threshold: Annotated[str, typer.Option("--call-threshold", help="tokmem's call-or-answer threshold: "
                                                "bank (the bank's calibrated value), off (argmax) or a "
                                                "probability.")] = "bank",
    bind: Annotated[str, typer.Option("--bind", help="Tools tokmem and kw-router may call on a record: bank "
                                      "(every tool they know; the paper's protocol) or record (the record's "
                                      "candidate tools, as an app binds the tools it serves).")] = "bank",
    ground: Annotated[bool, typer.Option("--ground/--no-ground", help="tokmem: grounded decoding (ControllerConfig's "
                                         "defaults for answers' numbers, places, times, dates and optional "
                                         "arguments; --no-ground turns all of them off).")] = True,
    controller: Annotated[list[str] | None, typer.Option(
        "--controller", help="tokmem: a ControllerConfig field as KEY=VALUE (repeatable), e.g. "
        "ground_times=false.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard cached predictions in OUT.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Records decoded together (continuous "
                                            "batching; every method but kw-router; same predictions as 1).")] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")] = True,
) -> None:
    """Evaluate function-calling methods on one dataset: report.md, metrics.json, results.json, plots."""
    params = dict(locals())
    from tokmem_agent.errors import TokMemError

    try:
        _run(**params)
    except TokMemError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _tool_names(spec: str) -> list[str]:
    """``--only-tools``: comma-separated names, or a JSON file holding a list of tool schemas or names."""
    from tokmem_agent.errors import ConfigError

    path = Path(spec)
    if spec.endswith(".json") or path.is_file():
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--only-tools {spec}: not a readable JSON file ({exc})") from None
        if not isinstance(items, list):
            raise ConfigError(f"--only-tools {spec}: expected a JSON list of tool schemas or names")
        names = [i["name"] if isinstance(i, dict) and "name" in i else i for i in items]
        if not all(isinstance(n, str) for n in names):
            raise ConfigError(f"--only-tools {spec}: every item needs a 'name'")
        return names
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ConfigError("--only-tools: no tool names given")
    return names


def _run(*, data: str, out: Path, methods: str, bank: Path | None, train_data: str | None,
         train_limit: int | None, lora_adapter: Path | None, limit: int | None, sample: bool, seed: int,
         only_trained: bool, max_new_tokens: int, model: str | None, k: int, icl_tools: str, epochs: int,
         lora_r: int, lora_lr: float, router_text: str, max_length: int, device: str, call_threshold: str,
         bind: str, fresh: bool, batch_size: int,
         progress: bool, ground: bool = True, only_tools: str | None = None,
         controller: list[str] | None = None) -> None:
    from tokmem_agent.errors import ConfigError

    from .methods import METHOD_NAMES, ROUTER_TEXTS, check_bind

    wanted = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in METHOD_NAMES]
    if unknown or not wanted:
        raise ConfigError(f"unknown method(s) {unknown or methods!r}; choose from {', '.join(METHOD_NAMES)}")
    if icl_tools not in ("auto", "all", "record"):
        raise ConfigError(f"--icl-tools must be auto, all or record, got {icl_tools!r}")
    needs_bank = any(m.startswith("tokmem") for m in wanted)
    if needs_bank and bank is None:
        raise ConfigError("tokmem methods need --bank")
    bank_exists = bank is not None and bank.exists()
    if needs_bank and not bank_exists and not train_data:
        raise ConfigError(f"no memory bank at {bank}; pass --train-data to train one first")
    adapter = lora_adapter or out / "lora-adapter"
    if "lora" in wanted and not (adapter / "lora_meta.json").exists() and not train_data:
        raise ConfigError(f"no LoRA adapter at {adapter}; pass --train-data to train one first")
    if "kw-router" in wanted and not train_data:
        raise ConfigError("kw-router needs --train-data: its tool router is trained on those traces")
    check_bind(bind)
    from tokmem_agent.config import parse_overrides, parse_threshold

    threshold = parse_threshold(call_threshold, "--call-threshold")
    overrides = parse_overrides(controller)
    if data.startswith("sgd:") and "today" not in overrides:
        from .datasets import SGD_TODAY

        overrides["today"] = SGD_TODAY  # the day SGD's dialogues take place
    if router_text not in ROUTER_TEXTS:
        raise ConfigError(f"--router-text must be one of {', '.join(ROUTER_TEXTS)}, got {router_text!r}")

    traces = load_dataset(data)
    all_traces = traces  # the tool inventory comes from the whole dataset, whatever --limit keeps
    bank_cfg: dict[str, Any] | None = None
    if bank_exists and needs_bank:
        from tokmem_agent.serialization import read_config

        bank_cfg = read_config(bank)
    from .datasets import filter_by_tools

    if only_trained:
        if bank_cfg is None:
            raise ConfigError("--only-trained-tools needs an existing --bank")
        traces = filter_by_tools(traces, [t["name"] for t in bank_cfg["tools"]])
    if only_tools:
        traces = filter_by_tools(traces, _tool_names(only_tools))
    traces = _sample(traces, limit, sample, seed)
    if not traces:
        raise ConfigError(f"no examples to evaluate in {data}")
    typer.echo(f"{len(traces)} examples from {data}; methods: {', '.join(wanted)}")

    from tokmem_agent.model.loader import load_base_model

    model_id = model or (bank_cfg["base_model"] if bank_cfg else None)
    from tokmem_agent.config import ModelConfig

    spec = ModelConfig(name_or_path=model_id, device=device)
    loaded = load_base_model(spec)
    train_traces = None
    if train_data and ((needs_bank and not bank_exists) or "kw-router" in wanted
                       or ("lora" in wanted and not (adapter / "lora_meta.json").exists())):
        train_traces = load_dataset(train_data, limit=train_limit)

    built: list[Any] = []
    tm = None
    if needs_bank:
        from tokmem_agent.tokmem import TokMem

        if not bank_exists:
            tm = _train_bank(loaded, train_traces, bank, epochs=epochs, max_length=max_length, seed=seed)
        else:
            tm = TokMem.load(bank, loaded)
        from .methods import TokMemMethod

        for m in wanted:
            if m in ("tokmem", "tokmem-free"):
                built.append(TokMemMethod(tm, constrained=m == "tokmem", max_new_tokens=max_new_tokens,
                                          bank_path=str(bank), bind=bind, call_threshold=threshold,
                                          ground=ground,
                                          controller=overrides))
        missing = built[0].missing_tools(traces) if built else []
        if missing:
            n_ex = sum(any(c.name in set(missing) for c in t.calls) for t in traces)
            typer.secho(f"{len(missing)} gold tools have no memory token in {bank} ({n_ex} of {len(traces)} "
                        f"examples): {', '.join(missing[:20])}{' …' if len(missing) > 20 else ''}",
                        fg=typer.colors.YELLOW)
    baseline_model = loaded
    baselines = ("icl", "rag", "rag-emb", "lora", "kw-router")
    if tm is not None and tm.lora is not None and any(m in wanted for m in baselines):
        baseline_model = load_base_model(spec)  # the bank injected LoRA into `loaded`: baselines need a clean copy
    from .methods import (
        ICLMethod,
        KeywordRouter,
        KeywordRouterMethod,
        LoRAMethod,
        LoRATrainConfig,
        RAGMethod,
        schemas_fit,
        tool_inventory,
    )

    extra_tools = [tm.tools.get(n).to_dict() for n in tm.tool_names] if tm is not None else []
    inventory = tool_inventory(all_traces, extra_tools)
    pool = icl_tools
    if "icl" in wanted and pool == "auto":
        pool = "all" if schemas_fit(baseline_model, inventory, reserve=1024 + max_new_tokens) else "record"
        typer.echo(f"in-context prompt: {'all ' + str(len(inventory)) + ' tool schemas' if pool == 'all' else 'each record’s candidate tools'} "
                   f"(--icl-tools auto)")
    for m in wanted:
        if m == "icl":
            built.append(ICLMethod(baseline_model, inventory, pool=pool, max_new_tokens=max_new_tokens))
        elif m in ("rag", "rag-emb"):
            built.append(RAGMethod(baseline_model, inventory, k=k, retriever="bm25" if m == "rag" else "embedding",
                                   max_new_tokens=max_new_tokens))
        elif m == "lora":
            if not (adapter / "lora_meta.json").exists():
                from tokmem_agent.config import LoraSettings

                cfg = LoRATrainConfig(lora=LoraSettings(r=lora_r, alpha=2 * lora_r, target_modules=["q_proj", "v_proj"]),
                                      epochs=epochs, lr=lora_lr, max_length=max_length, seed=seed, progress=progress)
                typer.echo(f"training the LoRA baseline on {len(train_traces)} traces → {adapter}")
                built.append(LoRAMethod.train(baseline_model, train_traces, adapter, cfg, data_source=train_data,
                                              max_new_tokens=max_new_tokens))
            else:
                built.append(LoRAMethod(baseline_model, adapter, max_new_tokens=max_new_tokens))
        elif m == "kw-router":
            router = KeywordRouter(text=router_text, seed=seed).fit(train_traces)
            typer.echo(f"keyword router: {len(router.classes)} classes from {len(train_traces)} traces, "
                       f"training accuracy {100 * router.train_accuracy:.1f} %")
            built.append(KeywordRouterMethod(baseline_model, tool_inventory(train_traces, inventory), router,
                                             max_new_tokens=max_new_tokens, data_source=train_data, bind=bind))
    order = {m: i for i, m in enumerate(wanted)}
    built.sort(key=lambda m: order[m.name])

    from .report import run_eval

    settings = {"data": data, "max_new_tokens": max_new_tokens, "base_model": loaded.model_id,
                "bank": str(bank) if bank else None, "train_data": train_data, "limit": limit}
    metrics = run_eval(built, traces, out, dataset=data, progress=progress, fresh=fresh, settings=settings,
                       batch_size=batch_size)
    typer.echo(f"{'method':<12}{'tool F1':>9}{'arg F1':>9}{'exact':>9}{'JSON ok':>9}{'schema ok':>11}")
    for name, m in metrics.items():
        o = m["overall"]
        typer.echo(f"{name:<12}" + "".join(f"{_fmt(o.get(key)):>{w}}" for key, w in
                                            (("tool_f1", 9), ("arg_f1", 9), ("exact_match", 9), ("json_valid", 9),
                                             ("schema_valid", 11))))
    typer.echo(f"report: {out / 'report.md'}; metrics: {out / 'metrics.json'}")


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _train_bank(loaded: Any, traces: list[Any] | None, bank: Path, *, epochs: int, max_length: int, seed: int) -> Any:
    from tokmem_agent.config import TrainConfig
    from tokmem_agent.tokmem import TokMem
    from tokmem_agent.traces import tools_in

    assert traces is not None
    defs = tools_in(traces)
    called = sorted({c.name for t in traces for c in t.calls})
    tm = TokMem.create([defs[n] for n in called], loaded, seed=seed)
    typer.echo(f"training memory tokens for {len(called)} tools on {len(traces)} traces → {bank}")
    # memory rows only at the paper's uniform loss (decision weight 1), as the reported evals were trained
    tm.train(traces, TrainConfig(epochs=epochs, max_length=max_length, seed=seed, decision_weight=1.0), out_dir=bank)
    return tm


def main(argv: list[str] | None = None) -> None:
    """``python -m evals``: the eval command on its own."""
    app = typer.Typer(add_completion=False)
    app.command()(eval_command)
    app(args=argv if argv is not None else sys.argv[1:], prog_name="python -m evals")


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
