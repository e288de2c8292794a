"""Several sequences decoded together: one KV cache for B rows, one forward pass per step.

Each :meth:`BatchSession.feed` gives any subset of the rows a few ids each (a prompt, one generated token,
a tool turn). The ids of a call are right-aligned in one ``[B, T]`` block; the rows with fewer ids (or none)
get padding there, masked out of attention and given no position, so every row sees exactly its own ids
at positions 0, 1, 2, … — the same attention as a :class:`~tokmem_agent.decoding.generate.DecodeSession`
of its own (logits equal to float tolerance; tested). Padding stays while every row is kept, so a long
conversation that alternates between rows grows the cache by the longest feed of each call;
:meth:`BatchSession.keep` drops finished rows and the columns that were padding for all the others.

:meth:`BatchSession.add` is how a new sequence joins a batch that is already decoding (continuous
batching): its prompt is prefilled alone — a ``[1, P]`` forward, exactly what a single session computes —
and its keys and values are written into the last ``P`` cache columns, which are padding for it anyway
(the cache only grows when the prompt is longer than the cache). Which column holds which id does not
matter to attention over the past: each key carries its own position, and the mask says whose it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from transformers import DynamicCache

from ..model.wrapped import TokMemModel


class BatchSession:
    """B sequences being decoded together: their ids, one KV cache, an attention mask [B, L]."""

    def __init__(self, model: TokMemModel, rows: int, pad_id: int = 0):
        if rows < 0:
            raise ValueError(f"a batch cannot have {rows} rows")
        self.model, self.rows, self.pad_id = model, rows, pad_id
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.cache = DynamicCache(config=model.base.config)
        self.mask = torch.zeros(rows, 0, dtype=torch.long, device=model.device)  # [B, L]: 1 = a real id
        self._logits: list[torch.Tensor | None] = [None] * rows  # [V+N] after each row's last id

    @torch.no_grad()
    def feed(self, ids: Mapping[int, Sequence[int]]) -> None:
        """Append ``ids[row]`` to each given row in one forward pass; read the new logits with :meth:`logits`."""
        ids = {r: list(x) for r, x in ids.items() if len(x)}
        if not ids:
            return
        for r in ids:
            if not 0 <= r < self.rows:
                raise ValueError(f"row {r} is outside this batch of {self.rows}")
        dev = self.model.device
        t = max(len(x) for x in ids.values())
        x = torch.full((self.rows, t), self.pad_id, dtype=torch.long, device=dev)  # [B, T]
        m = torch.zeros(self.rows, t, dtype=torch.long, device=dev)  # [B, T]
        pos = torch.zeros(self.rows, t, dtype=torch.long, device=dev)  # [B, T]
        for r in range(self.rows):
            n0 = len(self.ids[r])
            row = ids.get(r, [])
            k = len(row)
            pos[r] = n0  # padding: any position (masked); the row's next one keeps the positions compact
            if k:
                x[r, t - k:] = torch.tensor(row, dtype=torch.long, device=dev)
                m[r, t - k:] = 1
                pos[r, t - k:] = torch.arange(n0, n0 + k, device=dev)
        self.mask = torch.cat([self.mask, m], dim=1)  # [B, L + T]
        h, self.cache = self.model.hidden(x, self.mask, past_key_values=self.cache, use_cache=True,
                                          position_ids=pos)  # [B, T, d]
        rows = sorted(ids)
        logits = self.model.logits(h[rows, -1])  # [R, V+N]
        for i, r in enumerate(rows):
            self.ids[r].extend(ids[r])
            self._logits[r] = logits[i]

    @torch.no_grad()
    def add(self, prompt: Sequence[int]) -> int:
        """A new row with ``prompt`` (prefilled alone, then merged into the cache); returns its index."""
        prompt = list(prompt)
        if not prompt:
            raise ValueError("a new row needs at least one id")
        dev, p = self.model.device, len(prompt)
        x = torch.tensor([prompt], dtype=torch.long, device=dev)  # [1, P]
        own = DynamicCache(config=self.model.base.config)
        h, own = self.model.hidden(x, past_key_values=own, use_cache=True)  # [1, P, d]
        logits = self.model.logits(h[0, -1])  # [V+N]
        length = self.mask.shape[1]
        if self.rows == 0 or length == 0:
            fill = self.rows == 0
            if fill:
                self.cache = own
            else:  # rows without ids: give them P columns of padding
                for layer, new in zip(self.cache.layers, own.layers):
                    layer.keys = torch.cat([new.keys.new_zeros(self.rows, *new.keys.shape[1:]), new.keys])
                    layer.values = torch.cat([new.values.new_zeros(self.rows, *new.values.shape[1:]), new.values])
                    layer.is_initialized = True
            self.mask = torch.cat([torch.zeros(self.rows, p, dtype=torch.long, device=dev),
                                   torch.ones(1, p, dtype=torch.long, device=dev)])  # [B+1, P]
        else:
            if p > length:  # the prompt is longer than the cache: padding columns in front for the others
                for layer in self.cache.layers:  # [B, heads, L, hd] → [B, heads, P, hd]
                    layer.keys = torch.cat([layer.keys.new_zeros(*layer.keys.shape[:2], p - length,
                                                                 layer.keys.shape[3]), layer.keys], dim=2)
                    layer.values = torch.cat([layer.values.new_zeros(*layer.values.shape[:2], p - length,
                                                                     layer.values.shape[3]), layer.values], dim=2)
                self.mask = torch.cat([torch.zeros(self.rows, p - length, dtype=torch.long, device=dev), self.mask],
                                      dim=1)
                length = p
            for layer, new in zip(self.cache.layers, own.layers):  # the new row: its P ids in the last columns
                k = new.keys.new_zeros(1, new.keys.shape[1], length, new.keys.shape[3])  # [1, heads, L, hd]
                v = new.values.new_zeros(1, new.values.shape[1], length, new.values.shape[3])
                k[:, :, length - p:], v[:, :, length - p:] = new.keys, new.values
                layer.keys, layer.values = torch.cat([layer.keys, k]), torch.cat([layer.values, v])
            row_mask = torch.zeros(1, length, dtype=torch.long, device=dev)
            row_mask[0, length - p:] = 1
            self.mask = torch.cat([self.mask, row_mask])  # [B+1, L]
        self.ids.append(prompt)
        self._logits.append(logits)
        self.rows += 1
        return self.rows - 1

    def logits(self, row: int) -> torch.Tensor:
        """The float32 logits [V+N] after ``row``'s last id."""
        lg = self._logits[row]
        if lg is None:
            raise ValueError(f"nothing fed to row {row} yet")
        return lg

    def rollback(self, row: int, n: int) -> None:
        """Forget ``row``'s last ``n`` ids: they are masked out of attention (the cache keeps their slots)
        and later ids take their positions; the logits are those after the new last id."""
        if n <= 0:
            return
        keep = len(self.ids[row]) - n
        if keep < 1:
            raise ValueError(f"cannot roll back {n} of {len(self.ids[row])} ids")
        last = self.ids[row][keep - 1]
        real = torch.nonzero(self.mask[row]).flatten()  # columns of the row's ids, in order
        self.mask[row, real[keep - 1:]] = 0  # the last id is fed again below, so its logits are fresh
        del self.ids[row][keep - 1:]
        self.feed({row: [last]})

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only ``rows`` (renumbered 0, 1, … in this order) and drop the cache columns that are padding
        in all of them: later steps cost what the remaining rows need. For a batch whose finished rows are
        not needed again (one turn per row, as the eval harness decodes)."""
        rows = list(rows)
        if any(not 0 <= r < self.rows for r in rows) or len(set(rows)) < len(rows):
            raise ValueError(f"rows to keep must be a subset of 0..{self.rows - 1}, got {rows}")
        if not rows:  # nothing left: an empty batch that rows can be added to
            self.cache = DynamicCache(config=self.model.base.config)
            self.mask = self.mask[:0, :0]
            self.ids, self._logits, self.rows = [], [], 0
            return
        idx = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        self.mask = self.mask[idx]  # [K, L]
        cols = self.mask.any(dim=0)  # [L]: columns some kept row attends to
        for layer in self.cache.layers:  # [B, heads, L, head_dim] → [K, heads, L', head_dim]
            if layer.keys is not None and layer.keys.numel():
                layer.keys = layer.keys[idx][:, :, cols]
                layer.values = layer.values[idx][:, :, cols]
        self.mask = self.mask[:, cols]
        self.ids = [self.ids[r] for r in rows]
        self._logits = [self._logits[r] for r in rows]
        self.rows = len(rows)
