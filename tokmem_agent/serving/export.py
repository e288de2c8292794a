"""Export a bank as a plain Hugging Face checkpoint whose vocabulary holds the memory tokens.

The backbone's embedding matrix (and, when the output matrix is separate, that one too) grows by N rows with
the memory rows copied in: memory token i becomes ordinary token ``V + i``, written ``<|tool:NAME|>``.
Tied mode on a tied backbone stays tied (the logit of tool i is h · M_i, as in :class:`TokMemModel`); a
decoupled bank, or a backbone with its own output matrix, gets untied input and output matrices. The
LoRA round is merged into the weights (``merge_lora``) or written beside them as a peft adapter
(``adapter/``). Also written:

* the tokenizer with one added token per tool (ids ``V .. V+N-1``) and a chat template that uses the
  bank's system prompt and renders assistant ``tool_calls`` as ``<|tool:NAME|>{arguments}``;
* ``generation_config.json`` stopping at the end-of-turn token;
* ``tokmem_tools.json``: names, tokens, ids, descriptions, schemas, the calibrated thresholds;
* ``tokmem_structural_tag.json``: an xgrammar structural tag (the format vLLM's and SGLang's
  ``structural_tag`` response format takes) that applies each tool's JSON schema after its token.

Greedy decoding of the exported folder with stock ``transformers`` gives :meth:`TokMem.predict`'s ids
(tested). What no plain checkpoint can carry: the call threshold (a decision on the memory-token mass)
and the controller's schema-constrained arguments; the structural tag brings back the latter.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..serialization import ADAPTER_DIR, peft_adapter_files, write_adapter

if TYPE_CHECKING:
    from ..tokmem import TokMem

log = logging.getLogger("tokmem_agent")

#: How memory token i is written in the exported vocabulary.
TOKEN_FORMAT = "<|tool:{name}|>"
TOOLS_FILE = "tokmem_tools.json"
STRUCTURAL_TAG_FILE = "tokmem_structural_tag.json"


@dataclass
class ExportResult:
    path: Path
    tokens: dict[str, int]  # tool name -> token id
    tied: bool
    lora: str  # "none", "merged" or "adapter"
    files: list[str] = field(default_factory=list)


def token_text(name: str) -> str:
    return TOKEN_FORMAT.format(name=name)


def export_bank(tm: TokMem, out: str | os.PathLike[str], *, merge_lora: bool = False,
                overwrite: bool = False) -> ExportResult:
    """Write ``tm`` (backbone, memory rows, LoRA round) as a standard checkpoint in ``out``."""
    from transformers import AddedToken

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty (pass overwrite=True / --overwrite)")
    bank, model = tm.bank, tm.model
    vocab, n = model.vocab_size, len(bank)
    if n == 0:
        raise ConfigError("the bank has no tools to export")
    tok = copy.deepcopy(tm.tokenizer)
    if len(tok) > vocab:
        raise ConfigError(f"the tokenizer has {len(tok)} tokens but the embedding matrix {vocab} rows: memory "
                          "tokens could not take ids after the vocabulary")
    if len(tok) < vocab:  # unused embedding rows: fill them with placeholders so tool i gets id V + i
        tok.add_tokens([AddedToken(f"<|tokmem_unused_{i}|>", special=True, normalized=False)
                        for i in range(vocab - len(tok))])
    texts = [token_text(name) for name in bank.names]
    clash = [t for t in texts if t in tok.get_vocab()]
    if clash:
        raise ConfigError(f"tokens already in the vocabulary: {', '.join(clash)}")
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in texts])
    ids = tok.convert_tokens_to_ids(texts)
    if ids != list(range(vocab, vocab + n)):
        raise ConfigError(f"the tool tokens got ids {ids[:3]}…, not {vocab}…{vocab + n - 1}")

    base = copy.deepcopy(model.base)
    lora = "none"
    if tm.lora is not None:
        if merge_lora:
            _merge_lora(base)
            lora = "merged"
        else:
            _strip_lora(base)
            lora = "adapter"
    tied = _grow_vocabulary(base, bank)

    out.mkdir(parents=True, exist_ok=True)
    base.config.vocab_size = vocab + n
    base.config.tie_word_embeddings = tied
    base.generation_config.eos_token_id = sorted(tm.chat.stop_ids)
    base.generation_config.do_sample = False
    for attr in ("temperature", "top_p", "top_k"):
        if hasattr(base.generation_config, attr):
            setattr(base.generation_config, attr, None)
    base.save_pretrained(out)
    original = tm.tokenizer.chat_template
    template = "original"
    if tm.chat.system_prompt is not None and isinstance(original, str) and "<|im_start|>" in original:
        tok.chat_template, template = chat_template(tm.chat.system_prompt), "chatml"
    else:
        log.warning("the chat template is not ChatML: it is kept as it is, so send the bank's system prompt "
                    "yourself (%s has it) and assistant tool calls as content", TOOLS_FILE)
    tok.save_pretrained(out)
    if lora == "adapter":
        write_adapter(out / ADAPTER_DIR, peft_adapter_files(tm._lora_state(), asdict(tm.lora), tm.loaded.model_id))
    tools = [{"name": name, "token": t, "token_id": i, "description": tm.tools.get(name).description,
              "parameters": tm.tools.get(name).parameters} for name, t, i in zip(bank.names, texts, ids)]
    meta = {"format": 1, "base_model": tm.loaded.model_id, "memory_mode": bank.mode, "tied": tied, "lora": lora,
            "system_prompt": tm.chat.system_prompt, "chat_template": template, "stop_token_ids": sorted(tm.chat.stop_ids),
            "call_threshold": tm.meta.get("call_threshold"),
            "continue_threshold": tm.meta.get("continue_threshold"), "tools": tools}
    (out / TOOLS_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / STRUCTURAL_TAG_FILE).write_text(json.dumps(structural_tag(tools), indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return ExportResult(out, dict(zip(bank.names, ids)), tied, lora, files)


def _grow_vocabulary(base: Any, bank: Any) -> bool:
    """Append the memory rows to the input (and output) matrix; returns whether they stay tied."""
    emb = base.get_input_embeddings()  # [V, d]
    head = base.get_output_embeddings()  # [V, d] (the same Parameter when tied)
    was_tied = head is not None and head.weight is emb.weight
    tied = was_tied and bank.mode == "tied"
    steer = bank.steer.detach().to(emb.weight.device, emb.weight.dtype)  # [N, d]
    new_emb = nn.Embedding(emb.num_embeddings + len(bank), emb.embedding_dim, padding_idx=emb.padding_idx,
                           device=emb.weight.device, dtype=emb.weight.dtype)
    with torch.no_grad():
        new_emb.weight.copy_(torch.cat([emb.weight.detach(), steer]))  # [V+N, d]
    base.set_input_embeddings(new_emb)
    if head is None:
        raise ConfigError("the backbone has no output embeddings to extend")
    address = bank.address.detach().to(head.weight.device, head.weight.dtype)  # [N, d]
    new_head = nn.Linear(head.in_features, head.out_features + len(bank), bias=head.bias is not None,
                         device=head.weight.device, dtype=head.weight.dtype)
    with torch.no_grad():
        if tied:
            new_head.weight = new_emb.weight
        else:
            new_head.weight.copy_(torch.cat([head.weight.detach(), address]))  # [V+N, d]
        if head.bias is not None:
            new_head.bias.copy_(torch.cat([head.bias.detach(), head.bias.new_zeros(len(bank))]))
    base.set_output_embeddings(new_head)
    return tied


def _lora_layers(base: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in base.named_modules() if hasattr(m, "lora_A") and hasattr(m, "get_base_layer")]


def _replace(base: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(base.get_submodule(parent_name) if parent_name else base, child, new)


def _merge_lora(base: nn.Module) -> None:
    """Fold each LoRA layer into its base weight and put the plain layer back."""
    for name, m in _lora_layers(base):
        m.merge()
        _replace(base, name, m.get_base_layer())


def _strip_lora(base: nn.Module) -> None:
    """Put the plain layers back without merging (the adapter is written separately)."""
    for name, m in _lora_layers(base):
        _replace(base, name, m.get_base_layer())


def chat_template(system_prompt: str | None) -> str:
    """A ChatML template (the default model's format) that adds the bank's system prompt when the
    conversation has none and writes assistant ``tool_calls`` as ``<|tool:NAME|>{arguments}``."""
    system = "" if system_prompt is None else system_prompt
    lines = [
        "{%- if messages and messages[0]['role'] != 'system' %}",
        "{{- '<|im_start|>system\\n' + " + json.dumps(system) + " + '<|im_end|>\\n' }}",
        "{%- endif %}",
        "{%- for message in messages %}",
        "{{- '<|im_start|>' + message['role'] + '\\n' }}",
        "{%- if message['content'] is string %}{{- message['content'] }}{%- endif %}",
        "{%- if message['role'] == 'assistant' and message.get('tool_calls') %}",
        "{%- for call in message['tool_calls'] %}",
        "{%- set fn = call['function'] if call.get('function') else call %}",
        "{{- '<|tool:' + fn['name'] + '|>' }}",
        ("{%- if fn['arguments'] is string %}{{- fn['arguments'] }}"
         "{%- else %}{{- fn['arguments'] | tojson(separators=(',', ':')) }}{%- endif %}"),
        "{%- endfor %}",
        "{%- endif %}",
        "{{- '<|im_end|>\\n' }}",
        "{%- endfor %}",
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
    ]
    return "\n".join(lines)


def structural_tag(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """An xgrammar structural tag: free text until a tool token, then that tool's JSON arguments."""
    return {"type": "structural_tag",
            "format": {"type": "triggered_tags", "triggers": ["<|tool:"],
                       "tags": [{"type": "tag", "begin": t["token"],
                                 "content": {"type": "json_schema", "json_schema": t["parameters"]},
                                 "end": ""} for t in tools],
                       "at_least_one": False, "stop_after_first": False}}
