"""The memory bank: one trainable row per tool.

Tied mode keeps one matrix M [N, d]: row i is tool i's input embedding (it *steers* the arguments that
follow) and its output address (the logit of tool i is h · M_i). Decoupled mode keeps a steering matrix
and an address matrix. Rows are always float32, whatever the backbone's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError, ToolNotFoundError


class MemoryBank(nn.Module):
    """Memory tokens for N tools, in a fixed order (row i ↔ ``names[i]``)."""

    def __init__(self, hidden_size: int, mode: str = "tied", device: torch.device | str | None = None):
        super().__init__()
        if mode not in ("tied", "decoupled"):
            raise ConfigError(f"memory mode must be 'tied' or 'decoupled', got {mode!r}")
        self.hidden_size = hidden_size
        self.mode = mode
        self.names: list[str] = []
        device = torch.device(device) if device is not None else torch.device("cpu")
        # float32 master rows on the backbone's device, whatever the backbone's dtype
        self.steer = nn.Parameter(torch.zeros(0, hidden_size, device=device))  # [N, d] input embeddings
        self.address_ = (nn.Parameter(torch.zeros(0, hidden_size, device=device)) if mode == "decoupled"
                         else None)  # [N, d]

    # ----- views ----------------------------------------------------------------------------------
    @property
    def address(self) -> torch.Tensor:
        """Output matrix [N, d]: the logit of tool i is h · address[i]."""
        return self.steer if self.address_ is None else self.address_

    def matrices(self) -> list[nn.Parameter]:
        """The trainable matrices (one in tied mode, two in decoupled mode)."""
        return [self.steer] if self.address_ is None else [self.steer, self.address_]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ToolNotFoundError(f"tool '{name}' has no memory token in this bank "
                                    f"(bank has {len(self.names)}: {', '.join(self.names[:20])}"
                                    f"{'…' if len(self.names) > 20 else ''})") from None

    # ----- growth -----------------------------------------------------------------------------------
    @torch.no_grad()
    def add(self, names: Sequence[str], init: torch.Tensor, address_init: torch.Tensor | None = None) -> list[int]:
        """Append rows for new tools. ``init`` is [n, d]; returns their row indices."""
        dup = [n for n in names if n in self.names] or [n for i, n in enumerate(names) if n in names[:i]]
        if dup:
            raise ConfigError(f"tools already have memory tokens: {dup}")
        if init.shape != (len(names), self.hidden_size):
            raise ConfigError(f"init rows must be [{len(names)}, {self.hidden_size}], got {list(init.shape)}")
        start = len(self.names)
        dev = self.steer.device
        self.steer = nn.Parameter(torch.cat([self.steer.data, init.to(dev).float()], 0))
        if self.address_ is not None:
            extra = init if address_init is None else address_init
            self.address_ = nn.Parameter(torch.cat([self.address_.data, extra.to(dev).float()], 0))
        self.names.extend(names)
        return list(range(start, start + len(names)))

    @torch.no_grad()
    def remove(self, name: str) -> None:
        """Drop a tool's row; later rows shift up by one."""
        i = self.index(name)
        keep = [j for j in range(len(self.names)) if j != i]
        self.steer = nn.Parameter(self.steer.data[keep].clone())
        if self.address_ is not None:
            self.address_ = nn.Parameter(self.address_.data[keep].clone())
        del self.names[i]

    # ----- continual learning ---------------------------------------------------------------------
    @torch.no_grad()
    def renormalize(self, active: torch.Tensor, *, cap: bool = False) -> None:
        """Rescale active rows to the mean L2 norm of the inactive rows (paper eq. 5-6); with ``cap``, only
        rows longer than that mean are scaled down to it.

        active: bool [N]. Does nothing when every row is active.
        """
        if active.all() or not active.any():
            return
        for m in self.matrices():
            target = m.data[~active].norm(dim=-1).mean()  # scalar
            rows = m.data[active]  # [n_active, d]
            norms = rows.norm(dim=-1, keepdim=True).clamp_min(1e-8)  # [n_active, 1]
            scale = target / norms
            m.data[active] = rows * (scale.clamp(max=1.0) if cap else scale)


@torch.no_grad()
def init_rows(embedding: torch.Tensor, token_lists: Sequence[Sequence[int]], method: str = "mean",
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Initial memory rows [n, d] from the base input embedding matrix ``embedding`` [V, d].

    mean: mean embedding of each tool's name+description tokens (paper); random: N(0, std of the
    embeddings); orthogonal: orthogonal rows scaled to the mean embedding norm.
    """
    emb = embedding.float()
    n, d = len(token_lists), emb.shape[1]
    if method == "mean":
        rows = [emb[list(toks)].mean(0) if len(toks) else emb.mean(0) for toks in token_lists]
        return torch.stack(rows) if rows else emb.new_zeros(0, d)
    if method == "random":
        return torch.randn(n, d, generator=generator, device="cpu") * emb.std().cpu()  # seeded on the CPU
    if method == "orthogonal":
        q = torch.empty(max(n, 1), d, device="cpu")
        nn.init.orthogonal_(q, generator=generator) if _supports_generator() else nn.init.orthogonal_(q)
        return q[:n] / q[:n].norm(dim=-1, keepdim=True).clamp_min(1e-8) * emb.norm(dim=-1).mean().cpu()
    raise ConfigError(f"unknown init method {method!r} (mean, random, orthogonal)")


def _supports_generator() -> bool:
    import inspect

    return "generator" in inspect.signature(nn.init.orthogonal_).parameters
