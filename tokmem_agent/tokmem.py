"""The user-facing object: a base model + a memory bank + the tools it knows.

>>> tm = TokMem.create(tools=[add, convert_currency])          # default model, one token per tool
>>> tm.train(load_traces("traces.jsonl"), TrainConfig(epochs=2))
>>> tm.save("banks/my-tools")
>>> tm = TokMem.load("banks/my-tools")
>>> tm.predict("What is 2 + 3?").calls
[RawCall(name='add', arguments='{"a":2,"b":3}')]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import torch

from .chat import ChatFormat
from .config import (
    CALIBRATION_KEYS,
    DEFAULT_SYSTEM_PROMPT,
    LoraSettings,
    MemoryConfig,
    ModelConfig,
    RegisterConfig,
    TrainConfig,
)
from .errors import ModelMismatchError, ToolNotFoundError
from .model.loader import LoadedModel, load_base_model, same_weights, weight_sample
from .model.memory import MemoryBank, init_rows
from .model.wrapped import TokMemModel
from .registry import Tool, ToolRegistry
from .serialization import (
    atomic_dir,
    peft_adapter_files,
    read_adapter,
    read_anchors,
    read_config,
    read_tensors,
    write_bank,
)
from .traces import Message, Trace
from .training.anchors import Anchors, collect_anchors
from .training.dataset import encode_traces

if TYPE_CHECKING:
    from .continual import RegisterResult

log = logging.getLogger("tokmem_agent")
ModelLike = LoadedModel | ModelConfig | str | None


@dataclass
class RawCall:
    """A call as generated: the tool chosen by a memory token and the argument text that followed it."""

    name: str
    arguments: str

    def parsed(self) -> Any:
        """The arguments as JSON (raises ``json.JSONDecodeError`` when they are not valid JSON)."""
        return json.loads(self.arguments)


@dataclass
class Prediction:
    """Result of :meth:`TokMem.predict`."""

    calls: list[RawCall]
    text: str  # text generated before the first memory token (usually empty)
    ids: list[int] = field(repr=False)
    prompt_tokens: int = 0
    stopped: bool = True
    timings: dict[str, float] = field(default_factory=dict)


#: the keys of ``TokMem.meta`` that tokmem_agent.decoding.calibrate writes


class TokMem:
    """A frozen base model with one trainable memory token per tool."""

    def __init__(self, loaded: LoadedModel, bank: MemoryBank, tools: ToolRegistry, *,
                 system_prompt: str | None = DEFAULT_SYSTEM_PROMPT, memory: MemoryConfig | None = None,
                 meta: dict[str, Any] | None = None):
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.tools = tools
        self.memory_config = memory or MemoryConfig(mode=bank.mode)
        self.system_prompt = system_prompt
        self.model = TokMemModel(loaded.model, bank)
        self.chat = ChatFormat(loaded.tokenizer, self.model.memory_id, system_prompt)
        self.lora: LoraSettings | None = None
        self.meta: dict[str, Any] = dict(meta or {})
        self._weights: list[float] | None = None  # weight_sample of the base model, computed on first save
        self.anchors: Anchors | None = None  # hidden states where the bank's tools were called (registration)

    # ----- construction -------------------------------------------------------------------------------
    @classmethod
    def create(cls, tools: Iterable[Any], model: ModelLike = None, *, memory: MemoryConfig | None = None,
               system_prompt: str | None = DEFAULT_SYSTEM_PROMPT, seed: int = 0) -> TokMem:
        """A new bank with one freshly initialised token per tool (functions, pydantic models, dicts, Tools)."""
        memory = memory or MemoryConfig()
        loaded = _load(model)
        emb = loaded.model.get_input_embeddings()
        bank = MemoryBank(emb.embedding_dim, memory.mode, device=emb.weight.device)
        tm = cls(loaded, bank, ToolRegistry(), system_prompt=system_prompt, memory=memory)
        tm.add_tools(tools, seed=seed)
        return tm

    @property
    def bank(self) -> MemoryBank:
        return self.model.bank

    @property
    def tool_names(self) -> list[str]:
        return list(self.bank.names)

    def add_tools(self, tools: Iterable[Any], *, init: str | None = None, seed: int = 0) -> list[str]:
        """Give each new tool a memory row (initialised per ``MemoryConfig.init``); returns the new names."""
        new: list[Tool] = []
        for t in tools:
            tool = Tool.coerce(t)
            if tool.name in self.bank.names:
                self.tools.register(tool)  # same schema: just attaches the callable; else SchemaError
                continue
            new.append(self.tools.register(tool))
        if not new:
            return []
        self.bank.add([t.name for t in new], self.initial_rows(new, init=init, seed=seed))
        return [t.name for t in new]

    @torch.no_grad()
    def initial_rows(self, tools: Sequence[Tool], *, init: str | None = None, seed: int = 0) -> torch.Tensor:
        """Fresh memory rows [n, d] for ``tools``, per ``init`` (default ``MemoryConfig.init``), from the
        embeddings of ``"<name with spaces>: <description>"``."""
        emb = self.model.base.get_input_embeddings().weight  # [V, d]
        toks = [self.chat.text_ids(f"{t.name.replace('_', ' ')}: {t.description}") for t in tools]
        gen = torch.Generator().manual_seed(seed)
        return init_rows(emb, toks, init or self.memory_config.init, generator=gen)  # [n, d]

    def require_tools(self, tools: Iterable[Any]) -> list[Tool]:
        """Check that every tool has a token here with the same schema; attach callables. Returns Tools."""
        out = []
        for t in tools:
            tool = Tool.coerce(t)
            if tool.name not in self.bank.names:
                raise ToolNotFoundError(
                    f"tool '{tool.name}' has no memory token in this bank (it knows: {', '.join(self.tool_names)}). "
                    f"Train one with `tokmem train` / TokMem.add_tools + train.")
            known = self.tools.get(tool.name)
            if not known.same_schema(tool):
                raise ModelMismatchError(
                    f"tool '{tool.name}': its schema changed since the bank was trained (bank {known.hash}, "
                    f"given {tool.hash}); retrain its token")
            if tool.fn is not None:
                known.fn = tool.fn
            out.append(known)
        return out

    # ----- LoRA adaptation round ----------------------------------------------------------------
    def enable_lora(self, settings: LoraSettings) -> None:
        """Inject LoRA adapters (peft) into the backbone's attention projections (trainable)."""
        from peft import LoraConfig, inject_adapter_in_model

        if self.lora is not None:
            return
        if any("lora_A" in n for n, _ in self.model.base.named_modules()):
            # Another TokMem on the same LoadedModel injected adapters already: reuse those modules (a
            # second injection would stack adapters). Loading a bank then overwrites their weights.
            log.warning("the base model already carries LoRA adapters (another bank on this LoadedModel); "
                        "they are shared: this bank's adapter weights replace the previous ones")
            self.lora = settings
            return
        cfg = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                         target_modules=list(settings.target_modules), bias="none")
        with torch.device(self.model.device):  # the adapter weights next to the layers they adapt
            inject_adapter_in_model(cfg, self.model.base)
        self.lora = settings

    def lora_parameters(self) -> list[torch.nn.Parameter]:
        return [p for n, p in self.model.base.named_parameters() if "lora_" in n]

    def _lora_state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.model.base)

    # ----- persistence ----------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        base_cfg = self.model.base.config
        return {
            "tools": [{**t.to_dict(), "hash": t.hash} for t in (self.tools.get(n) for n in self.bank.names)],
            "mode": self.bank.mode,
            "init": self.memory_config.init,
            "base_model": self.loaded.model_id,
            "model_type": getattr(base_cfg, "model_type", None),
            "hidden_size": self.bank.hidden_size,
            "vocab_size": self.model.vocab_size,
            "tokenizer_fingerprint": self.loaded.fingerprint,
            "weight_sample": self._weight_sample(),
            "system_prompt": self.system_prompt,
            "lora": asdict(self.lora) if self.lora else None,
            "anchors": self.anchors.tools if self.anchors is not None and len(self.anchors) else None,
            "meta": self.meta,
        }

    def drop_calibration(self) -> None:
        """Forget stored call thresholds (``tokmem calibrate``): they no longer fit rows that changed."""
        for key in CALIBRATION_KEYS:
            self.meta.pop(key, None)

    def _weight_sample(self) -> list[float]:
        if self._weights is None:
            self._weights = weight_sample(self.loaded.model)
        return self._weights

    def state_tensors(self) -> dict[str, torch.Tensor]:
        t = {"steer": self.bank.steer.detach()}
        if self.bank.address_ is not None:
            t["address"] = self.bank.address_.detach()
        return t

    def write_to(self, dirpath: Path) -> None:
        """Write the bank files into an existing directory (used for atomic saves and checkpoints)."""
        adapter = None
        if self.lora is not None:
            adapter = peft_adapter_files(self._lora_state(), asdict(self.lora), self.loaded.model_id)
        anchors = self.anchors.h if self.anchors is not None and len(self.anchors) else None
        write_bank(dirpath, tensors=self.state_tensors(), config=self.config_dict(), adapter=adapter,
                   anchors=anchors)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the bank (atomically: an existing bank at ``path`` is replaced only once this one is whole)."""
        return atomic_dir(path, self.write_to)

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: ModelLike = None) -> TokMem:
        """Load a bank onto its base model (or onto ``model``, which must match it)."""
        cfg = read_config(path)
        tensors = read_tensors(path, cfg)
        if model is None:
            model = cfg["base_model"]
        elif isinstance(model, ModelConfig) and model.name_or_path is None:  # device/dtype only: its base model
            model = dataclasses.replace(model, name_or_path=cfg["base_model"])
        loaded = _load(model)
        check_compatible(cfg, loaded, where=str(path))
        tools = ToolRegistry()
        for d in cfg["tools"]:
            tool = tools.register(Tool.from_dict(d))
            if d.get("hash") and d["hash"] != tool.hash:
                raise ModelMismatchError(f"{path}: stored hash of tool '{tool.name}' does not match its schema "
                                         "(config edited or corrupt)")
        bank = MemoryBank(cfg["hidden_size"], cfg["mode"], device=loaded.model.get_input_embeddings().weight.device)
        names = [d["name"] for d in cfg["tools"]]
        if names:
            bank.add(names, tensors["steer"], tensors.get("address"))
        tm = cls(loaded, bank, tools, system_prompt=cfg.get("system_prompt"),
                 memory=MemoryConfig(mode=cfg["mode"], init=cfg.get("init", "mean")), meta=cfg.get("meta"))
        h = read_anchors(path, cfg)
        if h is not None:
            tm.anchors = Anchors(h, list(cfg["anchors"])).only(set(names))
        adapter = read_adapter(path)
        if adapter is not None:
            from peft import set_peft_model_state_dict

            tm.enable_lora(LoraSettings(**adapter[1]))
            set_peft_model_state_dict(tm.model.base, adapter[0])
            for p in tm.lora_parameters():
                p.requires_grad_(False)
        return tm

    # ----- training ----------------------------------------------------------------------------------
    def train(self, traces: Sequence[Trace], config: TrainConfig | None = None, **kwargs: Any) -> Any:
        """Train the memory rows (see :func:`tokmem_agent.training.trainer.train`)."""
        from .training.trainer import train

        return train(self, traces, config or TrainConfig(), **kwargs)

    def anchors_from(self, traces: Sequence[Trace], *, per_tool: int = 16, tools: set[str] | None = None,
                     max_length: int = 1024, batch_size: int = 4) -> Anchors:
        """Anchors (see :mod:`tokmem_agent.training.anchors`) taken from ``traces``: hidden states where they
        call the bank's tools (only ``tools``, if given), at most ``per_tool`` per tool; one no-grad pass."""
        examples, _ = encode_traces(self.chat, traces, max_length=max_length)
        return collect_anchors(self.model, examples, self.pad_id, tools=tools, per_tool=per_tool,
                               batch_size=batch_size)

    @property
    def pad_id(self) -> int:
        """Padding id for batches (the tokenizer's, else 0: padded positions are masked anyway)."""
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    # ----- continual memory ----------------------------------------------------------------------------
    def register(self, tools: Iterable[Any], traces: Sequence[Trace] | None = None, *,
                 replay: Sequence[Trace] = (), config: RegisterConfig | None = None, retrain: bool = False,
                 out_dir: str | os.PathLike[str] | None = None) -> RegisterResult:
        """Add memory tokens for new tools (or retrain changed ones) without touching the others.

        tools: functions, pydantic models, dicts or Tools. A known tool whose schema changed is replaced
            (its row re-initialised and retrained); a known, unchanged one is skipped unless ``retrain``.
        traces: training traces for them; tools without any get ``config.synth_per_tool`` synthetic ones.
        replay: traces of already-known tools, a few per tool mixed in (their rows stay frozen).
        out_dir: save the new version of the bank there (atomically; the old one stays until it is whole).
        """
        from .continual import register

        return register(self, tools, traces, replay=replay, config=config, retrain=retrain, out_dir=out_dir)

    def forget(self, *names: str) -> list[str]:
        """Remove tools' memory tokens (other rows unchanged)."""
        from .continual import forget

        return forget(self, names)

    def paraphraser(self, max_new_tokens: int = 60) -> Callable[[str], str]:
        """``query -> paraphrase`` with the base model (memory tokens masked), for synthetic traces."""
        from .decoding.generate import greedy_generate, mask_memory_tokens

        def paraphrase(query: str) -> str:
            msgs = [{"role": "user", "content": "Rewrite this request in other words. Keep every name, number "
                                                f"and date exactly as written.\nRequest: {query}"}]
            gen = greedy_generate(self.model, self.chat.prompt_ids(msgs), max_new_tokens=max_new_tokens,
                                  stop_ids=self.chat.stop_ids, processors=[mask_memory_tokens(self.model, [])])
            return self.tokenizer.decode([i for i in gen.ids if i not in self.chat.stop_ids]).strip()

        return paraphrase

    # ----- inference -----------------------------------------------------------------------------------
    def messages_for(self, query: str | Sequence[Message]) -> list[Message]:
        return [{"role": "user", "content": query}] if isinstance(query, str) else list(query)

    @overload
    def predict(self, query: str | Sequence[Message], *, max_new_tokens: int = ...,
                allowed_tools: Iterable[str] | None = ..., batch_size: int = ...) -> Prediction: ...

    @overload
    def predict(self, query: list[str] | list[Sequence[Message]], *, max_new_tokens: int = ...,
                allowed_tools: Iterable[str] | None = ..., batch_size: int = ...) -> list[Prediction]: ...

    def predict(self, query: Any, *, max_new_tokens: int = 256, allowed_tools: Iterable[str] | None = None,
                batch_size: int = 8) -> Prediction | list[Prediction]:
        """Greedy full-vocabulary decoding (paper protocol) → calls split at memory tokens.

        ``query``: a request or a conversation (a list of messages) → one :class:`Prediction`; a list of
        requests or of conversations → a list, decoded ``batch_size`` at a time with continuous batching
        (the same ids as one by one, to float tolerance)."""
        from .decoding.generate import greedy_generate, greedy_generate_many, mask_memory_tokens

        procs = [mask_memory_tokens(self.model, allowed_tools)] if allowed_tools is not None else []
        many = isinstance(query, (list, tuple)) and all(not isinstance(q, dict) for q in query)
        queries = list(query) if many else [query]
        if many and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        prompts = [self.chat.prompt_ids(self.messages_for(q)) for q in queries]
        if many:
            gens = greedy_generate_many(self.model, prompts, max_new_tokens=max_new_tokens,
                                        stop_ids=self.chat.stop_ids, processors=procs, batch_size=batch_size)
        else:
            gens = [greedy_generate(self.model, prompts[0], max_new_tokens=max_new_tokens,
                                    stop_ids=self.chat.stop_ids, processors=procs)]
        out = []
        for gen, prompt in zip(gens, prompts):
            text, calls = self.split_calls(gen.ids)
            out.append(Prediction(calls, text, gen.ids, len(prompt), gen.stopped, gen.timings))
        return out if many else out[0]

    def split_calls(self, ids: Sequence[int]) -> tuple[str, list[RawCall]]:
        """Split generated ids at memory tokens: (leading text, [RawCall(tool, argument text)])."""
        stop = self.chat.stop_ids
        ids = [i for i in ids if i not in stop]
        lead: list[int] = []
        calls: list[tuple[str, list[int]]] = []
        for i in ids:
            if self.model.is_memory(i):
                calls.append((self.model.tool_of(i), []))
            elif calls:
                calls[-1][1].append(i)
            else:
                lead.append(i)
        dec = self.tokenizer.decode
        return dec(lead), [RawCall(n, dec(a).strip()) for n, a in calls]


def _load(model: ModelLike) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_base_model(model)


def check_compatible(cfg: dict[str, Any], loaded: LoadedModel, *, where: str) -> None:
    """Refuse a base model that does not match the one a bank was trained on."""
    hidden = loaded.model.get_input_embeddings().embedding_dim
    vocab = loaded.model.get_input_embeddings().num_embeddings
    problems = []
    if hidden != cfg["hidden_size"]:
        problems.append(f"hidden size {cfg['hidden_size']} vs {hidden}")
    if vocab != cfg["vocab_size"]:
        problems.append(f"vocabulary size {cfg['vocab_size']} vs {vocab}")
    if loaded.fingerprint != cfg["tokenizer_fingerprint"]:
        problems.append(f"tokenizer fingerprint {cfg['tokenizer_fingerprint']} vs {loaded.fingerprint}")
    stored = cfg.get("weight_sample")  # absent in banks saved before it existed: not checked
    if not problems and stored and not same_weights(weight_sample(loaded.model), stored):
        problems.append("same shapes and tokenizer, but other weights (a fine-tune or another checkpoint)")
    if problems:
        raise ModelMismatchError(
            f"memory bank {where} was trained on base model '{cfg['base_model']}' but is being attached to "
            f"'{loaded.model_id}': " + "; ".join(problems))
