"""tokmem_agent: procedural memory of tools for small language models (TokMem).

Each registered tool becomes one trainable memory token added to a frozen causal LM.
The light modules (configs, errors, registry, traces) import without torch; ``TokMem`` and
``TokMemAgent`` load lazily.
"""

from typing import TYPE_CHECKING, Any

from .config import ControllerConfig, LoraSettings, MemoryConfig, ModelConfig, RegisterConfig, TrainConfig
from .errors import (
    BankFormatError,
    ConfigError,
    DataFormatError,
    GenerationError,
    ModelLoadError,
    ModelMismatchError,
    SchemaError,
    TokMemError,
    ToolCallError,
    ToolNotFoundError,
)
from .registry import Tool, ToolRegistry, read_only
from .traces import Call, Trace, load_traces

if TYPE_CHECKING:
    from .agent import TokMemAgent
    from .decoding.runlog import RunResult, Step
    from .tokmem import TokMem

__version__ = "0.1.0"

_LAZY = {"TokMem": ".tokmem", "TokMemAgent": ".agent", "RunResult": ".decoding.runlog", "Step": ".decoding.runlog"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'tokmem_agent' has no attribute {name!r}")


__all__ = [
    "BankFormatError", "Call", "ConfigError", "ControllerConfig", "DataFormatError",
    "GenerationError", "LoraSettings", "MemoryConfig", "ModelConfig", "ModelLoadError", "ModelMismatchError",
    "RegisterConfig", "RunResult", "SchemaError", "Step", "TokMem", "TokMemAgent", "TokMemError", "Tool", "ToolCallError",
    "ToolNotFoundError", "ToolRegistry", "Trace", "TrainConfig", "load_traces", "read_only",
]
