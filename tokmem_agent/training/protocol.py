"""What training and registration need of a memory model: an explicit interface, so that the trainer and
the continual-memory functions depend on these members only, never on the :class:`~tokmem_agent.TokMem`
facade (which calls them: dependencies point one way, facade → training)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from ..chat import ChatFormat
    from ..config import LoraSettings
    from ..model.memory import MemoryBank
    from ..model.wrapped import TokMemModel
    from ..registry import Tool, ToolRegistry
    from ..traces import Trace
    from .anchors import Anchors


class MemoryModel(Protocol):
    """A frozen backbone with a memory bank (``TokMem`` is one). Shapes: rows [N, d]."""

    model: TokMemModel
    bank: MemoryBank
    chat: ChatFormat
    tools: ToolRegistry
    tokenizer: Any
    meta: dict[str, Any]
    anchors: Anchors | None
    lora: LoraSettings | None

    @property
    def pad_id(self) -> int: ...

    def add_tools(self, tools: Iterable[Any], *, init: str | None = None, seed: int = 0) -> list[str]: ...

    def initial_rows(self, tools: Sequence[Tool], *, init: str | None = None, seed: int = 0) -> torch.Tensor: ...

    def enable_lora(self, settings: LoraSettings) -> None: ...

    def lora_parameters(self) -> list[torch.nn.Parameter]: ...

    def drop_calibration(self) -> None: ...

    def write_to(self, dirpath: Path) -> None: ...

    def save(self, path: str | os.PathLike[str]) -> Path: ...

    def anchors_from(self, traces: Sequence[Trace], *, per_tool: int = 16, tools: set[str] | None = None,
                     max_length: int = 1024, batch_size: int = 4) -> Anchors: ...

    def paraphraser(self, max_new_tokens: int = 60) -> Callable[[str], str]: ...
