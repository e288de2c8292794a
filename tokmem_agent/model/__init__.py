"""Base-model loading, the memory bank and the wrapped LM."""

from .loader import (
    LoadedModel,
    cache_root,
    default_model_path,
    find_default_gguf,
    load_base_model,
    tokenizer_fingerprint,
)

__all__ = ["LoadedModel", "cache_root", "default_model_path", "find_default_gguf", "load_base_model",
           "tokenizer_fingerprint"]
