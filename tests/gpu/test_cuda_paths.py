"""The library on a CUDA device (skipped without one): train, register, predict, batched predict, an agent
run, eval and the server's engine, on the tiny model and on a randomly initialised model of SmolLM2-135M's
configuration, bf16 backbone with float32 memory rows. Run where a GPU is lent:

    python -m pytest -q tests/gpu
"""

from __future__ import annotations

import pytest
import torch
from toydata import TOOLS, toy_records  # tests/toydata.py

from tokmem_agent import ControllerConfig, LoraSettings, TokMemAgent, TrainConfig
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import load_traces

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FAST = {"epochs": 1, "batch_size": 4, "progress": False, "eval_fraction": 0.25, "no_call_share": 0.0}

#: SmolLM2-135M-Instruct's shape (random weights: the GGUF is not on a bare GPU machine)
SMOLLM2 = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
           "num_key_value_heads": 3, "rope_theta": 100000.0, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5}


def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: the first
        b: the second
    """
    return a * b


@pytest.fixture(params=["tiny", "smollm2-shape"])
def loaded(request, make_tiny_model, tiny_tokenizer):
    overrides = {} if request.param == "tiny" else SMOLLM2
    model = make_tiny_model(len(tiny_tokenizer), **overrides).to("cuda", torch.bfloat16)
    return LoadedModel(model, tiny_tokenizer, request.param, tokenizer_fingerprint(tiny_tokenizer))


def test_train_register_predict_on_cuda(loaded, tmp_path):
    tm = TokMem.create(TOOLS, loaded)
    assert tm.bank.steer.device.type == "cuda" and tm.bank.steer.dtype == torch.float32
    traces = load_traces(toy_records()[:12])
    res = tm.train(traces, TrainConfig(**FAST, lora=LoraSettings(r=2)))
    assert res.steps > 0 and tm.bank.steer.dtype == torch.float32
    assert {p.device.type for p in tm.lora_parameters()} == {"cuda"}
    tm.save(tmp_path / "bank")
    back = TokMem.load(tmp_path / "bank", loaded)
    one = back.predict("weather in Rome", max_new_tokens=6)
    many = back.predict(["weather in Rome", "add 1 and 2", "hello"], max_new_tokens=6, batch_size=2)
    assert one.ids and len(many) == 3
    assert back.register([multiply], None).added == ["multiply"]


def test_agent_eval_and_engine_on_cuda(loaded):
    from evals.methods import TokMemMethod
    from tokmem_agent.decoding.schedule import TurnSpec
    from tokmem_agent.serving.engine import Engine, Request

    tm = TokMem.create([*TOOLS, multiply], loaded)
    agent = TokMemAgent(tm, [multiply], ControllerConfig(max_new_tokens=16, max_steps=2))
    assert agent.run("multiply 2 and 3", tool_choice="any").generated_tokens > 0
    runs = agent.run_many(["multiply 2 and 3", "hi", "multiply 4 and 5"], tool_choice="any", batch_size=2)
    assert len(runs) == 3
    traces = load_traces(toy_records()[:6])
    m = TokMemMethod(tm, max_new_tokens=8)
    assert len(m.predict_many(traces, batch_size=4)) == 6
    import threading

    engine = Engine(tm, ControllerConfig(max_new_tokens=8), batch_size=4)
    try:
        done = threading.Event()
        got: list = []
        prompt = tm.chat.prompt_ids([{"role": "user", "content": "multiply 2 and 3"}])
        engine.submit(Request(prompt, TurnSpec(["multiply"], "any", 8, "user"),
                              lambda ev: ev[0] in ("done", "error") and (got.append(ev), done.set())))
        assert done.wait(60) and got[0][0] == "done"
    finally:
        engine.close()
