"""Memory bank directories: ``memory.safetensors`` + ``tokmem_config.json`` (+ ``adapter/`` for LoRA,
+ ``anchors.safetensors``: hidden states where the bank's tools were called, used when registering more).

Writes are atomic: everything goes to a temporary sibling directory which then replaces the target; an
existing bank is kept until the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ALL_PROJECTIONS
from .errors import BankFormatError

FORMAT_VERSION = 1
CONFIG_NAME = "tokmem_config.json"
WEIGHTS_NAME = "memory.safetensors"
ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ANCHORS_NAME = "anchors.safetensors"


KEEP = ("checkpoint",)  # sub-directories carried over when a bank directory is replaced


def atomic_dir(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Run ``write(tmpdir)`` then move ``tmpdir`` to ``path`` (replacing an existing directory).

    Entries of the old directory named in ``KEEP`` (a training checkpoint) move into the new one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            for name in KEEP:
                if (target / name).exists() and not (tmp / name).exists():
                    os.replace(target / name, tmp / name)
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "bank")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_bank(dirpath: Path, *, tensors: dict[str, torch.Tensor], config: dict[str, Any],
               adapter: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None,
               anchors: torch.Tensor | None = None, extra_files: dict[str, bytes] | None = None) -> None:
    """Write bank files into an (already created, usually temporary) directory."""
    save_file({k: v.detach().float().contiguous().cpu() for k, v in tensors.items()}, str(dirpath / WEIGHTS_NAME),
              metadata={"format": "pt", "tokmem_format_version": str(FORMAT_VERSION)})
    cfg = {"format_version": FORMAT_VERSION, **config}
    (dirpath / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if adapter is not None:
        write_adapter(dirpath / ADAPTER_DIR, adapter)
    if anchors is not None:
        save_file({"h": anchors.detach().to(torch.float16).contiguous().cpu()}, str(dirpath / ANCHORS_NAME))
    for name, data in (extra_files or {}).items():
        (dirpath / name).write_bytes(data)


def write_adapter(adir: Path, adapter: tuple[dict[str, torch.Tensor], dict[str, Any]]) -> None:
    """A peft adapter (:func:`peft_adapter_files`' weights and config) into the new directory ``adir``."""
    state, acfg = adapter
    adir.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(adir / ADAPTER_WEIGHTS))
    (adir / "adapter_config.json").write_text(json.dumps(acfg, indent=2) + "\n")


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a bank's JSON config."""
    p = Path(path)
    if not p.is_dir():
        raise BankFormatError(f"no memory bank at {p} (expected a directory with {CONFIG_NAME})")
    cfg_path = p / CONFIG_NAME
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BankFormatError(f"{cfg_path}: missing; {p} is not a memory bank directory") from None
    except json.JSONDecodeError as exc:
        raise BankFormatError(f"{cfg_path}: corrupt JSON at line {exc.lineno}: {exc.msg}") from None
    version = cfg.get("format_version")
    if version != FORMAT_VERSION:
        raise BankFormatError(f"{cfg_path}: format_version {version!r} is not supported (this library reads "
                              f"{FORMAT_VERSION})")
    for key in ("tools", "mode", "hidden_size", "vocab_size", "base_model", "tokenizer_fingerprint"):
        if key not in cfg:
            raise BankFormatError(f"{cfg_path}: missing field '{key}'")
    return cfg


def read_tensors(path: str | os.PathLike[str], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Read and shape-check a bank's tensors against its config."""
    wpath = Path(path) / WEIGHTS_NAME
    try:
        tensors = load_file(str(wpath))
    except FileNotFoundError:
        raise BankFormatError(f"{wpath}: missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise BankFormatError(f"{wpath}: corrupt or unreadable safetensors file ({exc})") from None
    n, d = len(config["tools"]), config["hidden_size"]
    needed = ["steer"] + (["address"] if config["mode"] == "decoupled" else [])
    for key in needed:
        t = tensors.get(key)
        if t is None:
            raise BankFormatError(f"{wpath}: tensor '{key}' missing")
        if tuple(t.shape) != (n, d):
            raise BankFormatError(f"{wpath}: tensor '{key}' has shape {list(t.shape)}, config says [{n}, {d}]")
        if not torch.isfinite(t).all():
            raise BankFormatError(f"{wpath}: tensor '{key}' holds NaN/inf values")
    return tensors


def read_anchors(path: str | os.PathLike[str], config: dict[str, Any]) -> torch.Tensor | None:
    """The anchors' hidden states [K, d] (float16), or None for a bank without anchors."""
    names = config.get("anchors")
    if not names:
        return None
    apath = Path(path) / ANCHORS_NAME
    try:
        h = load_file(str(apath))["h"]
    except FileNotFoundError:
        raise BankFormatError(f"{apath}: missing, but {CONFIG_NAME} lists {len(names)} anchors") from None
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise BankFormatError(f"{apath}: corrupt or unreadable anchors ({exc})") from None
    if tuple(h.shape) != (len(names), config["hidden_size"]):
        raise BankFormatError(f"{apath}: anchors have shape {list(h.shape)}, config says "
                              f"[{len(names)}, {config['hidden_size']}]")
    return h


#: Key prefix of a PeftModel's adapter state (what ``PeftModel.save_pretrained`` writes and ``from_pretrained``
#: reads); the bank's own LoRA lives in the bare backbone, whose keys lack it.
PEFT_PREFIX = "base_model.model."


def peft_adapter_files(state: dict[str, torch.Tensor], settings: dict[str, Any],
                       base_model: str | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The adapter as peft's own ``save_pretrained`` lays it out: keys under :data:`PEFT_PREFIX` and a
    ``LoraConfig`` as ``adapter_config.json``, so ``PeftModel.from_pretrained(base, BANK/adapter)`` reads it."""
    from peft import LoraConfig

    cfg = LoraConfig(r=settings["r"], lora_alpha=settings["alpha"], lora_dropout=settings["dropout"],
                     target_modules=list(settings["target_modules"]), bias="none", task_type="CAUSAL_LM",
                     base_model_name_or_path=base_model, inference_mode=True).to_dict()
    cfg = {k: sorted(v) if isinstance(v, set) else v for k, v in cfg.items()}
    return {PEFT_PREFIX + k: v for k, v in state.items()}, cfg


def _projection_order(name: str) -> tuple[int, str]:
    """Llama block order (:data:`~tokmem_agent.config.ALL_PROJECTIONS`), then any other module by name."""
    order = ALL_PROJECTIONS
    return (order.index(name) if name in order else len(order), name)


def read_adapter(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """``(state of the bare backbone, LoraSettings fields)`` of BANK/adapter, or None without one. Reads
    peft's format (what banks are written in now) and the earlier one (our settings, unprefixed keys)."""
    adir = Path(path) / ADAPTER_DIR
    if not adir.exists():
        return None
    try:
        state = load_file(str(adir / ADAPTER_WEIGHTS))
        cfg = json.loads((adir / "adapter_config.json").read_text())
        if "peft_type" in cfg:
            if cfg["peft_type"] != "LORA":
                raise BankFormatError(f"{adir}: a {cfg['peft_type']} adapter, not LoRA")
            cfg = {"r": cfg["r"], "alpha": cfg["lora_alpha"], "dropout": cfg.get("lora_dropout", 0.0),
                   "target_modules": sorted(cfg["target_modules"], key=_projection_order)}
        state = {k.removeprefix(PEFT_PREFIX): v for k, v in state.items()}
        return state, cfg
    except BankFormatError:
        raise
    except Exception as exc:
        raise BankFormatError(f"{adir}: corrupt LoRA adapter ({exc})") from None
