"""tokmem_agent: procedural memory of tools for small language models (TokMem).

Each registered tool becomes one trainable memory token added to a frozen causal LM.
"""

from .config import GenerationConfig, LoraSettings, MemoryConfig, ModelConfig, TrainConfig
from .errors import (BankFormatError, ConfigError, DataFormatError, GenerationError, ModelLoadError,
                     ModelMismatchError, SchemaError, TokMemError, ToolCallError, ToolNotFoundError)
from .registry import Tool, ToolRegistry
from .traces import Call, Trace, load_traces

__version__ = "0.1.0"

__all__ = [
    "BankFormatError", "Call", "ConfigError", "DataFormatError", "GenerationConfig", "GenerationError",
    "LoraSettings", "MemoryConfig", "ModelConfig", "ModelLoadError", "ModelMismatchError", "SchemaError",
    "TokMemError", "Tool", "ToolCallError", "ToolNotFoundError", "ToolRegistry", "Trace", "TrainConfig",
    "load_traces",
]
