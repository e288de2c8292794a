"""Training memory tokens: frozen backbone, loss on assistant targets only, only active rows move.

Runs unchanged under ``accelerate launch`` / ``torchrun`` (batches sharded by process with equal step counts, see
:func:`shard`; gradients all-reduced by the prepared model); on one process Accelerate is a thin no-op.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..config import BIAS_KEYS, TrainConfig, resolve_autocast
from ..errors import BankFormatError, ConfigError
from ..model.wrapped import FrozenPrefix
from ..serialization import atomic_dir, read_adapter, read_config, read_tensors
from ..traces import Trace, tools_in
from .anchors import AnchorLoss, Anchors, collect_anchors
from .dataset import Example, collate, encode_traces, make_batches, split_heldout
from .replies import fill_replies, generic_negatives

if TYPE_CHECKING:
    from .protocol import MemoryModel

log = logging.getLogger("tokmem_agent")
CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "trainer_state.pt"


@dataclass
class TrainResult:
    """What a training run did."""

    steps: int
    epochs: int
    seconds: float
    tokens: int
    n_train: int
    n_eval: int
    skipped: int
    trained_tools: list[str]
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class _LossModule(nn.Module):
    """What Accelerate prepares (and DDP wraps): forward = target loss of a TokMemModel."""

    def __init__(self, model: nn.Module, frozen_prefix: bool):
        super().__init__()
        self.model = model
        self.frozen_prefix = frozen_prefix

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor | None = None, prefix: FrozenPrefix | None = None) -> dict[str, Any]:
        frozen = prefix if prefix is not None and self.frozen_prefix else self.frozen_prefix
        return self.model.target_loss(input_ids, attention_mask, labels, weights, frozen_prefix=frozen)


def with_no_call_traces(tm: MemoryModel, traces: Sequence[Trace], cfg: TrainConfig) -> list[Trace]:
    """``traces`` plus ``cfg.no_call_share`` × their number of generic no-call messages, every no-call trace
    without a response given the frozen backbone's own reply (see :mod:`tokmem_agent.training.replies`)."""
    traces = list(traces)
    n_extra = round(cfg.no_call_share * sum(bool(t.calls) for t in traces))
    if n_extra:
        seen = {m.get("content") for t in traces for m in t.messages if m.get("role") == "user"}
        extra = generic_negatives(n_extra, seed=cfg.seed, exclude=seen)
        traces += extra
        log.info("added %d generic no-call traces (no_call_share=%g)", len(extra), cfg.no_call_share)
    return fill_replies(tm, traces, progress=cfg.progress)


def train(tm: MemoryModel, traces: Sequence[Trace], cfg: TrainConfig, *, out_dir: str | os.PathLike[str] | None = None,
          resume: bool = False, active_tools: Sequence[str] | None = None, reading: str = "compositional",
          anchors: Anchors | None = None,
          callbacks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> TrainResult:
    """Train the rows of the tools called in ``traces`` (or ``active_tools``); all other rows stay bit-identical.

    Tools called in the traces that have no token yet get one (from the records' tool definitions).
    With ``out_dir``, checkpoints go to ``out_dir/checkpoint`` (atomic) and the final bank to ``out_dir``;
    ``resume=True`` continues from that checkpoint. ``anchors`` (hidden states where frozen tools were
    called) add ``cfg.anchor_weight`` × the anchor loss; afterwards ``cfg.anchors_per_tool`` anchors per
    trained tool are collected into ``tm.anchors``.
    """
    from accelerate import Accelerator

    if not traces:
        raise ConfigError("no training traces")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ConfigError(f"{out_dir} is a file; the bank and its checkpoints need a directory there")
    if reading not in ("compositional", "chain"):
        raise ConfigError(f"unknown reading {reading!r} (compositional, chain)")
    device = tm.model.device  # the backbone's: rows, masks and batches all live there
    accelerator = Accelerator(cpu=device.type == "cpu")
    torch.manual_seed(cfg.seed)
    called = sorted({c.name for t in traces for c in t.calls})
    defs = tools_in(traces)
    tm.add_tools([defs[n] for n in called if n not in tm.bank.names], seed=cfg.seed)
    active_names = list(active_tools) if active_tools is not None else called
    bank = tm.bank
    active = torch.tensor([n in set(active_names) for n in bank.names], device=device)  # [N] bool
    traces = with_no_call_traces(tm, traces, cfg)  # before any LoRA round: replies of the frozen backbone
    if cfg.lora is not None:
        tm.enable_lora(cfg.lora)

    # ----- data -------------------------------------------------------------------------------------
    examples, skipped = encode_traces(tm.chat, traces, max_length=cfg.max_length, reading=reading,
                                      with_choices=cfg.choice_weight != 1.0)
    if not examples:
        raise ConfigError(f"every trace exceeds max_length={cfg.max_length}; raise it")
    train_ex, eval_ex = split_heldout(examples, cfg.eval_fraction, cfg.max_eval, cfg.seed)
    pad_id = tm.pad_id

    # ----- parameters: only memory rows (and LoRA, if enabled) are trainable ----------------------
    for p in tm.model.base.parameters():
        p.requires_grad_(False)
    lora_params = tm.lora_parameters() if cfg.lora is not None else []
    for p in lora_params:
        p.requires_grad_(True)
    mats = bank.matrices()
    for m in mats:
        m.requires_grad_(True)
    allowed = {id(p) for p in [*mats, *lora_params]}
    stray = [n for n, p in tm.model.named_parameters() if p.requires_grad and id(p) not in allowed]
    assert not stray, f"backbone parameters would be trained: {stray[:5]}"
    row_mask = active.float().unsqueeze(-1)  # [N, 1]
    hooks = [m.register_hook(lambda g: g * row_mask.to(g.dtype)) for m in mats]
    frozen = [m.detach()[~active].clone() for m in mats]  # inactive rows, restored after every step

    groups: list[dict[str, Any]] = [{"params": mats, "lr": cfg.lr}]
    if lora_params:
        groups.append({"params": lora_params, "lr": cfg.lora_lr})
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    # with only memory rows training, the prompt before the first memory token needs no backward pass
    loss_module, optimizer = accelerator.prepare(_LossModule(tm.model, frozen_prefix=not lora_params), optimizer)
    anchor_loss = None
    if anchors is not None and len(anchors) and cfg.anchor_weight > 0:
        if lora_params:
            raise ConfigError("anchors hold hidden states of a frozen backbone; they cannot be used while LoRA trains")
        anchor_loss = AnchorLoss(tm.model, anchors, active)
        log.info("anchor loss on %d anchors of %d frozen tools (weight %g)", len(anchor_loss),
                 len(set(anchors.tools) - set(active_names)), cfg.anchor_weight)

    base_lrs = [g["lr"] for g in optimizer.param_groups]
    steps_per_epoch = math.ceil(math.ceil(len(train_ex) / cfg.batch_size) / accelerator.num_processes / cfg.grad_accum)
    if accelerator.num_processes > 1:
        log.info("process %d of %d: %d steps per epoch", accelerator.process_index, accelerator.num_processes,
                 steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    state = {"epoch": 0, "batch": 0, "step": 0, "history": [], "tokens": 0, "seconds": 0.0}
    ckpt = Path(out_dir) / CHECKPOINT_DIR if out_dir is not None else None
    if resume:
        if ckpt is None or not (ckpt / STATE_NAME).exists():
            raise BankFormatError(f"nothing to resume: no checkpoint at {ckpt}")
        state = _load_checkpoint(tm, ckpt, optimizer, lora=bool(lora_params))
        log.info("resuming at epoch %d, step %d", state["epoch"] + 1, state["step"])

    autocast = resolve_autocast(cfg.autocast, accelerator.device.type)
    progress = _progress(total_steps, initial=state["step"],
                         enabled=cfg.progress and accelerator.is_main_process)
    t_start = time.perf_counter() - state["seconds"]
    model_ref = tm.model
    # later epochs reuse each batch's frozen prefix: fixed batches, order reshuffled per epoch
    prefix_cache = _PrefixCache(cfg.prefix_cache_mb) if not lora_params and cfg.epochs > 1 and cfg.prefix_cache_mb else None
    fixed = make_batches(train_ex, cfg.batch_size, cfg.seed) if prefix_cache is not None else None
    try:
        for epoch in range(state["epoch"], cfg.epochs):
            if fixed is not None:  # epoch 1 is the same as without the cache (a resumed run agrees)
                keys = list(range(len(fixed)))
                if epoch:
                    random.Random(cfg.seed + epoch).shuffle(keys)
                batches = [fixed[i] for i in keys]
            else:
                batches = make_batches(train_ex, cfg.batch_size, cfg.seed + epoch)
                keys = list(range(len(batches)))
            batches, keys = shard(batches, keys, accelerator.process_index, accelerator.num_processes)
            loss_sum, loss_n = 0.0, 0
            micro = 0
            for b in range(state["batch"], len(batches)):
                batch = collate([train_ex[i] for i in batches[b]], pad_id,
                                decision_weight=cfg.decision_weight if cfg.decision_weight != 1.0 else None,
                                choice_weight=cfg.choice_weight if cfg.choice_weight != 1.0 else None)
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                cached = prefix_cache.get(keys[b]) if prefix_cache is not None else None
                with torch.autocast(device_type=accelerator.device.type, dtype=torch.bfloat16, enabled=autocast):
                    out = loss_module(**batch, prefix=cached)
                if prefix_cache is not None and cached is None and epoch + 1 < cfg.epochs:
                    prefix_cache.put(keys[b], out["prefix"])
                loss = out["loss_sum"] / out["n"].clamp_min(1)
                if anchor_loss is not None:  # in total as heavy as the batch's own tool-call targets (× weight)
                    share = out["mem_weight"] / out["n"].clamp_min(1)
                    loss = loss + cfg.anchor_weight * share * anchor_loss()
                accelerator.backward(loss / cfg.grad_accum)
                loss_sum += float(out["loss_sum"].detach())
                loss_n += float(out["n"])
                state["tokens"] += int(batch["attention_mask"].sum())
                micro += 1
                if micro % cfg.grad_accum and b + 1 < len(batches):
                    continue
                if cfg.max_grad_norm:
                    accelerator.clip_grad_norm_([*mats, *lora_params], cfg.max_grad_norm)
                scale = lr_scale(state["step"], total_steps, cfg.warmup, cfg.schedule)
                for g, base_lr in zip(optimizer.param_groups, base_lrs):
                    g["lr"] = base_lr * scale
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                _after_step(bank, active, frozen, renormalize=cfg.renormalize)
                state["step"] += 1
                state["batch"] = b + 1
                progress.update(1)
                progress.set_postfix(loss=f"{loss_sum / max(loss_n, 1):.4f}", epoch=epoch + 1)
                if ckpt is not None and state["step"] % cfg.checkpoint_every == 0:
                    state["seconds"] = time.perf_counter() - t_start
                    _save_checkpoint(tm, ckpt, optimizer, state, cfg, accelerator)
            record = {"epoch": epoch + 1, "train_loss": loss_sum / max(loss_n, 1), "step": state["step"]}
            if eval_ex:
                record.update(evaluate(model_ref, eval_ex, pad_id, cfg.batch_size, autocast))
            state["history"].append(record)
            log.info("epoch %d: %s", epoch + 1, record)
            if accelerator.is_main_process:
                progress.write("epoch {epoch}: train loss {train_loss:.4f}".format(**record) + (
                    "  held-out loss {eval_loss:.4f}  tool selection (teacher-forced) {eval_tool_acc:.3f}".format(**record)
                    if "eval_loss" in record else ""))
            for cb in callbacks:
                cb(record)
            state["epoch"], state["batch"] = epoch + 1, 0
            state["seconds"] = time.perf_counter() - t_start
            if ckpt is not None:
                _save_checkpoint(tm, ckpt, optimizer, state, cfg, accelerator)
    finally:
        progress.close()
        for h in hooks:
            h.remove()
        for m in mats:
            m.requires_grad_(False)
        for p in lora_params:
            p.requires_grad_(False)
    if cfg.anchors_per_tool > 0:
        new = collect_anchors(tm.model, examples, pad_id, tools=set(active_names) & set(bank.names),
                              per_tool=cfg.anchors_per_tool, batch_size=cfg.batch_size, seed=cfg.seed)
        old = tm.anchors if tm.anchors is not None else Anchors.empty(bank.hidden_size)
        stale = len(old.without(new.tools)) if lora_params else 0
        if stale:  # the backbone moved: other tools' states are stale
            log.warning("LoRA trained: dropping %d anchors of tools not in this run's traces", stale)
            old = Anchors.empty(bank.hidden_size)
        tm.anchors = old.merged(new)
    seconds = time.perf_counter() - t_start
    result = TrainResult(steps=state["step"], epochs=cfg.epochs, seconds=seconds, tokens=state["tokens"],
                         n_train=len(train_ex), n_eval=len(eval_ex), skipped=len(skipped),
                         trained_tools=[n for n, a in zip(bank.names, active.tolist()) if a],
                         history=state["history"])
    tm.meta["training"] = {"config": asdict(cfg), "reading": reading, "steps": result.steps,
                           "anchor_loss_terms": len(anchor_loss) if anchor_loss is not None else 0,
                           "prefix_cache": None if prefix_cache is None else {
                               "batches": len(prefix_cache.items), "mb": round(prefix_cache.used / 2**20, 1)},
                           "seconds": round(seconds, 1), "n_train": result.n_train, "history": result.history}
    tm.drop_calibration()  # calibrated on the old rows
    for key in BIAS_KEYS:
        biases = tm.meta.get(key)
        if biases:  # a trained row's bias was calibrated on its old values; a moved backbone stales them all
            kept = {} if cfg.lora is not None else {n: b for n, b in biases.items() if n not in result.trained_tools}
            if kept:
                tm.meta[key] = kept
            else:
                tm.meta.pop(key, None)
    if out_dir is not None and accelerator.is_main_process:
        tm.save(out_dir)
    return result


def shard(batches: list[Any], keys: list[int], rank: int, world: int) -> tuple[list[Any], list[int]]:
    """Rank ``rank``'s share of an epoch's batches: every ``world``-th one, the list first padded by wrapping
    around to a multiple of ``world`` (as torch's DistributedSampler pads), so every rank runs the same
    number of steps (unequal counts hang DDP's gradient all-reduce)."""
    if world > 1 and len(batches) % world:
        extra = world - len(batches) % world
        batches = batches + [batches[i % len(batches)] for i in range(extra)]
        keys = keys + [keys[i % len(keys)] for i in range(extra)]
    return batches[rank::world], keys[rank::world]


def lr_scale(step: int, total: int, warmup: float, schedule: str) -> float:
    """Learning-rate factor for optimizer step ``step`` (0-based) of ``total``: linear warmup over the first
    ``warmup`` share of the steps, then constant or linear decay to 0 (the TokMem reference code's schedule)."""
    n_warm = round(warmup * total)
    if step < n_warm:
        return (step + 1) / (n_warm + 1)
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(total - n_warm, 1))


class _PrefixCache:
    """Frozen prefixes by batch key, up to a byte budget (batches past it recompute theirs)."""

    def __init__(self, budget_mb: int):
        self.budget = budget_mb * 2**20
        self.used = 0
        self.items: dict[int, FrozenPrefix] = {}

    def get(self, key: int) -> FrozenPrefix | None:
        return self.items.get(key)

    def put(self, key: int, prefix: FrozenPrefix | None) -> None:
        if prefix is None or key in self.items or self.used + prefix.nbytes > self.budget:
            return
        self.items[key] = prefix
        self.used += prefix.nbytes


@torch.no_grad()
def _after_step(bank: Any, active: torch.Tensor, frozen: list[torch.Tensor], *,
                renormalize: bool | str) -> None:
    """Put inactive rows back exactly; rescale active rows to the inactive rows' mean norm (``"cap"``: only
    those longer than it)."""
    for m, rows in zip(bank.matrices(), frozen):
        m.data[~active] = rows
    if renormalize:
        bank.renormalize(active, cap=renormalize == "cap")


@torch.no_grad()
def evaluate(model: Any, examples: Sequence[Example], pad_id: int, batch_size: int,
             autocast: bool = False) -> dict[str, float]:
    """Held-out loss and teacher-forced tool selection (argmax over the full vocabulary at tool positions)."""
    was_training = model.training
    model.eval()
    loss, n, correct, mem_n = 0.0, 0, 0, 0
    for s in range(0, len(examples), batch_size):
        batch = collate(examples[s:s + batch_size], pad_id)
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model.target_loss(**batch)
        loss += float(out["loss_sum"])
        n += int(out["n"])
        correct += int(out["mem_correct"])
        mem_n += int(out["mem_n"])
    model.train(was_training)
    return {"eval_loss": loss / max(n, 1), "eval_tool_acc": correct / max(mem_n, 1)}


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="training memory tokens", unit="step",
                dynamic_ncols=True)


def _save_checkpoint(tm: MemoryModel, ckpt: Path, optimizer: Any, state: dict[str, Any], cfg: TrainConfig,
                     accelerator: Any) -> None:
    if not accelerator.is_main_process:
        return

    def write(d: Path) -> None:
        tm.write_to(d)
        torch.save({**state, "optimizer": optimizer.state_dict(), "config": asdict(cfg),
                    "tools": list(tm.bank.names)}, d / STATE_NAME)

    atomic_dir(ckpt, write)


def _load_checkpoint(tm: MemoryModel, ckpt: Path, optimizer: Any, *, lora: bool) -> dict[str, Any]:
    cfg = read_config(ckpt)
    names = [d["name"] for d in cfg["tools"]]
    if names != tm.bank.names:
        raise BankFormatError(f"checkpoint {ckpt} has tools {names[:5]}… but this run has {tm.bank.names[:5]}…; "
                              "resume with the same data and tools")
    tensors = read_tensors(ckpt, cfg)
    with torch.no_grad():
        tm.bank.steer.data.copy_(tensors["steer"])
        if tm.bank.address_ is not None:
            tm.bank.address_.data.copy_(tensors["address"])
    adapter = read_adapter(ckpt)
    if adapter is not None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(tm.model.base, adapter[0])
    try:  # weights_only: tensors and plain containers only, no arbitrary unpickling of what is in --out
        state = torch.load(ckpt / STATE_NAME, weights_only=True)
        saved = state.get("config") if isinstance(state, dict) else None
        if isinstance(saved, dict) and (saved.get("lora") is not None) != lora:
            how = "with" if lora else "without"
            raise ConfigError(f"{ckpt} was trained {'without' if lora else 'with'} a LoRA round and this run is "
                              f"{how} one; resume it as it started ({'--no-lora' if lora else '--lora'}, "
                              f"TrainConfig.lora {'None' if lora else 'set'})")
        optimizer.load_state_dict(state.pop("optimizer"))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable state is one clear error, not a traceback
        raise BankFormatError(f"{ckpt / STATE_NAME}: corrupt or not a trainer state ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); delete {ckpt} to start "
                              "over") from None
    return state
