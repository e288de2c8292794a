"""Every tensor the library makes lives on the model's device.

Run on the CPU with torch's *default* device switched to ``meta``: a tensor created without an explicit
device (``torch.zeros(n)``) then lands on ``meta`` and the first operation that mixes it with the model's
CPU tensors fails, while tensors made with ``device=model.device`` are real. So each path below fails if it
creates a bank row, mask, frozen-row copy, anchor, decode id, memory bias, constraint index or LoRA weight
without the model's device — exactly what breaks on a GPU, found without one.
"""

from __future__ import annotations

import pytest
import torch
from toydata import TOOLS, toy_records  # tests/toydata.py

from tokmem_agent import ControllerConfig, LoraSettings, MemoryConfig, TokMemAgent, TrainConfig
from tokmem_agent.decoding.calibrate import calibrate_call_threshold
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import load_traces

FAST = dict(epochs=1, batch_size=4, progress=False, autocast=None, eval_fraction=0.25, no_call_share=0.0)


def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: the first
        b: the second
    """
    return a * b


@pytest.fixture()
def loaded(tiny_model, tiny_tokenizer):
    return LoadedModel(tiny_model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer))


def _preimport() -> None:
    """Third-party modules make module-level tensors at import (xgrammar's full mask): import them first."""
    import peft  # noqa: F401
    import xgrammar  # noqa: F401

    import evals.methods  # noqa: F401
    import tokmem_agent.decoding.constraint  # noqa: F401
    import tokmem_agent.integrations.langchain  # noqa: F401


@pytest.fixture()
def meta_default():
    """Built before: the model (on the CPU). Inside: tensors without a device go to ``meta``."""
    _preimport()
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def test_the_check_catches_a_tensor_made_without_the_device(loaded, meta_default):
    tm = TokMem.create(TOOLS, loaded)
    with pytest.raises((RuntimeError, NotImplementedError)):
        tm.model.hidden(torch.tensor([[1, 2, 3]]))  # no device=: meta ids against CPU weights
    with pytest.raises((RuntimeError, NotImplementedError)):
        float(tm.model.logits(tm.model.hidden(torch.tensor([[1, 2]], device="cpu"))[0])[0, -1] + torch.zeros(1))
    h, _ = tm.model.hidden(torch.tensor([[1, 2, 3]], device="cpu"))
    assert h.device.type == "cpu"


def test_create_train_save_load_predict_on_the_model_device(loaded, meta_default, tmp_path):
    traces = load_traces(toy_records()[:8])
    for init in ("mean", "random", "orthogonal"):
        assert TokMem.create(TOOLS, loaded, memory=MemoryConfig(init=init)).bank.steer.device.type == "cpu"
    tm = TokMem.create(TOOLS, loaded)
    res = tm.train(traces, TrainConfig(**FAST, anchors_per_tool=2))
    assert res.steps > 0 and tm.bank.steer.device.type == "cpu" and tm.bank.steer.dtype == torch.float32
    tm.save(tmp_path / "bank")
    back = TokMem.load(tmp_path / "bank", loaded)
    assert back.bank.steer.device.type == "cpu"
    assert back.predict("weather in Rome", max_new_tokens=4).ids
    cal = calibrate_call_threshold(back, traces + load_traces([{"query": "hello", "tools": TOOLS, "answers": []}]),
                                   progress=False)
    assert cal.call.threshold is not None
    res = back.register([multiply], None)  # synthetic traces, anchors, renormalisation
    assert "multiply" in res.added and back.bank.steer.device.type == "cpu"


def test_decoupled_rows_and_no_call_negatives(loaded, meta_default):
    tm = TokMem.create(TOOLS, loaded, memory=MemoryConfig(mode="decoupled"))
    tm.train(load_traces(toy_records()[:8]), TrainConfig(**{**FAST, "no_call_share": 0.25}))
    assert tm.bank.address.device.type == "cpu"


def test_lora_round_on_the_model_device(make_tiny_model, tiny_tokenizer):
    model = make_tiny_model(len(tiny_tokenizer))
    loaded = LoadedModel(model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer))
    _preimport()
    torch.set_default_device("meta")
    try:
        tm = TokMem.create(TOOLS, loaded)
        tm.train(load_traces(toy_records()[:8]), TrainConfig(**FAST, lora=LoraSettings(r=2)))
        assert {p.device.type for p in tm.lora_parameters()} == {"cpu"}
    finally:
        torch.set_default_device(None)


def test_agent_chat_model_and_eval_methods_on_the_model_device(loaded, meta_default):
    from evals.methods import KeywordRouter, KeywordRouterMethod, TokMemMethod, tool_inventory
    from tokmem_agent.integrations.langchain import ChatTokMem

    tm = TokMem.create([*TOOLS, multiply], loaded)
    for constrained in (True, False):
        r = TokMemAgent(tm, [multiply], ControllerConfig(constrained=constrained, max_new_tokens=24)).run("multiply 2 and 3")
        assert r.outcome in ("answer", "token_budget", "max_steps")
    r = TokMemAgent(tm, [multiply], ControllerConfig(max_new_tokens=24, call_threshold=0.0)).run("multiply 2 and 3")
    assert r.call_prob is not None
    assert ChatTokMem(tm=tm, max_tokens=6).invoke("hi").content is not None
    traces = load_traces(toy_records()[:6])
    assert TokMemMethod(tm, max_new_tokens=8).predict(traces[0]).generated_tokens > 0
    router = KeywordRouter().fit(traces)
    KeywordRouterMethod(loaded, tool_inventory(traces), router, max_new_tokens=8).predict(traces[0])


def test_batched_paths_on_the_model_device(loaded, meta_default):
    """Continuous batching (rows added to and dropped from a BatchSession), the batched predict and eval."""
    from evals.methods import TokMemMethod

    tm = TokMem.create([*TOOLS, multiply], loaded)
    agent = TokMemAgent(tm, [multiply], ControllerConfig(max_new_tokens=12, max_steps=2))
    runs = agent.run_many(["multiply 2 and 3", "hi", "multiply 4 and 5"], tool_choice="any", batch_size=2)
    assert [r.outcome for r in runs] and all(r.generated_tokens > 0 for r in runs)
    assert len(tm.predict(["hi", "weather in Rome", "add 1 and 2"], max_new_tokens=4, batch_size=2)) == 3
    traces = load_traces(toy_records()[:5])
    assert len(TokMemMethod(tm, max_new_tokens=6).predict_many(traces, batch_size=2)) == 5
