"""Memory bank, wrapped model, encoding, training, save/load on a tiny random Llama."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from toydata import TOOLS, toy_records  # tests/toydata.py

from tokmem_agent import (
    BankFormatError,
    ConfigError,
    MemoryConfig,
    ModelMismatchError,
    ToolNotFoundError,
    TrainConfig,
    load_traces,
)
from tokmem_agent.chat import trace_conversation
from tokmem_agent.decoding.generate import DecodeSession, greedy_generate
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.model.memory import MemoryBank
from tokmem_agent.tokmem import TokMem
from tokmem_agent.training.dataset import IGNORE, encode_traces
from tokmem_agent.training.trainer import evaluate


@pytest.fixture()
def loaded(tiny_model, tiny_tokenizer) -> LoadedModel:
    return LoadedModel(tiny_model, tiny_tokenizer, "tiny-llama", tokenizer_fingerprint(tiny_tokenizer))


@pytest.fixture()
def tm(loaded) -> TokMem:
    return TokMem.create(TOOLS[:2], loaded)


FAST = dict(batch_size=4, progress=False, eval_fraction=0.0, autocast=None, no_call_share=0.0)


def base_state(tm: TokMem) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in tm.model.base.state_dict().items()}


# ----- memory bank ---------------------------------------------------------------------------------------
def test_bank_rows_follow_vocabulary(tm):
    v = tm.model.vocab_size
    assert tm.model.memory_id("get_weather") == v and tm.model.memory_id("add") == v + 1
    assert tm.model.total_vocab == v + 2
    with pytest.raises(ToolNotFoundError, match="no memory token"):
        tm.model.memory_id("nope")


def test_mean_init_is_mean_of_name_and_description_embeddings(tm):
    toks = tm.chat.text_ids("get weather: Weather for a city")
    expected = tm.model.base.get_input_embeddings().weight[toks].mean(0)
    assert torch.allclose(tm.bank.steer[0], expected)
    assert tm.bank.steer.dtype == torch.float32


@pytest.mark.parametrize("init", ["random", "orthogonal"])
def test_other_inits(loaded, init):
    tm = TokMem.create(TOOLS, loaded, memory=MemoryConfig(init=init))
    assert tm.bank.steer.shape == (4, loaded.model.config.hidden_size)
    assert torch.isfinite(tm.bank.steer).all()


def test_logits_extend_vocabulary_with_memory(tm):
    ids = torch.tensor([tm.chat.text_ids("hello") + [tm.model.memory_id("add")]])
    logits, _ = tm.model(ids)
    assert logits.shape[-1] == tm.model.vocab_size + 2
    h, _ = tm.model.hidden(ids)
    assert torch.allclose(logits[0, -1, -2:], h[0, -1] @ tm.bank.steer.t(), atol=1e-5)
    # the memory row is what the model sees as input at that position
    assert torch.equal(tm.model.embed(ids)[0, -1], tm.bank.steer[1])


def test_decoupled_mode_separates_address_and_steering(loaded):
    tm = TokMem.create(TOOLS, loaded, memory=MemoryConfig(mode="decoupled"))
    assert tm.bank.address is not tm.bank.steer
    with torch.no_grad():
        tm.bank.address_.zero_()
    ids = torch.tensor([tm.chat.text_ids("hi")])
    logits, _ = tm.model(ids)
    assert torch.all(logits[0, -1, -4:] == 0)


def test_renormalize_sets_active_rows_to_mean_inactive_norm():
    bank = MemoryBank(8)
    bank.add(["a", "b", "c"], torch.randn(3, 8))
    bank.steer.data[0] *= 3
    active = torch.tensor([False, False, True])
    target = bank.steer.data[:2].norm(dim=-1).mean()
    before_inactive = bank.steer.data[:2].clone()
    bank.renormalize(active)
    assert torch.allclose(bank.steer.data[2].norm(), target)
    assert torch.equal(bank.steer.data[:2], before_inactive)
    bank.renormalize(torch.tensor([True, True, True]))  # no inactive rows: nothing to match
    assert torch.allclose(bank.steer.data[2].norm(), target)


def test_renormalize_cap_only_shrinks_rows_longer_than_the_mean():
    bank = MemoryBank(8)
    bank.add(["a", "b", "c", "d"], torch.randn(4, 8))
    target = bank.steer.data[:2].norm(dim=-1).mean()
    bank.steer.data[2] *= 0.1 * target / bank.steer.data[2].norm()  # short: kept as is
    bank.steer.data[3] *= 5 * target / bank.steer.data[3].norm()  # long: shrunk to the mean
    short = bank.steer.data[2].clone()
    bank.renormalize(torch.tensor([False, False, True, True]), cap=True)
    assert torch.equal(bank.steer.data[2], short)
    assert torch.allclose(bank.steer.data[3].norm(), target)
    with pytest.raises(ConfigError, match="renormalize"):
        TrainConfig(renormalize="sometimes")  # type: ignore[arg-type]


def test_bank_rejects_duplicates_and_bad_shapes():
    bank = MemoryBank(4)
    bank.add(["a"], torch.zeros(1, 4))
    with pytest.raises(ConfigError, match="already"):
        bank.add(["a"], torch.zeros(1, 4))
    with pytest.raises(ConfigError, match="init rows"):
        bank.add(["b"], torch.zeros(2, 4))


# ----- encoding -----------------------------------------------------------------------------------------
def test_loss_mask_covers_exactly_the_target(tm):
    [trace] = load_traces([toy_records()[-1]])
    [ex], skipped = encode_traces(tm.chat, [trace], max_length=4096)
    assert not skipped
    targets = [i for i, lab in zip(ex.ids, ex.labels) if lab != IGNORE]
    expected = (tm.chat.call_ids(trace.calls[0]) + tm.chat.call_ids(trace.calls[1]) + [tm.chat.eot_id])
    assert targets == expected
    # the masked part is exactly the prompt the model sees at inference
    first = next(i for i, lab in enumerate(ex.labels) if lab != IGNORE)
    assert ex.ids[:first] == tm.chat.prompt_ids(trace.messages)
    # and the targets are one contiguous span
    span = [i for i, lab in enumerate(ex.labels) if lab != IGNORE]
    assert span == list(range(span[0], span[-1] + 1))


def test_chain_reading_targets_calls_and_answer(tm):
    rec = {"query": "weather in Oslo then add", "tools": TOOLS,
           "answers": [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                       {"name": "add", "arguments": {"a": 1, "b": 2}}],
           "results": [{"temp": 3}, 3], "between": [[]], "response": "It is 3 degrees; the sum is 3."}
    [trace] = load_traces([rec])
    msgs = trace_conversation(trace, "chain")
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    enc = tm.chat.encode(msgs)
    tgt = [i for i, m in zip(enc.ids, enc.targets) if m]
    answer = tm.chat.text_ids("It is 3 degrees; the sum is 3.")
    expected = (tm.chat.call_ids(trace.calls[0]) + [tm.chat.eot_id] + tm.chat.call_ids(trace.calls[1])
                + [tm.chat.eot_id] + answer + [tm.chat.eot_id])
    assert tgt == expected
    assert tm.chat.text_ids('{"temp":3}')[0] in enc.ids  # the result is in the context
    # decisions: each turn's first token (call, call, answer) and the end-of-turn after each call turn
    dec = [enc.ids[p] for p in enc.decisions]
    mem = tm.chat.memory_id
    assert dec == [mem("get_weather"), tm.chat.eot_id, mem("add"), tm.chat.eot_id, answer[0]]
    assert all(enc.targets[p] for p in enc.decisions)


def test_decision_weight_scales_only_decision_targets(tm):
    from tokmem_agent.training.dataset import collate, encode_traces

    rec = {"query": "weather in Oslo then add", "tools": TOOLS,
           "answers": [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                       {"name": "add", "arguments": {"a": 1, "b": 2}}],
           "results": [{"temp": 3}, 3], "between": [[]], "response": "It is 3 degrees."}
    [ex], _ = encode_traces(tm.chat, load_traces([rec]), max_length=512, reading="chain")
    plain = collate([ex], 0)
    assert "weights" not in plain
    batch = collate([ex], 0, decision_weight=4.0)
    w = batch["weights"][0]
    assert sorted(torch.nonzero(w != 1.0).flatten().tolist()) == sorted(ex.decisions) and len(ex.decisions) == 5
    with torch.no_grad():
        unweighted = tm.model.target_loss(**plain)
        weighted = tm.model.target_loss(**batch)
        h, _ = tm.model.hidden(batch["input_ids"])
        per_tok = torch.nn.functional.cross_entropy(tm.model.logits(h[0, :-1]), batch["labels"][0, 1:],
                                                    ignore_index=-100, reduction="none")  # [T-1]
    expected = (per_tok * w[1:]).sum()
    assert torch.allclose(weighted["loss_sum"], expected, rtol=1e-4)
    assert float(weighted["n"]) == float(unweighted["n"]) + 3.0 * 5
    assert torch.allclose(unweighted["loss_sum"], per_tok.sum(), rtol=1e-4)


def test_truncation_drops_oldest_context_never_the_target(tm):
    long_msgs = []
    for i in range(12):
        long_msgs += [{"role": "user", "content": f"old question {i} " * 5},
                      {"role": "assistant", "content": f"old answer {i} " * 5}]
    rec = {"messages": long_msgs + [{"role": "user", "content": "weather in Rome"}], "tools": TOOLS,
           "answers": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}
    [trace] = load_traces([rec])
    full = tm.chat.encode(trace_conversation(trace))
    enc = tm.chat.truncated(trace_conversation(trace), 200)
    assert enc is not None and len(enc.ids) <= 200 and enc.n_dropped_messages > 0
    assert [i for i, m in zip(enc.ids, enc.targets) if m] == [i for i, m in zip(full.ids, full.targets) if m]
    assert [enc.ids[p] for p in enc.decisions] == [full.ids[p] for p in full.decisions]
    assert tm.chat.truncated(trace_conversation(trace), 6) is None  # target alone does not fit: skipped


# ----- training -----------------------------------------------------------------------------------------
def test_training_moves_only_active_rows_and_never_the_backbone(loaded):
    tm = TokMem.create(TOOLS, loaded)
    before_base = base_state(tm)
    before_rows = tm.bank.steer.detach().clone()
    traces = [t for t in load_traces(toy_records()) if {c.name for c in t.calls} <= {"add"}]
    tm.train(traces, TrainConfig(epochs=1, renormalize=False, **FAST))
    after = tm.bank.steer.detach()
    i_add = tm.bank.index("add")
    for i in range(4):
        if i == i_add:
            assert not torch.equal(after[i], before_rows[i])
        else:
            assert torch.equal(after[i], before_rows[i])  # bit-identical
    for k, v in tm.model.base.state_dict().items():
        assert torch.equal(v, before_base[k]), k
    assert all(p.grad is None for p in tm.model.base.parameters())


def test_renormalization_during_training(loaded):
    tm = TokMem.create(TOOLS, loaded)
    traces = [t for t in load_traces(toy_records()) if {c.name for c in t.calls} <= {"add"}]
    tm.train(traces, TrainConfig(epochs=1, lr=0.1, **FAST))
    norms = tm.bank.steer.detach().norm(dim=-1)
    i_add = tm.bank.index("add")
    others = torch.stack([norms[i] for i in range(4) if i != i_add]).mean()
    assert torch.allclose(norms[i_add], others, rtol=1e-5)


def test_training_adds_tokens_for_new_tools_in_data(tm):
    assert tm.tool_names == ["get_weather", "add"]
    tm.train(load_traces(toy_records()[:8]), TrainConfig(epochs=1, **FAST))
    assert set(tm.tool_names) == {t["name"] for t in TOOLS}


def test_toy_set_reaches_90_percent_tool_selection(smollm2_tokenizer, make_tiny_model):
    # A random 2-layer model gives memory rows little to steer with, so on it the tied row is pulled mostly
    # by the argument tokens; the decoupled address rows learn selection cleanly. Tied mode on the real
    # model is covered by tests/integration/test_default_model_training.py. The real tokenizer is used
    # here: with the 320-token test tokenizer the queries' words share so few tokens' worth of signal that
    # a random 32-dim model separates them poorly (0.26-0.88 across seeds).
    tok = smollm2_tokenizer
    loaded = LoadedModel(make_tiny_model(len(tok)), tok, "tiny-llama", tokenizer_fingerprint(tok))
    tm = TokMem.create(TOOLS, loaded, memory=MemoryConfig(mode="decoupled"))
    traces = load_traces(toy_records())
    result = tm.train(traces, TrainConfig(epochs=12, lr=5e-2, seed=0, **FAST))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    # every tool position, teacher-forced (the multi-call record's second tool included)
    examples, _ = encode_traces(tm.chat, traces, max_length=1024)
    assert evaluate(tm.model, examples, pad_id=0, batch_size=8)["eval_tool_acc"] >= 0.9
    # free greedy decoding picks the right first tool (the random model cannot learn the argument text,
    # so what follows the first call is noise)
    firsts = [tm.predict(t.messages, max_new_tokens=1).calls for t in traces]
    correct = sum(bool(c) and c[0].name == t.tool_names[0] for c, t in zip(firsts, traces))
    assert correct / len(traces) >= 0.9, f"{correct}/{len(traces)}"


def test_heldout_eval_reports_tool_selection(loaded):
    tm = TokMem.create(TOOLS, loaded)
    seen = []
    result = tm.train(load_traces(toy_records()), TrainConfig(epochs=1, batch_size=4, progress=False,
                                                             eval_fraction=0.2, autocast=None, no_call_share=0.0),
                      callbacks=[seen.append])
    assert result.n_eval == 8 and seen == result.history
    # the reported figure is the share of held-out memory-token targets whose logit argmax (over the whole
    # vocabulary) is the gold token, recomputed here by hand with the final rows (one epoch: same weights)
    from tokmem_agent.training.dataset import encode_traces, split_heldout

    examples, _ = encode_traces(tm.chat, load_traces(toy_records()), max_length=1024)
    _, held = split_heldout(examples, 0.2, 200, 0)
    right = total = 0
    with torch.no_grad():
        for ex in held:
            logits, _ = tm.model(torch.tensor([ex.ids]))  # [1, T, V+N]
            for t in range(1, len(ex.ids)):
                if ex.labels[t] >= tm.model.vocab_size:  # a memory-token target, predicted at t-1
                    total += 1
                    right += int(logits[0, t - 1].argmax()) == ex.labels[t]
    assert total >= 8
    assert abs(result.history[0]["eval_tool_acc"] - right / total) < 1e-9, (result.history[0], right, total)


# ----- save / load ----------------------------------------------------------------------------------------
def test_save_load_gives_identical_logits(tm, loaded, tmp_path):
    tm.train(load_traces(toy_records()[:8]), TrainConfig(epochs=1, **FAST))
    tm.save(tmp_path / "bank")
    tm2 = TokMem.load(tmp_path / "bank", loaded)
    ids = torch.tensor([tm.chat.prompt_ids([{"role": "user", "content": "weather in Rome"}])
                        + [tm.model.memory_id("add")]])
    assert tm2.tool_names == tm.tool_names
    assert torch.equal(tm.model(ids)[0], tm2.model(ids)[0])
    cfg = json.loads((tmp_path / "bank" / "tokmem_config.json").read_text())
    assert cfg["format_version"] == 1 and cfg["base_model"] == "tiny-llama"
    assert {"hash", "name", "parameters"} <= set(cfg["tools"][0])


def test_save_is_atomic_and_replaces(tm, tmp_path):
    tm.save(tmp_path / "bank")
    tm.save(tmp_path / "bank")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]


def test_mismatched_model_is_refused(tm, tmp_path, tiny_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    tm.save(tmp_path / "bank")
    cfg = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=48, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    other = LoadedModel(LlamaForCausalLM(cfg), tiny_tokenizer, "other-model", tokenizer_fingerprint(tiny_tokenizer))
    with pytest.raises(ModelMismatchError, match=r"tiny-llama.*other-model.*hidden size"):
        TokMem.load(tmp_path / "bank", other)


def test_corrupt_or_missing_bank_files(tm, loaded, tmp_path):
    with pytest.raises(BankFormatError, match="no memory bank"):
        TokMem.load(tmp_path / "nothing", loaded)
    tm.save(tmp_path / "bank")
    (tmp_path / "bank" / "memory.safetensors").write_bytes(b"garbage")
    with pytest.raises(BankFormatError, match="corrupt"):
        TokMem.load(tmp_path / "bank", loaded)
    tm.save(tmp_path / "bank")
    cfg_path = tmp_path / "bank" / "tokmem_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tools"] = cfg["tools"][:1]
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(BankFormatError, match="shape"):
        TokMem.load(tmp_path / "bank", loaded)
    cfg_path.write_text("{not json")
    with pytest.raises(BankFormatError, match="line 1"):
        TokMem.load(tmp_path / "bank", loaded)


def test_require_tools_names_missing_and_changed(tm):
    with pytest.raises(ToolNotFoundError, match="play_song"):
        tm.require_tools([TOOLS[3]])
    changed = copy.deepcopy(TOOLS[1])
    changed["parameters"]["properties"]["c"] = {"type": "integer"}
    with pytest.raises(ModelMismatchError, match="schema changed"):
        tm.require_tools([changed])
    [t] = tm.require_tools([{**TOOLS[1]}])
    assert t.name == "add"


def test_checkpoint_and_resume(loaded, tmp_path):
    traces = load_traces(toy_records())
    # constant lr: a 1-epoch run's decay would differ from the 2-epoch run's (the lr follows step / total steps)
    sched = dict(schedule="constant", warmup=0.0)
    cfg = TrainConfig(epochs=2, checkpoint_every=3, **sched, **FAST)
    full = TokMem.create(TOOLS, loaded)
    full.train(traces, cfg, out_dir=tmp_path / "a")
    # a run that stops after epoch 1, then resumes, ends where the uninterrupted one ends
    part = TokMem.create(TOOLS, loaded)
    part.train(traces, TrainConfig(epochs=1, checkpoint_every=3, **sched, **FAST), out_dir=tmp_path / "b")
    assert (tmp_path / "b" / "checkpoint" / "trainer_state.pt").exists()
    resumed = TokMem.load(tmp_path / "b" / "checkpoint", loaded)
    resumed.train(traces, cfg, out_dir=tmp_path / "b", resume=True)
    assert torch.allclose(resumed.bank.steer, full.bank.steer, atol=1e-6)
    with pytest.raises(BankFormatError, match="nothing to resume"):
        TokMem.create(TOOLS, loaded).train(traces, cfg, out_dir=tmp_path / "c", resume=True)


def test_lora_adaptation_round_saves_and_loads(loaded, tmp_path):
    from tokmem_agent import LoraSettings

    tm = TokMem.create(TOOLS, loaded)
    base_before = {k: v.clone() for k, v in tm.model.base.state_dict().items() if "lora_" not in k}
    tm.train(load_traces(toy_records()[:8]), TrainConfig(epochs=1, lora=LoraSettings(r=2, target_modules=["q_proj", "v_proj"]),
                                                         lora_lr=1e-2, **FAST))
    assert tm.lora_parameters() and any(p.abs().sum() > 0 for p in tm.lora_parameters())
    for k, v in tm.model.base.state_dict().items():
        if "lora_" not in k:
            assert torch.equal(v, base_before[k.replace(".base_layer", "")]), k
    tm.save(tmp_path / "bank")
    assert (tmp_path / "bank" / "adapter" / "adapter_model.safetensors").exists()
    # loading it (twice) onto the same base model reuses the injected adapter modules, never stacks them
    n_lora = sum("lora_A" in n for n, _ in loaded.model.named_modules())
    x = torch.tensor([[5, 6, 7, 8]])
    want = tm.model.logits(tm.model.hidden(x)[0])
    for _ in range(2):
        back = TokMem.load(tmp_path / "bank", loaded)
        assert sum("lora_A" in n for n, _ in loaded.model.named_modules()) == n_lora
        assert torch.allclose(back.model.logits(back.model.hidden(x)[0]), want)


def test_lora_adapter_is_in_peft_format_and_old_banks_still_load(loaded, tmp_path, make_tiny_model):
    import json

    from peft import PeftModel
    from safetensors.torch import load_file, save_file

    from tokmem_agent import LoraSettings

    tm = TokMem.create(TOOLS, loaded)
    qv = LoraSettings(r=2, target_modules=["q_proj", "v_proj"])  # what banks written before carried
    tm.train(load_traces(toy_records()[:8]), TrainConfig(epochs=1, lora=qv, lora_lr=1e-2, **FAST))
    tm.save(tmp_path / "bank")
    adir = tmp_path / "bank" / "adapter"
    cfg = json.loads((adir / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 2 and cfg["lora_alpha"] == 16
    # stock peft, on a fresh copy of the same base weights, reads it and gives the bank's text logits
    fresh = make_tiny_model(loaded.model.config.vocab_size)
    fresh.load_state_dict({k.replace(".base_layer", ""): v for k, v in loaded.model.state_dict().items()
                           if "lora_" not in k})
    peft_model = PeftModel.from_pretrained(fresh, str(adir)).eval()
    x = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        want = tm.model.logits(tm.model.hidden(x)[0])[..., : tm.model.vocab_size]
        got = peft_model(input_ids=x).logits
    assert torch.allclose(got, want, atol=1e-5)
    # a bank written before (our own adapter_config, unprefixed keys) still loads, to the same logits
    state = {k.removeprefix("base_model.model."): v for k, v in load_file(str(adir / "adapter_model.safetensors")).items()}
    save_file(state, str(adir / "adapter_model.safetensors"))
    (adir / "adapter_config.json").write_text(json.dumps({"r": 2, "alpha": 16, "dropout": 0.0,
                                                          "target_modules": ["q_proj", "v_proj"]}))
    back = TokMem.load(tmp_path / "bank", loaded)
    assert back.lora == LoraSettings(r=2, alpha=16, target_modules=["q_proj", "v_proj"])
    assert torch.allclose(back.model.logits(back.model.hidden(x)[0])[..., : tm.model.vocab_size], want, atol=1e-6)


# ----- generation ---------------------------------------------------------------------------------------
def test_kv_cached_generation_equals_uncached(tm):
    prompt = tm.chat.prompt_ids([{"role": "user", "content": "weather in Rome"}])
    gen = greedy_generate(tm.model, prompt, max_new_tokens=12, stop_ids=set())
    ids = list(prompt)
    for _ in range(12):  # recompute the whole sequence each step, no cache
        logits, _ = tm.model(torch.tensor([ids]))
        ids.append(int(logits[0, -1].argmax()))
    assert gen.ids == ids[len(prompt):]


def test_session_feeds_memory_tokens(tm):
    s = DecodeSession(tm.model)
    prompt = tm.chat.prompt_ids([{"role": "user", "content": "hi"}])
    s.feed(prompt)
    step = s.feed([tm.model.memory_id("add")])
    full, _ = tm.model(torch.tensor([prompt + [tm.model.memory_id("add")]]))
    assert torch.allclose(step, full[0, -1], atol=1e-4)


def test_split_calls(tm):
    m = tm.model.memory_id
    ids = tm.chat.text_ids("ok") + [m("add")] + tm.chat.text_ids('{"a":1}') + [m("get_weather")] + [tm.chat.eot_id]
    text, calls = tm.split_calls(ids)
    assert text == "ok" and [(c.name, c.arguments) for c in calls] == [("add", '{"a":1}'), ("get_weather", "")]


def test_train_config_defaults_and_the_recipe():
    from tokmem_agent import LoraSettings
    from tokmem_agent.config import ALL_PROJECTIONS

    plain = TrainConfig()
    assert plain.lora is None  # library callers opt in to the adaptation round
    assert (plain.decision_weight, plain.lora_lr, plain.epochs, plain.batch_size) == (5.0, 1e-3, 2, 4)
    assert LoraSettings().target_modules == list(ALL_PROJECTIONS)
    assert LoraSettings().target_modules is not LoraSettings().target_modules
    recipe = TrainConfig.recipe()
    assert recipe.lora == LoraSettings(r=8, alpha=16, target_modules=list(ALL_PROJECTIONS))
    assert (recipe.decision_weight, recipe.lora_lr, recipe.no_call_share, recipe.warmup, recipe.schedule,
            recipe.epochs, recipe.batch_size) == (5.0, 1e-3, 0.1, 0.1, "linear", 2, 4)
    assert TrainConfig.recipe(lora=None, epochs=1) == TrainConfig(epochs=1)
    with pytest.raises(ConfigError, match="decision_weight"):
        TrainConfig.recipe(decision_weight=0)


def test_decision_weight_changes_chain_training_and_is_validated(loaded):
    recs = [{"query": f"weather in Oslo then add {i}", "tools": TOOLS,
             "answers": [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                         {"name": "add", "arguments": {"a": i, "b": 2}}],
             "results": [{"temp": 3}, i + 2], "between": [[]], "response": f"3 degrees; {i + 2}."} for i in range(4)]
    traces = load_traces(recs)
    rows = []
    for w in (1.0, 5.0):
        tm = TokMem.create(TOOLS, loaded)
        res = tm.train(traces, TrainConfig(epochs=1, decision_weight=w, renormalize=False, **FAST), reading="chain")
        assert res.steps == 1
        rows.append(tm.bank.steer.detach().clone())
    assert not torch.equal(rows[0], rows[1])  # the weight reaches the gradient
    with pytest.raises(ConfigError, match="decision_weight"):
        TrainConfig(decision_weight=0)


@pytest.mark.parametrize("mode", ["tied", "decoupled"])
def test_frozen_prefix_gives_the_same_loss_and_gradients(loaded, mode):
    from tokmem_agent.training.dataset import collate, encode_traces

    tm = TokMem.create(TOOLS, loaded, memory=MemoryConfig(mode=mode))
    recs = toy_records()[:3] + [{"messages": [{"role": "user", "content": "a much longer question " * 6}],
                                 "tools": TOOLS, "answers": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}]
    examples, _ = encode_traces(tm.chat, load_traces(recs), max_length=512)
    batch = collate(examples, 0, decision_weight=3.0)  # right-padded, prompts of different lengths
    assert tm.model.frozen_prefix_len(batch["input_ids"]) > 0
    mats = tm.bank.matrices()
    out = {}
    kept = None
    for frozen in ("no", "fresh", "reused", "reused again"):
        for m in mats:
            m.requires_grad_(True)
            m.grad = None
        res = tm.model.target_loss(**batch, frozen_prefix=kept if frozen.startswith("reused") else frozen != "no")
        (res["loss_sum"] / res["n"]).backward()
        out[frozen] = (res["loss_sum"].detach(), [m.grad.clone() for m in mats])
        if frozen == "fresh":
            kept = res["prefix"]
            sizes = [k.shape[2] for k, _ in kept.kv]
    assert kept is not None and kept.length == tm.model.frozen_prefix_len(batch["input_ids"])
    assert [k.shape[2] for k, _ in kept.kv] == sizes == [kept.length] * len(sizes)  # reuse never grows it
    for frozen in ("fresh", "reused", "reused again"):
        assert torch.allclose(out["no"][0], out[frozen][0], rtol=1e-4)
        for g0, g1 in zip(out["no"][1], out[frozen][1]):
            assert g1.abs().sum() > 0 and torch.allclose(g0, g1, rtol=1e-3, atol=1e-6)


def test_prefix_cache_reuse_across_epochs_trains_the_same_rows(loaded, monkeypatch):
    from tokmem_agent.training import trainer

    traces = load_traces(toy_records())
    cfg = TrainConfig(epochs=3, **FAST)
    hits = []
    real_get = trainer._PrefixCache.get
    monkeypatch.setattr(trainer._PrefixCache, "get", lambda self, k: hits.append(real_get(self, k)) or hits[-1])
    cached = TokMem.create(TOOLS, loaded)
    cached.train(traces, cfg)
    n_batches = len(hits) // 3
    assert n_batches and all(h is None for h in hits[:n_batches]) and all(h is not None for h in hits[n_batches:])
    monkeypatch.setattr(trainer._PrefixCache, "put", lambda self, k, p: None)  # same schedule, no reuse
    plain = TokMem.create(TOOLS, loaded)
    plain.train(traces, cfg)
    assert torch.allclose(cached.bank.steer, plain.bank.steer, atol=1e-5)
    assert not torch.equal(cached.bank.steer, TokMem.create(TOOLS, loaded).bank.steer)
    with pytest.raises(ConfigError, match="prefix_cache_mb"):
        TrainConfig(prefix_cache_mb=-1)


def test_a_base_model_with_other_weights_is_refused(tmp_path, make_tiny_model, tiny_tokenizer):
    """Same shapes and tokenizer, other weights: not the model the bank was trained on (issue 14)."""
    from tokmem_agent.errors import ModelMismatchError
    from tokmem_agent.model.loader import same_weights, weight_sample

    tok = tiny_tokenizer
    a = LoadedModel(make_tiny_model(len(tok), seed=0), tok, "tiny", tokenizer_fingerprint(tok))
    tm = TokMem.create(TOOLS[:1], a)
    tm.save(tmp_path / "bank")
    TokMem.load(tmp_path / "bank", LoadedModel(make_tiny_model(len(tok), seed=0), tok, "tiny",
                                               tokenizer_fingerprint(tok)))  # the same weights: fine
    other = LoadedModel(make_tiny_model(len(tok), seed=1), tok, "tiny", tokenizer_fingerprint(tok))
    with pytest.raises(ModelMismatchError, match="other weights"):
        TokMem.load(tmp_path / "bank", other)
    s = weight_sample(a.model)
    assert same_weights(weight_sample(a.model.to(torch.bfloat16)), s)  # bf16 rounding is tolerated
    a.model.float()


def test_choice_targets_are_argument_values_not_copied(tm):
    from tokmem_agent.chat import compact_json, value_spans
    from tokmem_agent.training.dataset import collate, encode_traces

    args = {"expression": "12 / 4", "unit": "GBP", "n": 3, "tags": ["a", "b"]}
    text, spans = value_spans(args)
    assert text == compact_json(args)
    assert [text[a:b] for a, b in spans] == ["12 / 4", "GBP", "3", '["a","b"]']
    tools = [{"name": "get_weather", "description": "evaluate", "parameters": {"type": "object", "properties": {
        "expression": {"type": "string"}, "unit": {"type": "string"}}}}]
    rec = {"query": "what is 12 divided by 4 in pounds", "tools": tools,
           "answers": [{"name": "get_weather", "arguments": {"expression": "12 / 4", "unit": "GBP"}}]}
    [trace] = load_traces([rec])
    enc = tm.chat.encode(trace_conversation(trace), with_choices=True)
    assert enc.choices and all(enc.targets[p] for p in enc.choices)
    picked = "".join(tm.tokenizer.decode([enc.ids[p]]) for p in enc.choices)
    assert "/" in picked and "12" not in picked and "expression" not in picked and "unit" not in picked
    assert not tm.chat.encode(trace_conversation(trace)).choices  # only asked for in training
    [ex], _ = encode_traces(tm.chat, [trace], max_length=512, with_choices=True)
    assert ex.choices == enc.choices
    assert not encode_traces(tm.chat, [trace], max_length=512)[0][0].choices  # only when asked for
    w = collate([ex], 0, choice_weight=3.0)["weights"][0]
    assert sorted(torch.nonzero(w == 3.0).flatten().tolist()) == sorted(ex.choices)
    # a value the user wrote is a copy, not a choice
    rec2 = {**rec, "query": "what is 12 / 4 in GBP"}
    enc2 = tm.chat.encode(trace_conversation(load_traces([rec2])[0]), with_choices=True)
    assert "/" not in "".join(tm.tokenizer.decode([enc2.ids[p]]) for p in enc2.choices)


def test_training_applies_the_choice_weight(loaded):
    # "three and five": the argument digits are written nowhere before them, so they are choice targets
    recs = [{"query": f"add {w} and five", "answers": [{"name": "add", "arguments": {"a": n, "b": 5}}]}
            for w, n in (("three", 3), ("four", 4), ("six", 6), ("seven", 7))]
    rows = []
    for weight in (1.0, 10.0):
        tm = TokMem.create(TOOLS, loaded)
        tm.train(load_traces([{**r, "tools": TOOLS} for r in recs]),
                 TrainConfig(epochs=1, seed=0, choice_weight=weight, **FAST))
        rows.append(tm.bank.steer.detach().clone())
    assert not torch.allclose(rows[0], rows[1])


def test_choice_weight_must_be_positive():
    with pytest.raises(ConfigError, match="choice_weight"):
        TrainConfig(choice_weight=0.0)
