"""Traces → token ids with a loss mask; length-bucketed, padded batches."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..chat import ChatFormat, trace_conversation
from ..traces import Trace

log = logging.getLogger("tokmem_agent")
IGNORE = -100


@dataclass
class Example:
    trace_id: str
    ids: list[int]
    labels: list[int]  # IGNORE where no loss
    tools: list[str]
    decisions: list[int] = field(default_factory=list)  # positions of call/answer/stop decision targets
    choices: list[int] = field(default_factory=list)  # positions of argument tokens not copied from the context


def encode_traces(chat: ChatFormat, traces: Sequence[Trace], *, max_length: int,
                  reading: str = "compositional", with_choices: bool = False) -> tuple[list[Example], list[str]]:
    """Encode each trace; returns (examples, ids of skipped traces whose targets do not fit).

    with_choices: also find each example's choice targets (only a ``choice_weight`` other than 1 needs them)."""
    examples: list[Example] = []
    skipped: list[str] = []
    for t in traces:
        enc = chat.truncated(trace_conversation(t, reading), max_length, with_choices=with_choices)
        if enc is None:
            skipped.append(t.id)
            continue
        labels = [i if m else IGNORE for i, m in zip(enc.ids, enc.targets)]
        examples.append(Example(t.id, enc.ids, labels, t.tool_names, enc.decisions, enc.choices))
    if skipped:
        log.warning("skipped %d of %d traces whose target alone exceeds max_length=%d (e.g. %s)",
                    len(skipped), len(traces), max_length, skipped[0])
    return examples, skipped


def split_heldout(examples: list[Example], fraction: float, max_eval: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Deterministic (train, held-out) split."""
    n_eval = min(max_eval, int(round(len(examples) * fraction)))
    if n_eval == 0 or len(examples) < 2:
        return examples, []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def make_batches(examples: Sequence[Example], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches of indices; examples of similar length are grouped (less padding)."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for s in range(0, len(order), chunk):
        part = sorted(order[s:s + chunk], key=lambda i: len(examples[i].ids))
        batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[Example], pad_id: int, decision_weight: float | None = None,
            choice_weight: float | None = None) -> dict[str, torch.Tensor]:
    """Right-padded tensors: input_ids, attention_mask, labels, each [B, T].

    With ``decision_weight`` or ``choice_weight``, also ``weights`` [B, T]: 1.0 per target token,
    ``decision_weight`` at decision targets, ``choice_weight`` at choice targets (see
    :attr:`TrainConfig.decision_weight`, :attr:`TrainConfig.choice_weight`).
    """
    t = max(len(e.ids) for e in examples)
    cpu = torch.device("cpu")  # built here, moved to the model's device by the caller
    ids = torch.full((len(examples), t), pad_id, dtype=torch.long, device=cpu)
    labels = torch.full((len(examples), t), IGNORE, dtype=torch.long, device=cpu)
    mask = torch.zeros((len(examples), t), dtype=torch.long, device=cpu)
    weighted = decision_weight is not None or choice_weight is not None
    weights = torch.ones((len(examples), t), device=cpu) if weighted else None
    for b, e in enumerate(examples):
        n = len(e.ids)
        ids[b, :n] = torch.tensor(e.ids, device=cpu)
        labels[b, :n] = torch.tensor(e.labels, device=cpu)
        mask[b, :n] = 1
        if weights is not None and choice_weight is not None and e.choices:
            weights[b, torch.tensor(e.choices, device=cpu)] = choice_weight
        if weights is not None and decision_weight is not None and e.decisions:
            weights[b, torch.tensor(e.decisions, device=cpu)] = decision_weight
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if weights is not None:
        out["weights"] = weights
    return out
