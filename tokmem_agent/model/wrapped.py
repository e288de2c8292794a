"""A frozen causal LM with a memory bank attached, without patching transformers' classes.

Token ids ``< V`` are ordinary vocabulary (V = the model's embedding rows); id ``V + i`` is memory token i.
Inputs go through ``inputs_embeds`` (memory rows substituted), logits are extended with ``h @ Mᵀ``.
The KV cache works as usual since the decoder only ever sees embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .memory import MemoryBank


@dataclass
class FrozenPrefix:
    """The no-autograd part of a batch, kept to be reused: positions [0, length) of every row.

    hidden: [B, length, d] final hidden states; kv: per layer (keys, values), each [B, kv_heads, length, hd].
    Valid only while the backbone and every memory row in the prefix stay unchanged (there are none: the
    prefix ends before the batch's first memory token) — i.e. while nothing but memory rows trains.
    """

    length: int
    hidden: torch.Tensor
    kv: tuple[tuple[torch.Tensor, torch.Tensor], ...]

    @property
    def nbytes(self) -> int:
        return self.hidden.nbytes + sum(k.nbytes + v.nbytes for k, v in self.kv)


class TokMemModel(nn.Module):
    """Base model (frozen) + :class:`MemoryBank`."""

    def __init__(self, base: nn.Module, bank: MemoryBank):
        super().__init__()
        self.base = base
        self.bank = bank
        self.vocab_size = base.get_input_embeddings().num_embeddings  # V
        for p in base.parameters():
            p.requires_grad_(False)

    # ----- pieces -------------------------------------------------------------------------------------
    @property
    def decoder(self) -> nn.Module:
        get = getattr(self.base, "get_decoder", None)
        dec = get() if callable(get) else None
        return dec if dec is not None else getattr(self.base, self.base.base_model_prefix)

    @property
    def device(self) -> torch.device:
        """Where the backbone's weights live: every tensor the library feeds it is made there."""
        return self.base.get_input_embeddings().weight.device

    @property
    def total_vocab(self) -> int:
        """Logit width: V + N."""
        return self.vocab_size + len(self.bank)

    def memory_id(self, name: str) -> int:
        return self.vocab_size + self.bank.index(name)

    def is_memory(self, token_id: int) -> bool:
        return token_id >= self.vocab_size

    def tool_of(self, token_id: int) -> str:
        return self.bank.names[token_id - self.vocab_size]

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids [B, T] (may hold memory ids) → embeddings [B, T, d] in the backbone's dtype."""
        emb = self.base.get_input_embeddings()
        is_mem = input_ids >= self.vocab_size  # [B, T]
        e = emb(input_ids.clamp(max=self.vocab_size - 1))  # [B, T, d]
        if is_mem.any():
            rows = self.bank.steer[(input_ids - self.vocab_size).clamp(min=0)]  # [B, T, d] float32
            e = torch.where(is_mem.unsqueeze(-1), rows.to(e.dtype), e)
        return e

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               past_key_values: Any = None, use_cache: bool = False,
               position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Final hidden states [B, T, d] and the (updated) KV cache. position_ids [B, T]: explicit positions
        (batched decoding with padding inside the sequence); None: counted on from the cache."""
        out = self.decoder(inputs_embeds=self.embed(input_ids), attention_mask=attention_mask,
                           past_key_values=past_key_values, use_cache=use_cache, position_ids=position_ids)
        return out.last_hidden_state, getattr(out, "past_key_values", None)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h [..., d] → float32 logits [..., V + N]: vocabulary logits, then memory logits h · M_outᵀ."""
        vocab = self.base.get_output_embeddings()(h).float()  # [..., V]
        with torch.autocast(device_type=h.device.type, enabled=False):  # memory logits stay float32
            mem = h.float() @ self.bank.address.t()  # [..., N]
        return torch.cat([vocab, mem], dim=-1)

    def target_loss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                    weights: torch.Tensor | None = None, *,
                    frozen_prefix: bool | FrozenPrefix = False) -> dict[str, Any]:
        """Cross-entropy on target positions only (the LM head runs only there).

        input_ids, attention_mask, labels: [B, T]; labels = -100 where no loss; weights [B, T] (optional)
        scale each target's loss. Returns the (weighted) summed loss and the (weighted) number of targets,
        so ``loss_sum / n`` is the weighted mean, correct/total counts at memory-token targets and their
        (weighted) share of ``n`` as ``mem_weight``.

        frozen_prefix: run the positions before the batch's first memory token without autograd (their
        hidden states cannot depend on the memory rows) and only the rest with it, through the KV cache.
        Same loss and gradients, much less backward work when the prompt is long; valid only while
        nothing but the memory bank trains (the caller's job: not with a LoRA round). The computed prefix is
        returned as ``out["prefix"]`` (a :class:`FrozenPrefix`); passing it back as ``frozen_prefix`` for the
        same batch skips the prefix entirely (the trainer does so in later epochs).
        """
        prefix = frozen_prefix if isinstance(frozen_prefix, FrozenPrefix) else None
        if prefix is not None:
            p = prefix.length
        else:
            p = self.frozen_prefix_len(input_ids) if frozen_prefix and torch.is_grad_enabled() else 0
        if p > 0:
            if prefix is None:
                with torch.no_grad():
                    h0, past = self.hidden(input_ids[:, :p], attention_mask[:, :p], use_cache=True)  # [B, p, d]
                prefix = FrozenPrefix(p, h0, _kv_tuples(past))
            past = _dynamic_cache(prefix.kv, self.base.config)  # a fresh cache: the suffix must not grow ours
            h1, _ = self.hidden(input_ids[:, p:], attention_mask, past_key_values=past, use_cache=True)
            h = torch.cat([prefix.hidden, h1], dim=1)  # [B, T, d]
        else:
            h, _ = self.hidden(input_ids, attention_mask)  # [B, T, d]
        tgt = labels[:, 1:]  # [B, T-1]: token t+1 is predicted from position t
        sel = tgt != -100
        logits = self.logits(h[:, :-1][sel])  # [K, V+N]
        y = tgt[sel]  # [K]
        is_mem = y >= self.vocab_size  # [K]
        if weights is None:
            loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
            n = sel.sum()
            mem_w = is_mem.sum()
        else:
            w = weights[:, 1:][sel].to(logits.dtype)  # [K]
            loss = (torch.nn.functional.cross_entropy(logits, y, reduction="none") * w).sum()
            n = w.sum()
            mem_w = w[is_mem].sum()
        correct = (logits[is_mem].argmax(-1) == y[is_mem]).sum()
        return {"loss_sum": loss, "n": n, "mem_correct": correct, "mem_n": is_mem.sum(), "mem_weight": mem_w,
                "prefix": prefix}

    def frozen_prefix_len(self, input_ids: torch.Tensor) -> int:
        """Positions [0, p) that hold no memory token in any row of the batch (at least one left after)."""
        is_mem = input_ids >= self.vocab_size  # [B, T]
        t = input_ids.shape[1]
        first = torch.where(is_mem.any(1), is_mem.float().argmax(1), torch.full_like(is_mem[:, 0], t, dtype=torch.long))
        return int(min(int(first.min()), t - 1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                past_key_values: Any = None, use_cache: bool = False) -> tuple[torch.Tensor, Any]:
        """Logits [B, T, V + N] at every position, and the KV cache."""
        h, past = self.hidden(input_ids, attention_mask, past_key_values, use_cache)
        return self.logits(h), past


def _kv_tuples(cache: Any) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """Per-layer (keys, values) of a transformers cache."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return tuple((layer.keys, layer.values) for layer in layers)
    return tuple((k, v) for k, v in cache)  # legacy tuple of tuples


def _dynamic_cache(kv: tuple[tuple[torch.Tensor, torch.Tensor], ...], config: Any) -> Any:
    from transformers import DynamicCache

    try:
        return DynamicCache(ddp_cache_data=kv, config=config)
    except TypeError:  # older transformers
        return DynamicCache.from_legacy_cache(kv)
