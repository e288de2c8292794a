"""Anchors: frozen hidden states where known tools were called, so new tokens learn not to fire there.

Registering a tool trains only its row, on its own traces. Nothing in those traces says "at a request for
an old tool, stay quiet", so the new row's logit ``h · m`` ends up above the gold old tool's logit on some
old requests (forgetting, although the old rows never change). Replaying old traces fixes that, but costs a
forward and backward pass per trace. It need not: while the backbone and the old rows are frozen, the
hidden state ``h`` at an old tool's position is a constant. An anchor stores that ``h`` (float16, ``d``
numbers) and the gold tool's name; the anchor loss is the cross-entropy of the gold tool at those states
over the full output (vocabulary + every row), whose gradient reaches only the rows being trained:

    loss = mean_k [ logsumexp(c_k, h_k · A_newᵀ) − g_k ]

where ``c_k`` (log-sum-exp of the vocabulary and frozen-row logits) and ``g_k`` (gold logit) are computed
once. A few hundred anchors cost microseconds per step. Banks keep anchors for their tools (collected at
the end of training) so ``register`` protects old tools with no old data at hand.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .dataset import IGNORE, Example, collate


@dataclass
class Anchors:
    """Hidden states ``h`` [K, d] at gold memory-token positions, and each one's gold tool name."""

    h: torch.Tensor
    tools: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.h.dim() != 2 or self.h.shape[0] != len(self.tools):
            raise ValueError(f"anchors: h must be [K, d] with K = {len(self.tools)} tool names, "
                             f"got {list(self.h.shape)}")

    def __len__(self) -> int:
        return len(self.tools)

    @classmethod
    def empty(cls, hidden_size: int) -> Anchors:
        return cls(torch.zeros(0, hidden_size, dtype=torch.float16, device="cpu"), [])  # stored data: CPU

    def only(self, names: set[str] | Sequence[str]) -> Anchors:
        """The anchors whose gold tool is in ``names``."""
        keep = set(names)
        idx = [i for i, t in enumerate(self.tools) if t in keep]
        return Anchors(self.h[idx], [self.tools[i] for i in idx])

    def without(self, names: set[str] | Sequence[str]) -> Anchors:
        drop = set(names)
        return self.only({t for t in self.tools if t not in drop})

    def plus(self, other: Anchors) -> Anchors:
        """These anchors followed by ``other``'s."""
        return Anchors(torch.cat([self.h, other.h.to(self.h.dtype)]), [*self.tools, *other.tools])

    def merged(self, other: Anchors) -> Anchors:
        """These anchors plus ``other``'s; tools present in ``other`` take ``other``'s anchors only."""
        return self.without(set(other.tools)).plus(other)

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.tools))


@torch.no_grad()
def collect_anchors(model, examples: Sequence[Example], pad_id: int, *, tools: set[str] | None = None,
                    per_tool: int = 16, batch_size: int = 4, seed: int = 0) -> Anchors:
    """Run ``examples`` (no autograd) and keep h at gold memory-token positions, ≤ ``per_tool`` per tool.

    model: a :class:`~tokmem_agent.model.wrapped.TokMemModel`. tools: only anchors of these tools (default all).
    Sequences are cut after their last memory-token target (the answer text after it is not needed).
    """
    v = model.vocab_size
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    counts: dict[str, int] = {}
    picked: list[Example] = []
    for i in order:  # pick examples until every tool has per_tool positions
        ex = examples[i]
        names = [model.tool_of(y) for y in ex.labels if y != IGNORE and y >= v]
        names = [n for n in names if tools is None or n in tools]
        if not names or all(counts.get(n, 0) >= per_tool for n in names):
            continue
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        last = max(j for j, y in enumerate(ex.labels) if y != IGNORE and y >= v)
        picked.append(Example(ex.trace_id, ex.ids[:last + 1], ex.labels[:last + 1], ex.tools))
    picked.sort(key=lambda e: len(e.ids))  # similar lengths together: less padding
    hs: list[torch.Tensor] = []
    gold: list[str] = []
    kept: dict[str, int] = {}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for s in range(0, len(picked), batch_size):
            batch = collate(picked[s:s + batch_size], pad_id)
            h, _ = model.hidden(batch["input_ids"].to(device), batch["attention_mask"].to(device))  # [B, T, d]
            tgt = batch["labels"][:, 1:].to(device)  # [B, T-1]
            sel = tgt >= v
            for vec, y in zip(h[:, :-1][sel], tgt[sel].tolist()):  # vec [d]
                name = model.tool_of(y)
                if (tools is not None and name not in tools) or kept.get(name, 0) >= per_tool:
                    continue
                kept[name] = kept.get(name, 0) + 1
                hs.append(vec.float().cpu())
                gold.append(name)
    finally:
        model.train(was_training)
    if not hs:
        return Anchors.empty(model.bank.hidden_size)
    return Anchors(torch.stack(hs).to(torch.float16), gold)  # [K, d]


class AnchorLoss:
    """Cross-entropy of the gold (frozen) tool at anchor states; only the ``active`` rows get gradients.

    model: a TokMemModel; active: [N] bool, the rows being trained. Anchors of active or unknown tools are
    ignored. Call the instance for the loss (a scalar that depends on the active rows only).
    """

    def __init__(self, model, anchors: Anchors, active: torch.Tensor, chunk: int = 256):
        bank = model.bank
        names = set(bank.names)
        act = {n for n, a in zip(bank.names, active.tolist()) if a}
        keep = anchors.only(names - act)
        self.model = model
        self.active = active
        self.n = len(keep)
        device = bank.steer.device
        self.h = keep.h.to(device=device, dtype=torch.float32)  # [K, d]
        gold = torch.tensor([bank.index(t) for t in keep.tools], dtype=torch.long, device=device)  # [K]
        consts, golds = [], []
        with torch.no_grad():
            for s in range(0, self.n, chunk):
                h = self.h[s:s + chunk]
                lg = model.logits(h)  # [k, V+N]
                g = lg[torch.arange(len(h), device=device), model.vocab_size + gold[s:s + chunk]]  # [k]
                lg[:, model.vocab_size:][:, active.to(device)] = float("-inf")
                consts.append(torch.logsumexp(lg, dim=-1))  # [k]
                golds.append(g)
        self.const = torch.cat(consts) if consts else torch.zeros(0, device=device)  # [K]
        self.gold = torch.cat(golds) if golds else torch.zeros(0, device=device)  # [K]

    def __len__(self) -> int:
        return self.n

    def __call__(self) -> torch.Tensor:
        if self.n == 0:
            return self.model.bank.steer.sum() * 0.0
        rows = self.model.bank.address[self.active.to(self.h.device)]  # [n_active, d]
        z = self.h @ rows.t()  # [K, n_active]
        lse = torch.logsumexp(torch.cat([self.const.unsqueeze(1), z], dim=1), dim=1)  # [K]
        return (lse - self.gold).mean()
