"""`tokmem export`: a plain checkpoint that stock transformers decodes exactly as TokMem.predict does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toydata import add, get_weather  # tests/toydata.py

from tokmem_agent.config import LoraSettings, MemoryConfig
from tokmem_agent.errors import ConfigError
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.serving.export import STRUCTURAL_TAG_FILE, TOOLS_FILE, export_bank
from tokmem_agent.tokmem import TokMem

QUERIES = [f"{w} {i}" for i, w in enumerate(
    ["add two numbers", "weather in Oslo", "hello", "what is 3 plus 4", "sum these", "is it raining in Rome",
     "thanks!", "compute 10 + 20", "forecast for Paris", "good morning", "2 + 2", "weather please",
     "add 7 and 9", "how warm is Lisbon", "tell me a joke", "plus", "temperature in Berlin", "add them up",
     "who are you", "1 + 1 = ?", "sunny in Madrid?", "calculate 5 plus 6"])]

#: Runs in a fresh interpreter: stock transformers only, no tokmem_agent import.
STOCK = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path, queries, budget = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path).eval()
out = []
for q in queries:
    ids = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    x = torch.tensor([list(ids)])
    with torch.no_grad():
        g = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=budget, do_sample=False)
    out.append({"prompt": list(ids), "ids": g[0, x.shape[1]:].tolist()})
assert "tokmem_agent" not in sys.modules
print(json.dumps(out))
"""


def _tm(tiny_model, tiny_tokenizer, mode: str = "tied", lora: bool = False) -> TokMem:
    loaded = LoadedModel(tiny_model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer))
    tm = TokMem.create([add, get_weather], loaded, memory=MemoryConfig(mode=mode))
    with torch.no_grad():
        if lora:
            tm.enable_lora(LoraSettings(r=2, target_modules=("q_proj", "v_proj")))
            for p in tm.lora_parameters():
                p.normal_(0, 0.2)
        # each row a scaled copy of a token the (adapted) random model likes: it then calls often
        emb = tm.model.base.get_input_embeddings().weight
        liked = [t for q in QUERIES[:4] for t in tm.predict(q, max_new_tokens=6).ids]
        firsts = list(dict.fromkeys(liked))[:2]  # two different tokens: no ties between the tool rows
        for i, first in enumerate(firsts):
            for m in tm.bank.matrices():
                m[i] = 1.5 * emb[first].float()
    return tm


def _stock(path: Path, queries: list[str], budget: int) -> list[dict]:
    res = subprocess.run([sys.executable, "-c", STOCK, str(path), json.dumps(queries), str(budget)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("mode", "lora"), [("tied", False), ("decoupled", False), ("tied", True)])
def test_stock_transformers_reproduces_predict(tiny_model, tiny_tokenizer, tmp_path, mode, lora):
    tm = _tm(tiny_model, tiny_tokenizer, mode, lora)
    res = export_bank(tm, tmp_path / "x", merge_lora=True)
    assert res.tied == (mode == "tied") and res.lora == ("merged" if lora else "none")
    v = tm.model.vocab_size
    assert res.tokens == {"add": v, "get_weather": v + 1}
    got = _stock(res.path, QUERIES, 12)
    calls = 0
    for q, g in zip(QUERIES, got):
        want = tm.predict(q, max_new_tokens=12)
        assert g["prompt"] == tm.chat.prompt_ids([{"role": "user", "content": q}]), q
        assert g["ids"] == want.ids, q
        calls += bool(want.calls)
    assert len(QUERIES) >= 20 and calls > 0  # memory tokens were chosen, so their rows were exercised


def test_export_files_template_and_grammar(tiny_model, tiny_tokenizer, tmp_path):
    import xgrammar as xgr
    from transformers import AutoTokenizer

    tm = _tm(tiny_model, tiny_tokenizer, lora=True)
    res = export_bank(tm, tmp_path / "x")  # LoRA not merged: a peft adapter beside the weights
    assert res.lora == "adapter"
    assert (res.path / "adapter" / "adapter_config.json").is_file()
    meta = json.loads((res.path / TOOLS_FILE).read_text())
    assert [t["name"] for t in meta["tools"]] == ["add", "get_weather"]
    assert meta["tools"][0]["token"] == "<|tool:add|>" and meta["chat_template"] == "chatml"
    # the tool-call history renders as TokMem renders it for training and decoding
    tok = AutoTokenizer.from_pretrained(res.path)
    openai = [{"role": "user", "content": "add 2 and 3"},
              {"role": "assistant", "content": None, "tool_calls": [
                  {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a":2,"b":3}'}}]},
              {"role": "tool", "tool_call_id": "c1", "content": "5"}]
    ours = [openai[0], {"role": "assistant", "content": "", "calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
            {"role": "tool", "name": "add", "content": "5"}]
    ids = tok.apply_chat_template(openai, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert list(ids) == tm.chat.prompt_ids(ours)
    # the structural tag compiles with xgrammar and accepts a call after free text
    tag = json.loads((res.path / STRUCTURAL_TAG_FILE).read_text())
    grammar = xgr.Grammar.from_structural_tag(json.dumps(tag))
    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok))
    matcher = xgr.GrammarMatcher(xgr.GrammarCompiler(info).compile_grammar(grammar))
    text_ids = tok("sure <|tool:add|>", add_special_tokens=False)["input_ids"]
    assert text_ids[-1] == res.tokens["add"]
    for t in text_ids:
        assert matcher.accept_token(t)
    bad = tok("hello", add_special_tokens=False)["input_ids"][0]
    assert not matcher.accept_token(bad)  # inside the arguments only JSON is allowed


def test_export_errors(tiny_model, tiny_tokenizer, tmp_path):
    tm = _tm(tiny_model, tiny_tokenizer)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        export_bank(tm, tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    export_bank(tm, tmp_path / "full", overwrite=True)
    before = tm.model.base.get_input_embeddings().weight.shape
    assert before[0] == tm.model.vocab_size  # the live model is not touched
